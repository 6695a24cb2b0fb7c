package extproc

import (
	"strings"
	"testing"
)

// TestGovernedParams checks the catalog's allowed_params against requests in each client
// protocol: a governed parameter passes only when every model that may serve the request
// allows it, and is otherwise refused with a 400 naming it, in the client's shape.
func TestGovernedParams(t *testing.T) {
	h := newHarness(t)
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	anthropicHeaders := func(beta string) []string {
		hs := []string{":method", "POST", ":path", "/v1/messages", "x-api-key", goodKey, "anthropic-version", "2023-06-01"}
		if beta != "" {
			hs = append(hs, "anthropic-beta", beta)
		}
		return hs
	}
	tests := []struct {
		name    string
		headers []string
		body    string
		// refused is the parameter the 400 must name; "" means the request goes upstream.
		refused string
		// wantBody is a fragment of the refusal in the client's protocol.
		wantBody string
	}{
		{name: "allowed by the model and its fallback", headers: chatHeaders(), body: `{"model":"gpt","service_tier":"priority",` + msgs + `}`},
		{name: "allowed by the fallback only", headers: chatHeaders(), body: `{"model":"gpt","metadata":{"a":"b"},` + msgs + `}`,
			refused: "metadata", wantBody: `"param":"metadata","code":"invalid_params"`},
		{name: "allowed by the model, not by its fallback", headers: chatHeaders(), body: `{"model":"gpt","prediction":{"type":"content","content":"x"},` + msgs + `}`,
			refused: "prediction", wantBody: `for model gpt (through its fallback msgs-only) on this gateway`},
		{name: "not allowed at all", headers: chatHeaders(), body: `{"model":"gpt","web_search_options":{},` + msgs + `}`,
			refused: "web_search_options", wantBody: `"param":"web_search_options"`},
		{name: "unknown field", headers: chatHeaders(), body: `{"model":"gpt","background":true,` + msgs + `}`,
			refused: "background", wantBody: `the operator can allow \"field:background\"`},
		{name: "model without allowed_params", headers: chatHeaders(), body: `{"model":"old","service_tier":"flex",` + msgs + `}`,
			refused: "service_tier", wantBody: `"param":"service_tier"`},
		{name: "harmless value needs nothing", headers: chatHeaders(), body: `{"model":"old","service_tier":"default","store":false,` + msgs + `}`},
		{name: "anthropic metadata allowed", headers: anthropicHeaders(""), body: `{"model":"msgs-only","max_tokens":5,"metadata":{"user_id":"u"},` + msgs + `}`},
		{name: "anthropic mcp servers", headers: anthropicHeaders(""), body: `{"model":"msgs-only","max_tokens":5,"mcp_servers":[{"type":"url","url":"https://mcp.example.com","name":"x"}],` + msgs + `}`,
			refused: "mcp_servers", wantBody: `{"type":"error","error":{"type":"invalid_request_error","message":"Parameter mcp_servers`},
		{name: "anthropic web search tool", headers: anthropicHeaders(""), body: `{"model":"msgs-only","max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web_search"}],` + msgs + `}`,
			refused: "tools[0]", wantBody: `Parameter tools[0]`},
		{name: "allowed beta", headers: anthropicHeaders("context-1m-2025-08-07, interleaved-thinking-2025-05-14"), body: `{"model":"msgs-only","max_tokens":5,` + msgs + `}`},
		{name: "beta not allowed", headers: anthropicHeaders("context-1m-2025-08-07,mcp-client-2025-04-04"), body: `{"model":"msgs-only","max_tokens":5,` + msgs + `}`,
			refused: "anthropic-beta", wantBody: `anthropic-beta:mcp-client-2025-04-04`},
		{name: "beta not allowed in a repeated header", headers: append(anthropicHeaders("context-1m-2025-08-07"), "anthropic-beta", "files-api-2025-04-14"), body: `{"model":"msgs-only","max_tokens":5,` + msgs + `}`,
			refused: "anthropic-beta", wantBody: `anthropic-beta:files-api-2025-04-14`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := h.open(t)
			s.requestHeaders(false, tt.headers...)
			resp, attempt := h.routeAndAttempt(s, tt.body, "")
			ir := resp.GetImmediateResponse()
			if tt.refused == "" {
				if ir != nil {
					t.Fatalf("refused: %d %s", ir.GetStatus().GetCode(), ir.GetBody())
				}
				if tt.headers[3] == "/v1/messages" {
					// What goes to the provider is the checked list, as one header.
					set, _ := mutations(attempt.GetRequestHeaders().GetResponse().GetHeaderMutation())
					if want := strings.ReplaceAll(strings.Join(headerValuesOf(tt.headers, "anthropic-beta"), ","), " ", ""); set["anthropic-beta"] != want {
						t.Errorf("anthropic-beta sent = %q, want %q", set["anthropic-beta"], want)
					}
				}
				return
			}
			if ir == nil {
				t.Fatalf("want a 400 naming %s, got %v", tt.refused, resp)
			}
			body := string(ir.GetBody())
			if ir.GetStatus().GetCode() != 400 || !strings.Contains(body, tt.wantBody) || !strings.Contains(body, "Parameter "+tt.refused) {
				t.Errorf("got %d %s, want 400 naming %s with %s", ir.GetStatus().GetCode(), body, tt.refused, tt.wantBody)
			}
		})
	}
}

func headerValuesOf(kv []string, name string) []string {
	var out []string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == name {
			out = append(out, kv[i+1])
		}
	}
	return out
}
