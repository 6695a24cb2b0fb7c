package extproc

import (
	"encoding/json"
	"strconv"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// TestCountTokens: a count is routed like a generation, forwarded by an attempt that reaches a
// provider of the client's protocol (its path and body from the client's request, the model
// the backend's), answered with a marked estimate by any other attempt, passed back unchanged,
// and never held or charged.
func TestCountTokens(t *testing.T) {
	anthropicHdrs := []string{":method", "POST", ":path", "/v1/messages/count_tokens", "x-api-key", goodKey, "anthropic-version", "2023-06-01", "content-type", "application/json"}
	geminiHdrs := func(path string) []string {
		return []string{":method", "POST", ":path", path, "x-goog-api-key", goodKey, "content-type", "application/json"}
	}
	const anthropicBody = `{"model":"every","system":"be brief","messages":[{"role":"user","content":"Hello there"}]}`
	tests := []struct {
		name    string
		headers []string
		body    string
		backend string
		// wantPath and wantBody check a forwarded attempt; wantEstimate an estimated one.
		wantPath     string
		wantBody     func(t *testing.T, body map[string]json.RawMessage)
		wantEstimate string // the JSON field holding the count
		provider     string // the provider's answer, for a forwarded attempt
	}{
		{name: "anthropic to anthropic", headers: anthropicHdrs, body: anthropicBody, backend: "anthropic/claude-x",
			wantPath: "/v1/messages/count_tokens", provider: `{"input_tokens":7}`,
			wantBody: func(t *testing.T, b map[string]json.RawMessage) {
				if string(b["model"]) != `"claude-x"` || b["max_tokens"] != nil || string(b["system"]) != `"be brief"` {
					t.Errorf("forwarded body %v", b)
				}
			}},
		{name: "anthropic to openai", headers: anthropicHdrs, body: anthropicBody, backend: "openai/every", wantEstimate: "input_tokens"},
		{name: "anthropic to gemini", headers: anthropicHdrs, body: anthropicBody, backend: "gemini/gemini-x", wantEstimate: "input_tokens"},
		{name: "gemini contents to gemini", headers: geminiHdrs("/v1beta/models/every:countTokens"),
			body: `{"model":"models/other","contents":[{"role":"user","parts":[{"text":"Hello there"}]}]}`, backend: "gemini/gemini-x",
			wantPath: "/v1beta/models/gemini-x:countTokens", provider: `{"totalTokens":3,"promptTokensDetails":[{"modality":"TEXT","tokenCount":3}]}`,
			wantBody: func(t *testing.T, b map[string]json.RawMessage) {
				if b["contents"] == nil || b["model"] != nil {
					t.Errorf("forwarded body %v", b)
				}
			}},
		{name: "gemini generateContentRequest to gemini, under /v1", headers: geminiHdrs("/v1/models/every:countTokens"),
			body: `{"generateContentRequest":{"model":"models/every","contents":[{"role":"user","parts":[{"text":"Hi"}]}]}}`, backend: "gemini/gemini-x",
			wantPath: "/v1beta/models/gemini-x:countTokens", provider: `{"totalTokens":1}`,
			wantBody: func(t *testing.T, b map[string]json.RawMessage) {
				var inner map[string]json.RawMessage
				if err := json.Unmarshal(b["generateContentRequest"], &inner); err != nil || string(inner["model"]) != `"models/gemini-x"` {
					t.Errorf("forwarded body %v (%v)", b, err)
				}
			}},
		{name: "gemini to anthropic", headers: geminiHdrs("/v1beta/models/every:countTokens"),
			body: `{"contents":[{"role":"user","parts":[{"text":"Hello there"}]}]}`, backend: "anthropic/claude-x", wantEstimate: "totalTokens"},
	}
	h := newHarnessWith(t, Config{MaxBodyBytes: 1 << 20})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			router := h.open(t)
			router.requestHeaders(false, tt.headers...)
			routed := router.requestBody(tt.body)
			id := routedID(routed)
			if id == "" {
				t.Fatalf("not routed: %v", routed)
			}
			a := h.open(t)
			first := a.send(attemptRequest(id, tt.backend, "x-api-key", goodKey))
			var status int
			var answer []byte
			if tt.wantEstimate != "" {
				ir := first.GetImmediateResponse()
				if ir == nil || ir.GetStatus().GetCode() != 200 {
					t.Fatalf("an attempt without the endpoint answers the estimate itself: %v", first)
				}
				status, answer = 200, ir.GetBody()
			} else {
				cr := first.GetRequestHeaders().GetResponse()
				if cr.GetStatus() != extprocv3.CommonResponse_CONTINUE_AND_REPLACE {
					t.Fatalf("attempt not forwarded: %v", first)
				}
				set, _ := mutations(cr.GetHeaderMutation())
				if set[":path"] != tt.wantPath {
					t.Errorf(":path %q, want %q", set[":path"], tt.wantPath)
				}
				var sent map[string]json.RawMessage
				if err := json.Unmarshal(cr.GetBodyMutation().GetBody(), &sent); err != nil {
					t.Fatal(err)
				}
				tt.wantBody(t, sent)
				a.responseHeaders(false, ":status", "200", "content-type", "application/json", headerEstimated, "true")
				status, answer = 200, []byte(tt.provider)
			}
			rh := router.responseHeaders(false, ":status", strconv.Itoa(status), "content-type", "application/json", headerEstimated, "true")
			set, removed := mutations(rh.GetResponseHeaders().GetResponse().GetHeaderMutation())
			if tt.wantEstimate != "" && set[headerEstimated] != "true" {
				t.Errorf("an estimate is marked: set %v", set)
			}
			if tt.wantEstimate == "" && !removed[headerEstimated] {
				t.Errorf("a provider's count is not marked as an estimate, whatever it sends: removed %v", removed)
			}
			rb := router.responseBody(answer, true).GetResponseBody().GetResponse()
			out := rb.GetBodyMutation().GetBody()
			if tt.wantEstimate == "" && string(out) != tt.provider {
				t.Errorf("body %s, want the provider's %s", out, tt.provider)
			}
			if tt.wantEstimate != "" {
				var got map[string]json.RawMessage
				if err := json.Unmarshal(out, &got); err != nil {
					t.Fatalf("estimate %s: %v", out, err)
				}
				n, err := strconv.Atoi(string(got[tt.wantEstimate]))
				// "Hello there" alone is 11 bytes; the bound adds the system text and overheads.
				if err != nil || n < 11 {
					t.Errorf("estimate %s, want %s of at least the prompt's bytes", out, tt.wantEstimate)
				}
			}
			h.ledger.mu.Lock()
			_, held := h.ledger.heldByID[id]
			h.ledger.mu.Unlock()
			if held {
				t.Error("a count placed a hold")
			}
		})
	}
}

// TestCountTokensRefusals: counts are validated and resolved like generations.
func TestCountTokensRefusals(t *testing.T) {
	h := newHarnessWith(t, Config{MaxBodyBytes: 1 << 20})
	tests := []struct {
		name, path, body string
		wantStatus       int32
		wantDetails      string
	}{
		{"model without the messages endpoint", "/v1/messages/count_tokens", `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`, 404, "tollgate_model_not_supported"},
		{"unknown model", "/v1/messages/count_tokens", `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`, 404, "tollgate_invalid_model"},
		{"no messages", "/v1/messages/count_tokens", `{"model":"every"}`, 400, "tollgate_invalid_params"},
		{"gemini without contents", "/v1beta/models/every:countTokens", `{}`, 400, "tollgate_invalid_params"},
		{"gemini model without the endpoint", "/v1beta/models/gpt:countTokens", `{"contents":[{"parts":[{"text":"hi"}]}]}`, 404, "tollgate_model_not_supported"},
		{"governed parameter", "/v1/messages/count_tokens", `{"model":"every","mcp_servers":[{"type":"url","url":"https://mcp.example","name":"x"}],"messages":[{"role":"user","content":"hi"}]}`, 400, "tollgate_invalid_params"},
		{"gemini governed parameter", "/v1beta/models/every:countTokens", `{"generateContentRequest":{"cachedContent":"cachedContents/x","contents":[{"parts":[{"text":"hi"}]}]}}`, 400, "tollgate_invalid_params"},
		{"gemini both forms", "/v1beta/models/every:countTokens", `{"contents":[{"parts":[{"text":"hi"}]}],"generateContentRequest":{"contents":[{"parts":[{"text":"hi"}]}]}}`, 400, "tollgate_invalid_params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := h.open(t)
			s.requestHeaders(false, ":method", "POST", ":path", tt.path, "x-api-key", goodKey, "x-goog-api-key", goodKey, "anthropic-version", "2023-06-01")
			ir := s.requestBody(tt.body).GetImmediateResponse()
			if int32(ir.GetStatus().GetCode()) != tt.wantStatus || ir.GetDetails() != tt.wantDetails {
				t.Errorf("got %v %q: %s, want %d %s", ir.GetStatus().GetCode(), ir.GetDetails(), ir.GetBody(), tt.wantStatus, tt.wantDetails)
			}
		})
	}
}
