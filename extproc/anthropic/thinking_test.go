package anthropic_test

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/openai"
)

// TestBuildRequestThinking checks that the pivot's reasoning control reaches an Anthropic
// provider as thinking, within the Messages API's rules.
func TestBuildRequestThinking(t *testing.T) {
	const user = `{"role":"user","content":"hi"}`
	const tools = `"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]`
	tests := []struct {
		name       string
		body       string // OpenAI request; max_completion_tokens is the limit sent
		reasoning  *openai.Reasoning
		wantBudget int64 // 0: no thinking field
		wantTemp   bool  // temperature still sent
		wantTopP   float64
	}{
		{name: "effort high", body: `{"max_completion_tokens":32000,"temperature":0.4}`, reasoning: &openai.Reasoning{Effort: "high"}, wantBudget: 24576},
		{name: "effort cut below max_tokens", body: `{"max_completion_tokens":8000}`, reasoning: &openai.Reasoning{Effort: "high"}, wantBudget: 7999},
		{name: "budget kept", body: `{"max_completion_tokens":8000}`, reasoning: &openai.Reasoning{Budget: 5000, HasBudget: true}, wantBudget: 5000},
		{name: "dynamic gets medium", body: `{"max_completion_tokens":20000}`, reasoning: &openai.Reasoning{Budget: -1, HasBudget: true}, wantBudget: 8192},
		{name: "thoughts asked gets medium", body: `{"max_completion_tokens":20000}`, reasoning: &openai.Reasoning{IncludeThoughts: ptr(true)}, wantBudget: 8192},
		{name: "thoughts hidden, no amount", body: `{"max_completion_tokens":20000,"temperature":0.4}`, reasoning: &openai.Reasoning{IncludeThoughts: ptr(false)}, wantTemp: true},
		{name: "empty control", body: `{"max_completion_tokens":20000,"temperature":0.4}`, reasoning: &openai.Reasoning{}, wantTemp: true},
		{name: "minimal is the floor", body: `{"max_completion_tokens":20000}`, reasoning: &openai.Reasoning{Effort: "minimal"}, wantBudget: 1024},
		{name: "small budget raised to the minimum", body: `{"max_completion_tokens":20000}`, reasoning: &openai.Reasoning{Budget: 200, HasBudget: true}, wantBudget: 1024},
		{name: "no room for the minimum", body: `{"max_completion_tokens":1024,"temperature":0.4}`, reasoning: &openai.Reasoning{Effort: "low"}, wantTemp: true},
		{name: "off", body: `{"max_completion_tokens":8000,"temperature":0.4}`, reasoning: &openai.Reasoning{Effort: "none"}, wantTemp: true},
		{name: "absent", body: `{"max_completion_tokens":8000,"temperature":0.4}`, wantTemp: true},
		{name: "top_p raised", body: `{"max_completion_tokens":8000,"top_p":0.5}`, reasoning: &openai.Reasoning{Effort: "low"}, wantBudget: 2048, wantTopP: 0.95},
		{name: "top_p kept", body: `{"max_completion_tokens":8000,"top_p":0.97}`, reasoning: &openai.Reasoning{Effort: "low"}, wantBudget: 2048, wantTopP: 0.97},
		{name: "forced tool", body: `{"max_completion_tokens":8000,"tool_choice":"required",` + tools + `}`, reasoning: &openai.Reasoning{Effort: "low"}},
		{name: "auto tool", body: `{"max_completion_tokens":8000,"tool_choice":"auto",` + tools + `}`, reasoning: &openai.Reasoning{Effort: "low"}, wantBudget: 2048},
		{name: "structured output forces a tool", body: `{"max_completion_tokens":8000,"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object"}}}}`, reasoning: &openai.Reasoning{Effort: "low"}},
		{name: "continued tool turn", body: `{"max_completion_tokens":8000,` + tools + `,"messages":[` + user +
			`,{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"ok"}]}`,
			reasoning: &openai.Reasoning{Effort: "low"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tt.body), &fields); err != nil {
				t.Fatal(err)
			}
			fields["model"] = json.RawMessage(`"gpt"`)
			if _, ok := fields["messages"]; !ok {
				fields["messages"] = json.RawMessage(`[` + user + `]`)
			}
			b, _ := json.Marshal(fields)
			pivot, err := openai.ParseRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			pivot.Reasoning = tt.reasoning
			body, err := anthropic.BuildRequest(pivot, "claude-up", 4096)
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				MaxTokens   int64               `json:"max_tokens"`
				Temperature *float64            `json:"temperature"`
				TopP        *float64            `json:"top_p"`
				Thinking    *anthropic.Thinking `json:"thinking"`
			}
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.wantBudget == 0 && out.Thinking != nil:
				t.Errorf("thinking = %+v, want none", out.Thinking)
			case tt.wantBudget != 0 && (out.Thinking == nil || out.Thinking.Type != "enabled" || out.Thinking.BudgetTokens != tt.wantBudget):
				t.Errorf("thinking = %+v, want enabled with budget %d", out.Thinking, tt.wantBudget)
			}
			if out.Thinking != nil && out.Thinking.BudgetTokens >= out.MaxTokens {
				t.Errorf("budget %d not below max_tokens %d", out.Thinking.BudgetTokens, out.MaxTokens)
			}
			if (out.Temperature != nil) != tt.wantTemp {
				t.Errorf("temperature = %v, want sent %v", out.Temperature, tt.wantTemp)
			}
			if tt.wantTopP != 0 && (out.TopP == nil || *out.TopP != tt.wantTopP) {
				t.Errorf("top_p = %v, want %v", out.TopP, tt.wantTopP)
			}
			// What BuildRequest writes is a request the gateway itself accepts as Anthropic's.
			if _, err := anthropic.ParseRequest(body); err != nil {
				t.Errorf("ParseRequest: %v", err)
			}
		})
	}
}

// TestToPivotThinking checks that an Anthropic client's thinking becomes the pivot's control.
func TestToPivotThinking(t *testing.T) {
	tests := []struct {
		thinking   string
		wantEffort string // what an OpenAI provider gets
		wantBudget int64
		budgetOK   bool
	}{
		{`{"type":"enabled","budget_tokens":2000}`, "low", 2000, true},
		{`{"type":"enabled","budget_tokens":10000}`, "medium", 10000, true},
		{`{"type":"enabled","budget_tokens":30000}`, "high", 30000, true},
		{`{"type":"adaptive"}`, "medium", 0, false},
		{`{"type":"disabled"}`, "", 0, false}, // Anthropic's default: no control at all
	}
	for _, tt := range tests {
		t.Run(tt.thinking, func(t *testing.T) {
			r, err := anthropic.ParseRequest([]byte(`{"model":"c","max_tokens":40000,"thinking":` + tt.thinking +
				`,"messages":[{"role":"user","content":"hi"}]}`))
			if err != nil {
				t.Fatal(err)
			}
			pivot, err := r.ToPivot()
			if err != nil {
				t.Fatal(err)
			}
			b, ok := pivot.Reasoning.TokenBudget()
			if got := pivot.Reasoning.EffortLevel(); got != tt.wantEffort || ok != tt.budgetOK || (ok && b != tt.wantBudget) {
				t.Errorf("effort %q budget %d,%v; want %q %d,%v", got, b, ok, tt.wantEffort, tt.wantBudget, tt.budgetOK)
			}
		})
	}
}

// TestWithMaxTokensThinking checks that a lower output limit keeps a native request's thinking
// budget below max_tokens, as Anthropic requires.
func TestWithMaxTokensThinking(t *testing.T) {
	tests := []struct {
		name  string
		limit int64
		want  string // thinking as sent
	}{
		{"limit above the client's", 40000, `{"type":"enabled","budget_tokens":16000}`},
		{"limit above the budget", 20000, `{"type":"enabled","budget_tokens":16000}`},
		{"budget cut", 10000, `{"type":"enabled","budget_tokens":9999}`},
		{"no room left", 1024, `{"type":"disabled"}`},
	}
	r, err := anthropic.ParseRequest([]byte(`{"model":"c","max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":16000},"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := anthropic.PassthroughBody(r.WithMaxTokens(tt.limit), "claude-up")
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Thinking json.RawMessage `json:"thinking"`
			}
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
			if string(out.Thinking) != tt.want {
				t.Errorf("thinking = %s, want %s", out.Thinking, tt.want)
			}
			if _, err := anthropic.ParseRequest(body); err != nil {
				t.Errorf("the request sent is not one Anthropic accepts: %v", err)
			}
		})
	}
	if r.Thinking.BudgetTokens != 16000 {
		t.Error("WithMaxTokens modified the client's request")
	}
}

// TestThinkingBilledOnce checks that thinking, which Anthropic counts inside output_tokens and
// nowhere else, is billed exactly once: as output, never also as reasoning, streamed or not.
func TestThinkingBilledOnce(t *testing.T) {
	const body = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-up",
		"content":[{"type":"thinking","thinking":"step by step","signature":"c2ln"},{"type":"text","text":"42"}],
		"stop_reason":"end_turn","usage":{"input_tokens":20,"output_tokens":130}}`
	c, bu, err := anthropic.DecodeResponse([]byte(body), "m")
	if err != nil {
		t.Fatal(err)
	}
	if bu.OutputTokens != 130 || bu.ReasoningTokens != 0 || bu.InputTokens != 20 {
		t.Errorf("billing = %+v, want 130 output tokens and no reasoning tokens", bu)
	}
	if c.Usage == nil || c.Usage.CompletionTokens != 130 || c.Usage.CompletionTokensDetails != nil {
		t.Errorf("pivot usage = %+v, want 130 completion tokens without a reasoning breakdown", c.Usage)
	}
	if got := c.Choices[0].Message.ReasoningContent; got != "step by step" {
		t.Errorf("reasoning = %q", got)
	}

	dec := decodeStream(t, mustRead(t, "testdata/stream/thinking.upstream.sse"), nil)
	if dec.Billing.ReasoningTokens != 0 || dec.Billing.OutputTokens != dec.Usage.CompletionTokens {
		t.Errorf("stream billing = %+v for usage %+v", dec.Billing, dec.Usage)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPassthroughBodyUnsignedThinking checks that a thinking block the gateway translated from
// another provider (no signature) never reaches Anthropic, which would refuse it, while signed
// ones and everything else pass unchanged.
func TestPassthroughBodyUnsignedThinking(t *testing.T) {
	tests := []struct {
		name     string
		messages string
		want     string
	}{
		{
			name:     "signed kept",
			messages: `[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"c2ln"},{"type":"text","text":"a"}]},{"role":"user","content":"q2"}]`,
			want:     `[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"c2ln"},{"type":"text","text":"a"}]},{"role":"user","content":"q2"}]`,
		},
		{
			name:     "unsigned dropped",
			messages: `[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":""},{"type":"text","text":"a <b>","cache_control":{"type":"ephemeral"}}]},{"role":"user","content":"q2"}]`,
			want:     `[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"text","text":"a <b>","cache_control":{"type":"ephemeral"}}]},{"role":"user","content":"q2"}]`,
		},
		{
			name:     "message left empty dropped",
			messages: `[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"thinking","thinking":"t"}]},{"role":"user","content":"q2"}]`,
			want:     `[{"role":"user","content":"q"},{"role":"user","content":"q2"}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := anthropic.ParseRequest([]byte(`{"model":"c","max_tokens":100,"messages":` + tt.messages + `}`))
			if err != nil {
				t.Fatal(err)
			}
			body, err := anthropic.PassthroughBody(r, "claude-up")
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Messages json.RawMessage `json:"messages"`
			}
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal(out.Messages, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("messages =\n%s\nwant\n%s", out.Messages, tt.want)
			}
			if bytes.Contains(body, []byte(`\u003c`)) {
				t.Errorf("text was re-escaped: %s", body)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
