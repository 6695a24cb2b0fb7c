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

// TestCountTokensRateLimited: a count is a request like any other for the org's request quota,
// and its refusal comes in the client's protocol.
func TestCountTokensRateLimited(t *testing.T) {
	s := startStackWith(t, stackOptions{beforeStart: func(s *stack) {
		s.tollgate(t, "limits", "set", "--org", s.OrgID, "--model", "mock-claude", "--rpm", "2")
	}})
	const count = `{"model":"mock-claude","messages":[{"role":"user","content":"hi"}]}`
	hdr := map[string]string{"Anthropic-Version": "2023-06-01"}
	for i := 1; i <= 2; i++ {
		resp, body := post(t, s, "/v1/messages/count_tokens", count, hdr)
		if resp.StatusCode != 200 {
			t.Fatalf("count %d: status %d: %s", i, resp.StatusCode, body)
		}
	}
	resp, body := post(t, s, "/v1/messages/count_tokens", count, hdr)
	if resp.StatusCode != 429 {
		t.Fatalf("3rd count: status %d, want 429: %s", resp.StatusCode, body)
	}
	if kind, _ := protocolError(t, "anthropic", body); kind != "rate_limit_error" {
		t.Errorf("429 as %q, want Anthropic's rate_limit_error: %s", kind, body)
	}
}
