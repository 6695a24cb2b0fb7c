package openai

import (
	"strings"
	"testing"
)

func TestBuildRequestForcesUsageOnlyOnStreams(t *testing.T) {
	r, err := ParseRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	up, _ := BuildRequest(r, "m")
	if strings.Contains(string(up), "stream") {
		t.Errorf("a non-streaming request must not gain stream fields: %s", up)
	}
}

func TestUsageBilling(t *testing.T) {
	u := Usage{PromptTokens: 100, CompletionTokens: 50, PromptTokensDetails: &PromptTokensDetails{CachedTokens: 30}, CompletionTokensDetails: &CompletionTokensDetails{ReasoningTokens: 20}}
	b := u.Billing()
	if b.InputTokens != 70 || b.CacheReadTokens != 30 || b.OutputTokens != 30 || b.ReasoningTokens != 20 {
		t.Errorf("billing usage = %+v", b)
	}
}

// TestPath checks that every model and both modes share one path: an OpenAI-kind provider reads
// the model and stream from the body.
func TestPath(t *testing.T) {
	for _, tt := range []struct {
		model  string
		stream bool
	}{{"gpt-5.4", false}, {"gpt-5.4", true}, {"meta-llama/Llama-3.3-70B-Instruct", true}} {
		if got := Path(tt.model, tt.stream); got != "/v1/chat/completions" {
			t.Errorf("Path(%q, %v) = %q", tt.model, tt.stream, got)
		}
	}
}
