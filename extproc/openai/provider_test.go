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
