package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestFallback runs Envoy's retries and priority fallback, each attempt translated by the
// cluster's upstream filter: each case is one client request.
func TestFallback(t *testing.T) {
	s := startStack(t)
	tests := []struct {
		name       string
		path       string
		body       string
		header     map[string]string
		wantStatus int
		wantModel  string // the model that served, in the body and x-tollgate-served-model
		wantIn     string
	}{
		{name: "503 twice then 200 on the same backend", path: "/v1/chat/completions",
			body: `{"model":"mock-flaky","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 200, wantModel: "mock-flaky", wantIn: "You said: hi"},
		{name: "primary down: served by a fallback of another kind, in the client's protocol", path: "/v1/chat/completions",
			body: `{"model":"mock-primary-down","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 200, wantModel: "mock-claude", wantIn: `"object":"chat.completion"`},
		{name: "primary down, streamed, Anthropic client", path: "/v1/messages",
			body:   `{"model":"mock-primary-down","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			header: map[string]string{"Authorization": "", "X-Api-Key": s.APIKey, "Anthropic-Version": "2023-06-01"}, wantStatus: 200, wantModel: "mock-claude", wantIn: "event: message_stop"},
		{name: "fallback body longer than the primary's: complete, right content-length", path: "/v1/chat/completions",
			body: `{"model":"mock-dead-first","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 200, wantModel: "mock-gpt", wantIn: "You said: hi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, s, tt.path, tt.body, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if got := resp.Header.Get("X-Tollgate-Served-Model"); got != tt.wantModel {
				t.Errorf("x-tollgate-served-model = %q, want %q", got, tt.wantModel)
			}
			if !strings.Contains(string(body), `"model":"`+tt.wantModel+`"`) || !strings.Contains(string(body), tt.wantIn) {
				t.Errorf("body does not name %s or lacks %q: %s", tt.wantModel, tt.wantIn, body)
			}
			id := resp.Header.Get("X-Request-Id")
			var charges int
			eventually(t, "one charge", func() (bool, error) {
				err := s.DB.QueryRow(t.Context(), `SELECT count(*) FROM ledger_entries WHERE kind = 'usage' AND request_id = $1`, id).Scan(&charges)
				return err == nil && charges == 1, err
			})
		})
	}

	// An eu/ request whose only EU backend fails is never served by a global backend.
	resp, body := post(t, s, "/v1/chat/completions", `{"model":"eu/mock-eu-down","messages":[{"role":"user","content":"hi"}]}`, nil)
	var e errorShape
	if resp.StatusCode == http.StatusOK || json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		t.Errorf("eu/ with its EU backend down: status %d body %s; want an error in OpenAI's shape, never a global backend", resp.StatusCode, body)
	}
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusBadGateway {
		t.Errorf("eu/ with its EU backend down: status %d, want 404, 502 or 503", resp.StatusCode)
	}
}

// TestFallbackSDKs: the same fallback through the official OpenAI and Anthropic SDKs, streaming
// included.
func TestFallbackSDKs(t *testing.T) {
	s := startStack(t)
	runNode(t, s, "fallback.mjs", "TOLLGATE_MODEL=mock-primary-down", "TOLLGATE_SERVED=mock-claude",
		"TOLLGATE_FLAKY=mock-flaky", "TOLLGATE_DEAD_FIRST=mock-dead-first")
	var attempts int
	eventually(t, "attempts recorded", func() (bool, error) {
		err := s.DB.QueryRow(t.Context(), `SELECT max(jsonb_array_length(attempts)) FROM usage_records WHERE org_id = $1`, s.OrgID).Scan(&attempts)
		return err == nil && attempts > 1, err
	})
}
