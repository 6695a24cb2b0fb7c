package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

const chatBody = `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`

// TestRequestQuota: an org limited to 5 requests a minute gets 429 on the 6th, with OpenAI-style
// headers and a body in the client's protocol, and the refusal is the gateway's, not a provider's.
func TestRequestQuota(t *testing.T) {
	s := startStackWith(t, stackOptions{beforeStart: func(s *stack) {
		s.tollgate(t, "limits", "set", "--org", s.OrgID, "--model", "mock-gpt", "--rpm", "5")
	}})
	holdWrites := watchHoldWrites(t, s)
	for i := 1; i <= 5; i++ {
		resp, body := post(t, s, "/v1/chat/completions", chatBody, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d: %s", i, resp.StatusCode, body)
		}
		if got := resp.Header.Get("X-Ratelimit-Remaining-Requests"); got != strconv.Itoa(5-i) {
			t.Errorf("request %d: x-ratelimit-remaining-requests = %q, want %d", i, got, 5-i)
		}
		if resp.Header.Get("Openai-Organization") != "" || len(resp.Header.Values("X-Ratelimit-Remaining-Requests")) != 1 {
			t.Errorf("request %d: the provider's account headers leaked: %v", i, resp.Header)
		}
		if got := resp.Header.Get("X-Ratelimit-Limit-Requests"); got != "5" {
			t.Errorf("request %d: x-ratelimit-limit-requests = %q, want 5", i, got)
		}
	}
	resp, body := post(t, s, "/v1/chat/completions", chatBody, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("6th request: status %d, want 429: %s", resp.StatusCode, body)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("retry-after = %q, want whole seconds within the minute", resp.Header.Get("Retry-After"))
	}
	var e errorShape
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != "rate_limit" || e.Error.Type != "rate_limit" {
		t.Errorf("429 body = %s, want OpenAI's shape with code rate_limit", body)
	}
	if strings.Contains(e.Error.Message, "Upstream provider") || !strings.Contains(strings.ToLower(e.Error.Message), "rate limit") {
		t.Errorf("the gateway's quota must not read as a provider's: %q", e.Error.Message)
	}

	// An Anthropic client of the same org sees the refusal in Anthropic's shape.
	resp, body = post(t, s, "/v1/messages", `{"model":"mock-gpt","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"Authorization": "", "X-Api-Key": s.APIKey, "Anthropic-Version": "2023-06-01"})
	var ae struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if resp.StatusCode != 429 || json.Unmarshal(body, &ae) != nil || ae.Type != "error" || ae.Error.Type != "rate_limit_error" {
		t.Errorf("anthropic client: status %d body %s, want 429 rate_limit_error", resp.StatusCode, body)
	}
	assertNothingHeld(t, s)
	// Request quotas are checked before a hold is placed: a 429 costs no ledger write.
	if n := holdWrites(); n != 5 {
		t.Errorf("%d holds placed for 5 admitted requests and 2 refused over quota", n)
	}
}

// watchHoldWrites counts, with a trigger in the stack's schema, every hold the gateway places;
// the returned function reads the count.
func watchHoldWrites(t *testing.T, s *stack) func() int {
	t.Helper()
	for _, q := range []string{
		`CREATE TABLE hold_writes (request_id text NOT NULL)`,
		`CREATE FUNCTION log_hold_write() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN INSERT INTO hold_writes VALUES (NEW.request_id); RETURN NEW; END $$`,
		`CREATE TRIGGER log_hold_write AFTER INSERT ON holds FOR EACH ROW EXECUTE FUNCTION log_hold_write()`,
	} {
		if _, err := s.DB.Exec(t.Context(), q); err != nil {
			t.Fatalf("watch hold writes: %v", err)
		}
	}
	return func() int {
		var n int
		if err := s.DB.QueryRow(t.Context(), `SELECT count(*) FROM hold_writes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// TestTokenQuota: a token quota is charged after each response with the tokens it used, and
// stops the org once they are used up.
func TestTokenQuota(t *testing.T) {
	const tpm = 60
	s := startStackWith(t, stackOptions{beforeStart: func(s *stack) {
		s.tollgate(t, "limits", "set", "--org", s.OrgID, "--tpm", strconv.Itoa(tpm))
	}})
	var used int
	var limited *http.Response
	var limitedBody []byte
	for i := 0; i < 40 && limited == nil; i++ {
		resp, body := post(t, s, "/v1/chat/completions", chatBody, nil)
		switch resp.StatusCode {
		case http.StatusOK:
			var r struct {
				Usage struct {
					TotalTokens int `json:"total_tokens"`
				} `json:"usage"`
			}
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			used += r.Usage.TotalTokens
		case http.StatusTooManyRequests:
			limited, limitedBody = resp, body
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	if limited == nil {
		t.Fatalf("never limited after %d tokens against a %d-token quota", used, tpm)
	}
	if used < tpm {
		t.Errorf("limited after only %d tokens of a %d-token quota", used, tpm)
	}
	if !strings.Contains(string(limitedBody), `"code":"rate_limit"`) {
		t.Errorf("429 body = %s", limitedBody)
	}
}

// TestManagementThroughGateway: /v1/management/* answers management keys through Envoy and
// refuses standard keys.
func TestManagementThroughGateway(t *testing.T) {
	s := startStack(t)
	mgmt := s.tollgate(t, "key", "create", "--org", s.OrgID, "--kind", "management")
	get := func(key string) (*http.Response, []byte) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.BaseURL+"/v1/management/balance", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	resp, body := get(s.APIKey)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"code":"access_denied"`) {
		t.Errorf("standard key: %d %s, want 403 access_denied", resp.StatusCode, body)
	}
	resp, body = get(mgmt)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "5.000000") {
		t.Errorf("management key: %d %s, want 200 with the 5.00 USD balance", resp.StatusCode, body)
	}
}

// TestManagementRateLimit: the management API has its own per-key limit (the catalog's
// defaults.management_rpm), enforced by the ratelimit filter from the org and key extproc
// reports; another management key of the same org, and the org's model API, are unaffected.
func TestManagementRateLimit(t *testing.T) {
	s := startStackWith(t, stackOptions{defaults: "{management_rpm: 3}"})
	first := s.tollgate(t, "key", "create", "--org", s.OrgID, "--kind", "management")
	second := s.tollgate(t, "key", "create", "--org", s.OrgID, "--kind", "management")
	get := func(key string) (*http.Response, []byte) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.BaseURL+"/v1/management/balance", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	for i := 1; i <= 3; i++ {
		if resp, body := get(first); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s, want 200", i, resp.StatusCode, body)
		}
	}
	resp, body := get(first)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"code":"rate_limit"`) ||
		!strings.Contains(string(body), "mgmt_rpm") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("4th request: %d %s (retry-after %q), want 429 rate_limit naming mgmt_rpm", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if resp, body := get(second); resp.StatusCode != http.StatusOK {
		t.Errorf("another management key: %d %s, want 200", resp.StatusCode, body)
	}
	if resp, body := post(t, s, "/v1/chat/completions", `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}]}`, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the org's model API: %d %s, want 200", resp.StatusCode, body)
	}
}

// assertNothingHeld checks no credit stays reserved once requests are over.
func assertNothingHeld(t *testing.T, s *stack) {
	t.Helper()
	eventually(t, "holds released", func() (bool, error) {
		var held int64
		err := s.DB.QueryRow(t.Context(), `SELECT held_micros FROM org_balances WHERE org_id = $1`, s.OrgID).Scan(&held)
		return err == nil && held == 0, err
	})
}
