package e2e

import (
	"encoding/json"
	"strconv"
	"testing"
)

// clientErrorCall is one client protocol's request for a model, and how to read its error body.
type clientErrorCall struct {
	proto string
	path  func(model string) string
	body  func(model string) string
	hdr   map[string]string
}

var clientErrorCalls = []clientErrorCall{
	{"openai", func(string) string { return "/v1/chat/completions" },
		func(m string) string { return `{"model":"` + m + `","messages":[{"role":"user","content":"hi"}]}` }, nil},
	{"openai streamed", func(string) string { return "/v1/chat/completions" },
		func(m string) string {
			return `{"model":"` + m + `","stream":true,"messages":[{"role":"user","content":"hi"}]}`
		}, nil},
	{"anthropic", func(string) string { return "/v1/messages" },
		func(m string) string {
			return `{"model":"` + m + `","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
		},
		map[string]string{"anthropic-version": "2023-06-01"}},
	{"gemini", func(m string) string { return "/v1beta/models/" + m + ":generateContent" },
		func(string) string { return `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}` }, nil},
	{"gemini streamed", func(m string) string { return "/v1beta/models/" + m + ":streamGenerateContent?alt=sse" },
		func(string) string { return `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}` }, nil},
}

// protocolError reads an error body in a client protocol's shape: the OpenAI code, the
// Anthropic error type, or Gemini's status name with its numeric code.
func protocolError(t *testing.T, proto string, body []byte) (kind string, code int) {
	t.Helper()
	var b struct {
		Type  string `json:"type"`
		Error struct {
			Code    json.RawMessage `json:"code"`
			Type    string          `json:"type"`
			Status  string          `json:"status"`
			Message string          `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Error.Message == "" {
		t.Fatalf("%s: error body %q is not in the client's shape (%v)", proto, body, err)
	}
	switch proto[:6] {
	case "anthro":
		if b.Type != "error" {
			t.Errorf("anthropic error without type error: %s", body)
		}
		return b.Error.Type, 0
	case "gemini":
		n, _ := strconv.Atoi(string(b.Error.Code))
		return b.Error.Status, n
	}
	var c string
	_ = json.Unmarshal(b.Error.Code, &c)
	return c, 0
}

// TestUpstreamUnreachableAndTimeout: a provider that accepts the request and never answers is
// cut by the route timeout (envoy-config --upstream-timeout), retries included, and the client
// gets 524 provider_timeout; a provider nothing listens for fails every retry's connection, and
// the client gets 502 no_provider_available. Both in every client protocol's shape, streaming
// requests included (no byte was sent, so the status is still the client's to see); no hold
// is left open.
func TestUpstreamUnreachableAndTimeout(t *testing.T) {
	s := startStackWith(t, stackOptions{
		models: []string{
			`{id: mock-hang, owned_by: tollgate, endpoints: [chat_completions, messages, gemini], max_output_tokens: 100, backends: [{provider: mock, upstream_model: mock-hang}]}`,
			`{id: mock-unreachable, owned_by: tollgate, endpoints: [chat_completions, messages, gemini], max_output_tokens: 100, backends: [{provider: dead, upstream_model: x}]}`,
		},
		envoyConfigArgs: []string{"--upstream-timeout", "2s"},
	})
	tests := []struct {
		model  string
		status int
		// kinds by protocol: OpenAI code, Anthropic type, Gemini status.
		openai, anthropic, gemini string
	}{
		{"mock-hang", 524, "provider_timeout", "timeout_error", "DEADLINE_EXCEEDED"},
		{"mock-unreachable", 502, "no_provider_available", "overloaded_error", "UNAVAILABLE"},
	}
	for _, tt := range tests {
		for _, c := range clientErrorCalls {
			t.Run(tt.model+"/"+c.proto, func(t *testing.T) {
				resp, body := post(t, s, c.path(tt.model), c.body(tt.model), c.hdr)
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
				}
				kind, code := protocolError(t, c.proto, body)
				want := map[string]string{"openai": tt.openai, "anthro": tt.anthropic, "gemini": tt.gemini}[c.proto[:6]]
				if kind != want {
					t.Errorf("error %q, want %q: %s", kind, want, body)
				}
				if c.proto[:6] == "gemini" && code != tt.status {
					t.Errorf("gemini error code %d, want %d", code, tt.status)
				}
			})
		}
	}
	assertNothingHeld(t, s)
}
