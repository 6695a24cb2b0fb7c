// The spy provider runs in the test process, so this needs the gateway's processes on this
// machine; `-tags external` leaves it out when the suite runs against a compose stack.

//go:build !external

package e2e

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/mockprovider"
)

// spyUpstream is the mock provider recording the headers of every request it receives: what a
// provider really gets from the gateway.
type spyUpstream struct {
	mu      sync.Mutex
	headers []http.Header
	srv     *httptest.Server
}

func newSpyUpstream(t *testing.T) *spyUpstream {
	sp := &spyUpstream{}
	mock := mockprovider.Handler(mockprovider.Config{APIKey: mockKey}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	sp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sp.mu.Lock()
		sp.headers = append(sp.headers, r.Header.Clone())
		sp.mu.Unlock()
		mock.ServeHTTP(w, r)
	}))
	t.Cleanup(sp.srv.Close)
	return sp
}

func (sp *spyUpstream) received() []http.Header {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return append([]http.Header(nil), sp.headers...)
}

// TestProvidersReceiveOnlyWhatIsSafe: whatever a client adds to its request, a provider receives
// the operator's credential and an allow-list of headers: never the client's key, cookies, proxy
// credentials or account-selecting headers, nor any x-tollgate-* header, whichever protocol the
// client speaks, streamed or not, on the first attempt or a retry.
func TestProvidersReceiveOnlyWhatIsSafe(t *testing.T) {
	sp := newSpyUpstream(t)
	s := startStackWith(t, stackOptions{
		providers: []string{
			`{name: spy, kind: openai, base_url: "` + sp.srv.URL + `", api_key_env: MOCK_API_KEY}`,
			`{name: spy-anthropic, kind: anthropic, base_url: "` + sp.srv.URL + `", api_key_env: MOCK_API_KEY}`,
		},
		models: []string{
			`{id: spy-gpt, owned_by: tollgate, endpoints: [chat_completions, messages, gemini], max_output_tokens: 100, backends: [{provider: spy, upstream_model: mock-1}], pricing: {prompt: "1.00", completion: "1.00"}}`,
			`{id: spy-claude, owned_by: tollgate, endpoints: [chat_completions, messages, gemini], max_output_tokens: 100, backends: [{provider: spy-anthropic, upstream_model: claude-mock}], pricing: {prompt: "1.00", completion: "1.00"}}`,
			`{id: spy-flaky, owned_by: tollgate, endpoints: [chat_completions], max_output_tokens: 100, backends: [{provider: spy, upstream_model: mock-flaky}], pricing: {prompt: "1.00", completion: "1.00"}}`,
		},
	})
	hostile := map[string]string{
		"Cookie":                "session=victim",
		"Proxy-Authorization":   "Basic dXNlcjpwYXNz",
		"OpenAI-Organization":   "org-someone-else",
		"OpenAI-Project":        "proj_someone_else",
		"X-Tollgate-Cluster":    "model_spy-claude",
		"X-Tollgate-Request-Id": "req_forged",
		"X-Tollgate-Org":        "00000000-0000-0000-0000-000000000000",
		"X-Forwarded-For":       "198.51.100.7",
		"Accept-Encoding":       "gzip, br",
		"X-Stainless-Os":        "Linux",
	}
	tests := []struct {
		name, path, body string
		extra            map[string]string
	}{
		{name: "OpenAI client, OpenAI provider", path: "/v1/chat/completions",
			body: `{"model":"spy-gpt","messages":[{"role":"user","content":"hi"}]}`},
		{name: "OpenAI client, OpenAI provider, streamed", path: "/v1/chat/completions",
			body: `{"model":"spy-gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{name: "OpenAI client, retried", path: "/v1/chat/completions",
			body: `{"model":"spy-flaky","messages":[{"role":"user","content":"hi"}]}`},
		{name: "Anthropic client, Anthropic provider", path: "/v1/messages",
			body:  `{"model":"spy-claude","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`,
			extra: map[string]string{"Anthropic-Version": "2023-06-01", "X-Api-Key": s.APIKey}},
		{name: "Anthropic client, OpenAI provider", path: "/v1/messages",
			body:  `{"model":"spy-gpt","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`,
			extra: map[string]string{"Anthropic-Version": "2023-06-01", "X-Api-Key": s.APIKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(sp.received())
			h := map[string]string{}
			for k, v := range hostile {
				h[k] = v
			}
			for k, v := range tt.extra {
				h[k] = v
			}
			resp, body := post(t, s, tt.path, tt.body, h)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			got := sp.received()[before:]
			if len(got) == 0 {
				t.Fatal("the provider received nothing")
			}
			for i, hdr := range got {
				for name := range hdr {
					lower := strings.ToLower(name)
					if strings.HasPrefix(lower, "x-tollgate-") {
						t.Errorf("attempt %d: provider received %s", i, name)
					}
					if _, bad := hostile[http.CanonicalHeaderKey(name)]; bad {
						t.Errorf("attempt %d: provider received the client's %s: %q", i, name, hdr.Get(name))
					}
					for _, v := range hdr.Values(name) {
						if strings.Contains(v, s.APIKey) {
							t.Errorf("attempt %d: provider received the client's key in %s", i, name)
						}
					}
				}
				if hdr.Get("Authorization") != "Bearer "+mockKey && hdr.Get("X-Api-Key") != mockKey {
					t.Errorf("attempt %d: the operator's credential is missing: %v", i, hdr)
				}
			}
		})
	}
}
