package anthropic_test

import (
	"testing"

	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

func TestErrorBody(t *testing.T) {
	tests := []struct {
		status   int
		code     string
		wantType string
	}{
		{400, apierror.CodeInvalidParams, "invalid_request_error"},
		{401, apierror.CodeAuthInvalid, "authentication_error"},
		{402, apierror.CodeInsufficientQuota, "billing_error"},
		{403, apierror.CodeGatewayDisabled, "permission_error"},
		{404, apierror.CodeInvalidModel, "not_found_error"},
		{413, apierror.CodeRequestTooLarge, "request_too_large"},
		{422, apierror.CodeInvalidParams, "invalid_request_error"},
		{429, apierror.CodeRateLimit, "rate_limit_error"},
		{500, apierror.CodeInternal, "api_error"},
		{502, apierror.CodeProviderError, "api_error"},
		{502, apierror.CodeNoProviderAvailable, "overloaded_error"},
		{503, apierror.CodeServiceUnavailable, "overloaded_error"},
		{504, apierror.CodeProviderTimeout, "timeout_error"},
		{524, apierror.CodeProviderTimeout, "timeout_error"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			e := apierror.New(tt.status, tt.code, `Say "hi" <now>`)
			want := `{"type":"error","error":{"type":"` + tt.wantType + `","message":"Say \"hi\" \u003cnow\u003e"}}`
			if got := string(anthropic.ErrorBody(e)); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestStreamError(t *testing.T) {
	got := string(anthropic.StreamError([]byte("x"), apierror.New(529, "overloaded", "Overloaded")))
	want := "x" + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEncodeResponse(t *testing.T) {
	text := "Hello"
	refusal := "I can't help with that."
	tests := []struct {
		name string
		c    openai.ChatCompletion
		want string
	}{
		{
			name: "text with cached usage",
			c: openai.ChatCompletion{ID: "chatcmpl-1", Choices: []openai.Choice{{Message: openai.ResponseMessage{Role: "assistant", Content: &text}, FinishReason: "stop"}},
				Usage: &openai.Usage{PromptTokens: 100, CompletionTokens: 7, TotalTokens: 107, PromptTokensDetails: &openai.PromptTokensDetails{CachedTokens: 60}}},
			want: `{"id":"msg_chatcmpl-1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":40,"cache_creation_input_tokens":0,"cache_read_input_tokens":60,"output_tokens":7}}`,
		},
		{
			name: "reasoning and tool calls, bad arguments",
			c: openai.ChatCompletion{ID: "msg_2", Choices: []openai.Choice{{Message: openai.ResponseMessage{Role: "assistant", ReasoningContent: "hmm", ToolCalls: []openai.ToolCall{
				{ID: "call_a", Type: "function", Function: openai.FunctionCall{Name: "f", Arguments: `{"x": 1}`}},
				{ID: "call_b", Type: "function", Function: openai.FunctionCall{Name: "g", Arguments: `{"x": 1`}},
			}}, FinishReason: "tool_calls"}}},
			want: `{"id":"msg_2","type":"message","role":"assistant","model":"claude-x","content":[{"type":"thinking","thinking":"hmm","signature":""},{"type":"tool_use","id":"call_a","name":"f","input":{"x":1}},{"type":"tool_use","id":"call_b","name":"g","input":{}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`,
		},
		{
			name: "length",
			c:    openai.ChatCompletion{ID: "x", Choices: []openai.Choice{{Message: openai.ResponseMessage{Content: &text}, FinishReason: "length"}}},
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hello"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`,
		},
		{
			name: "content filter",
			c:    openai.ChatCompletion{ID: "x", Choices: []openai.Choice{{Message: openai.ResponseMessage{}, FinishReason: "content_filter"}}},
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":"refusal","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`,
		},
		{
			name: "refusal",
			c:    openai.ChatCompletion{ID: "x", Choices: []openai.Choice{{Message: openai.ResponseMessage{Refusal: &refusal}, FinishReason: "stop"}}},
			want: `{"id":"msg_x","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"I can't help with that."}],"stop_reason":"refusal","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(anthropic.EncodeResponse(&tt.c, "claude-x")); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestModelList checks the Models API shapes (https://docs.claude.com/en/api/models-list) the
// gateway answers an Anthropic client's listing with, from the neutral model description.
func TestModelList(t *testing.T) {
	models := []openai.Model{
		{ID: "claude-x", Created: 1767225600, OwnedBy: "anthropic", Lifecycle: "GA"},
		{ID: "eu/gpt-5.4", Created: 1767225600, OwnedBy: "openai", SupportedEndpointTypes: []string{"chat_completions"}},
	}
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"list", anthropic.ModelList(models),
			`{"data":[{"type":"model","id":"claude-x","display_name":"claude-x","created_at":"2026-01-01T00:00:00Z"},` +
				`{"type":"model","id":"eu/gpt-5.4","display_name":"eu/gpt-5.4","created_at":"2026-01-01T00:00:00Z"}],` +
				`"has_more":false,"first_id":"claude-x","last_id":"eu/gpt-5.4"}`},
		{"empty list", anthropic.ModelList(nil), `{"data":[],"has_more":false,"first_id":null,"last_id":null}`},
		{"one model", anthropic.ModelObject(models[1]),
			`{"type":"model","id":"eu/gpt-5.4","display_name":"eu/gpt-5.4","created_at":"2026-01-01T00:00:00Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", tt.got, tt.want)
			}
		})
	}
}
