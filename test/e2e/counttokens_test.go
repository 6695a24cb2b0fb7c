package e2e

import (
	"encoding/json"
	"testing"
)

// TestCountTokensSDK: the official SDKs' token counting (Anthropic's messages.countTokens,
// @google/genai's models.countTokens) against a provider of each kind. A provider of the
// client's protocol counts (its answer passes unchanged, unmarked); any other is answered with
// the gateway's estimate, marked x-tollgate-estimated, which never counts below the provider's
// own figure. Counting is free: nothing is held or recorded.
func TestCountTokensSDK(t *testing.T) {
	s := startStack(t)
	out := runNode(t, s, "count_tokens.mjs", "TOLLGATE_MODELS="+allKinds)
	type count struct {
		Model     string `json:"model"`
		Tokens    int64  `json:"tokens"`
		Estimated bool   `json:"estimated"`
	}
	var summary struct {
		Anthropic []count `json:"anthropic"`
		Gemini    []count `json:"gemini"`
	}
	if err := json.Unmarshal(out, &summary); err != nil {
		t.Fatalf("summary %s: %v", out, err)
	}
	// native is the model whose provider speaks the SDK's protocol and counts itself.
	for sdk, tt := range map[string]struct {
		counts []count
		native string
	}{"anthropic": {summary.Anthropic, "mock-claude"}, "gemini": {summary.Gemini, "mock-gemini"}} {
		if len(tt.counts) != 3 {
			t.Fatalf("%s: %d counts, want 3: %s", sdk, len(tt.counts), out)
		}
		var provider int64
		for _, c := range tt.counts {
			if c.Model == tt.native {
				provider = c.Tokens
			}
		}
		for _, c := range tt.counts {
			if c.Tokens <= 0 {
				t.Errorf("%s %s: %d tokens", sdk, c.Model, c.Tokens)
			}
			if c.Estimated != (c.Model != tt.native) {
				t.Errorf("%s %s: estimated %v, want %v", sdk, c.Model, c.Estimated, c.Model != tt.native)
			}
			if c.Estimated && c.Tokens < provider {
				t.Errorf("%s %s: estimate %d below the provider's count %d", sdk, c.Model, c.Tokens, provider)
			}
		}
	}
	assertNothingHeld(t, s)
	var records int64
	if err := s.DB.QueryRow(t.Context(), `SELECT count(*) FROM usage_records WHERE org_id = $1`, s.OrgID).Scan(&records); err != nil {
		t.Fatal(err)
	}
	if records != 0 {
		t.Errorf("%d usage records: counting is free", records)
	}
}
