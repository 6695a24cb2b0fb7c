package e2e

import (
	"net/http"
	"testing"
)

// TestCutStreamsMetered: a provider of each kind cuts its stream after two words ("Hello" and
// " from"), before its last usage event; whichever protocol the client speaks, the request is
// charged at least a token per content byte delivered — not, as an Anthropic message_start
// once made it, one output token — and never above its hold.
func TestCutStreamsMetered(t *testing.T) {
	s := startStack(t)
	const delivered = len("Hello from")
	clients := []struct {
		name   string
		path   func(model string) string
		body   func(model string) string
		header map[string]string
	}{
		{"openai", func(string) string { return "/v1/chat/completions" },
			func(m string) string {
				return `{"model":"` + m + `","stream":true,"messages":[{"role":"user","content":"hi"}]}`
			}, nil},
		{"anthropic", func(string) string { return "/v1/messages" },
			func(m string) string {
				return `{"model":"` + m + `","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`
			}, map[string]string{"Authorization": "", "X-Api-Key": s.APIKey, "Anthropic-Version": "2023-06-01"}},
		{"gemini", func(m string) string { return "/v1beta/models/" + m + ":streamGenerateContent?alt=sse" },
			func(string) string { return `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}` },
			map[string]string{"Authorization": "", "X-Goog-Api-Key": s.APIKey}},
	}
	for _, model := range []string{"mock-cut-stream", "mock-cut-stream-claude", "mock-cut-stream-gemini"} {
		for _, c := range clients {
			t.Run(model+"/"+c.name, func(t *testing.T) {
				resp, body := post(t, s, c.path(model), c.body(model), c.header)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				id := resp.Header.Get("X-Request-Id")
				var finish string
				var completion, cost, excess int64
				eventually(t, "usage row", func() (bool, error) {
					err := s.DB.QueryRow(t.Context(), `SELECT finish_reason, completion_tokens, cost_micros, excess_micros FROM usage_records WHERE request_id = $1`, id).
						Scan(&finish, &completion, &cost, &excess)
					return err == nil, err
				})
				if finish != "incomplete" || completion < int64(delivered) || cost <= 0 || excess != 0 {
					t.Errorf("usage row: finish %q, %d completion tokens, cost %d, excess %d; want incomplete, at least %d tokens, charged within the hold",
						finish, completion, cost, excess, delivered)
				}
			})
		}
	}
	assertNothingHeld(t, s)
}
