package mockprovider

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/sse"
)

func TestMockProtocols(t *testing.T) {
	srv := httptest.NewServer(Handler(Config{APIKey: "k"}, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	tests := []struct {
		name       string
		path       string
		header     map[string]string
		body       string
		wantStatus int
		wantIn     []string
		wantEvents int // for streams: at least this many SSE events
	}{
		{name: "openai", path: "/v1/chat/completions", header: map[string]string{"Authorization": "Bearer k"},
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 200, wantIn: []string{`You said: hi`, `"completion_tokens":9`}},
		{name: "openai wrong key", path: "/v1/chat/completions", header: map[string]string{"Authorization": "Bearer x"},
			body: `{}`, wantStatus: 401, wantIn: []string{"Incorrect API key"}},
		{name: "openai tool call", path: "/v1/chat/completions", header: map[string]string{"Authorization": "Bearer k"},
			body:       `{"model":"m","tools":[{"type":"function","function":{"name":"weather"}}],"messages":[{"role":"user","content":"hi"}]}`,
			wantStatus: 200, wantIn: []string{`"name":"weather"`, `"finish_reason":"tool_calls"`}},
		{name: "openai tool result", path: "/v1/chat/completions", header: map[string]string{"Authorization": "Bearer k"},
			body:       `{"model":"m","tools":[{"type":"function","function":{"name":"weather"}}],"messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"c","content":"sunny"}]}`,
			wantStatus: 200, wantIn: []string{`The tool said: sunny`}},
		{name: "openai stream", path: "/v1/chat/completions", header: map[string]string{"Authorization": "Bearer k"},
			body:       `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`,
			wantStatus: 200, wantIn: []string{`"usage":{`, "[DONE]"}, wantEvents: 12},
		{name: "anthropic", path: "/v1/messages", header: map[string]string{"X-Api-Key": "k", "Anthropic-Version": "2023-06-01"},
			body: `{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`, wantStatus: 200, wantIn: []string{`"type":"message"`, `You said: hi`, `"stop_reason":"end_turn"`}},
		{name: "anthropic needs a version", path: "/v1/messages", header: map[string]string{"X-Api-Key": "k"},
			body: `{"model":"m","max_tokens":5,"messages":[]}`, wantStatus: 400, wantIn: []string{"anthropic-version"}},
		{name: "anthropic stream tool", path: "/v1/messages", header: map[string]string{"X-Api-Key": "k", "Anthropic-Version": "2023-06-01"},
			body:       `{"model":"m","max_tokens":50,"stream":true,"tools":[{"name":"weather","input_schema":{}}],"messages":[{"role":"user","content":"hi"}]}`,
			wantStatus: 200, wantIn: []string{"event: message_start", `"type":"input_json_delta"`, `"stop_reason":"tool_use"`, "event: message_stop"}, wantEvents: 7},
		{name: "anthropic overloaded", path: "/v1/messages", header: map[string]string{"X-Api-Key": "k", "Anthropic-Version": "2023-06-01"},
			body: `{"model":"mock-error-503","max_tokens":5,"messages":[]}`, wantStatus: 529, wantIn: []string{"overloaded_error"}},
		{name: "gemini", path: "/v1beta/models/m:generateContent", header: map[string]string{"X-Goog-Api-Key": "k"},
			body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`, wantStatus: 200, wantIn: []string{`"finishReason":"STOP"`, `You said: hi`, `"promptTokenCount"`}},
		{name: "gemini stream", path: "/v1beta/models/m:streamGenerateContent?alt=sse", header: map[string]string{"X-Goog-Api-Key": "k"},
			body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`, wantStatus: 200, wantIn: []string{`"finishReason":"STOP"`}, wantEvents: 9},
		{name: "anthropic count", path: "/v1/messages/count_tokens", header: map[string]string{"X-Api-Key": "k", "Anthropic-Version": "2023-06-01"},
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 200, wantIn: []string{`{"input_tokens":4}`}},
		{name: "anthropic count refuses max_tokens", path: "/v1/messages/count_tokens", header: map[string]string{"X-Api-Key": "k", "Anthropic-Version": "2023-06-01"},
			body: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, wantStatus: 400, wantIn: []string{"max_tokens"}},
		{name: "gemini count", path: "/v1beta/models/m:countTokens", header: map[string]string{"X-Goog-Api-Key": "k"},
			body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`, wantStatus: 200, wantIn: []string{`"totalTokens":4`, `"modality":"TEXT"`}},
		{name: "gemini count, wrapped", path: "/v1beta/models/m:countTokens", header: map[string]string{"X-Goog-Api-Key": "k"},
			body: `{"generateContentRequest":{"model":"models/m","contents":[{"role":"user","parts":[{"text":"hi"}]}]}}`, wantStatus: 200, wantIn: []string{`"totalTokens":4`}},
		{name: "gemini count, wrapped without its model", path: "/v1beta/models/m:countTokens", header: map[string]string{"X-Goog-Api-Key": "k"},
			body: `{"generateContentRequest":{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}}`, wantStatus: 400, wantIn: []string{"models/m"}},
		{name: "gemini tool call", path: "/v1beta/models/m:generateContent", header: map[string]string{"X-Goog-Api-Key": "k"},
			body:       `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"weather"}]}]}`,
			wantStatus: 200, wantIn: []string{`"functionCall":{"args":{"city":"Paris"},"name":"weather"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+tt.path, strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(string(body), w) {
					t.Errorf("body lacks %q: %s", w, body)
				}
			}
			if tt.wantEvents > 0 {
				var d sse.Decoder
				events, err := d.Feed(nil, body)
				if err != nil || len(events) < tt.wantEvents || d.Pending() {
					t.Errorf("%d events (err %v, pending %v), want at least %d", len(events), err, d.Pending(), tt.wantEvents)
				}
			}
		})
	}
}
