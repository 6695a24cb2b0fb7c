package gemini

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

// TestBuildRequestThinkingConfig checks that the pivot's reasoning control reaches a Gemini
// provider as generationConfig.thinkingConfig.
func TestBuildRequestThinkingConfig(t *testing.T) {
	no := false
	tests := []struct {
		name      string
		reasoning *openai.Reasoning
		want      string // thinkingConfig as sent; "" for none
	}{
		{name: "absent", want: ""},
		{name: "effort low", reasoning: &openai.Reasoning{Effort: "low"}, want: `{"includeThoughts":true,"thinkingBudget":2048}`},
		{name: "effort high", reasoning: &openai.Reasoning{Effort: "high"}, want: `{"includeThoughts":true,"thinkingBudget":24576}`},
		{name: "effort none", reasoning: &openai.Reasoning{Effort: "none"}, want: `{"thinkingBudget":0}`},
		{name: "budget", reasoning: &openai.Reasoning{Budget: 3000, HasBudget: true}, want: `{"includeThoughts":true,"thinkingBudget":3000}`},
		{name: "budget above every model", reasoning: &openai.Reasoning{Budget: 60000, HasBudget: true}, want: `{"includeThoughts":true,"thinkingBudget":32768}`},
		{name: "dynamic", reasoning: &openai.Reasoning{Budget: -1, HasBudget: true}, want: `{"includeThoughts":true,"thinkingBudget":-1}`},
		{name: "thoughts hidden", reasoning: &openai.Reasoning{Effort: "medium", IncludeThoughts: &no}, want: `{"includeThoughts":false,"thinkingBudget":8192}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pivot, err := openai.ParseRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
			if err != nil {
				t.Fatal(err)
			}
			pivot.Reasoning = tt.reasoning
			body, err := BuildRequest(pivot, "m")
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				GenerationConfig *struct {
					ThinkingConfig json.RawMessage `json:"thinkingConfig"`
				} `json:"generationConfig"`
			}
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
			var got string
			if out.GenerationConfig != nil {
				got = string(out.GenerationConfig.ThinkingConfig)
			}
			if got != tt.want {
				t.Errorf("thinkingConfig = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestThinkingConfigToPivot checks a Gemini client's thinkingConfig: refused when Google refuses
// it, else carried in the pivot.
func TestThinkingConfigToPivot(t *testing.T) {
	tests := []struct {
		name       string
		config     string
		wantParam  string // refused, naming this parameter
		wantEffort string // what an OpenAI provider gets
		wantOff    bool
		wantHidden bool
	}{
		{name: "budget", config: `{"thinkingBudget":1024,"includeThoughts":true}`, wantEffort: "low"},
		{name: "budget off", config: `{"thinkingBudget":0}`, wantEffort: "none", wantOff: true},
		{name: "dynamic", config: `{"thinkingBudget":-1}`, wantEffort: "medium"},
		{name: "level", config: `{"thinkingLevel":"high"}`, wantEffort: "high"},
		{name: "level in capitals", config: `{"thinkingLevel":"LOW","includeThoughts":false}`, wantEffort: "low", wantHidden: true},
		{name: "snake case", config: `{"thinking_budget":20000}`, wantEffort: "high"},
		{name: "both", config: `{"thinkingBudget":1024,"thinkingLevel":"low"}`, wantParam: "generationConfig.thinkingConfig.thinkingLevel"},
		{name: "negative budget", config: `{"thinkingBudget":-2}`, wantParam: "generationConfig.thinkingConfig.thinkingBudget"},
		{name: "unknown level", config: `{"thinkingLevel":"extreme"}`, wantParam: "generationConfig.thinkingConfig.thinkingLevel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"thinkingConfig":` + tt.config + `}}`
			r, err := ParseRequest([]byte(body), "gemini-2.5-flash", false)
			if tt.wantParam != "" {
				var e *apierror.Error
				if !errors.As(err, &e) || e.Param != tt.wantParam {
					t.Fatalf("err = %v, want invalid %s", err, tt.wantParam)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pivot, err := r.ToPivot()
			if err != nil {
				t.Fatal(err)
			}
			rc := pivot.Reasoning
			if rc.EffortLevel() != tt.wantEffort || rc.Off() != tt.wantOff ||
				(rc.IncludeThoughts != nil && !*rc.IncludeThoughts) != tt.wantHidden {
				t.Errorf("reasoning %+v: effort %q off %v; want %q off %v hidden %v", rc, rc.EffortLevel(), rc.Off(), tt.wantEffort, tt.wantOff, tt.wantHidden)
			}
		})
	}
}
