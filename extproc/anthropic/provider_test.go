package anthropic_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
)

// TestProviderGolden converts OpenAI requests (testdata/provider), parsed into the pivot, into
// Messages API bodies.
func TestProviderGolden(t *testing.T) {
	for _, path := range archives(t, "provider") {
		t.Run(path, func(t *testing.T) {
			a := readArchive(t, path)
			pivot, err := openai.ParseRequest(a.input(t, "openai.json"))
			if err != nil {
				t.Fatal(err)
			}
			body, err := anthropic.FromOpenAI(pivot, "claude-upstream", 4096)
			if err != nil {
				t.Fatal(err)
			}
			a.check(t, "anthropic_request.json", body)
			// What FromOpenAI writes is a request the gateway itself accepts as Anthropic's.
			if _, err := anthropic.ParseRequest(body); err != nil {
				t.Errorf("FromOpenAI output does not parse as a Messages request: %v", err)
			}
			a.save(t)
		})
	}
}

func TestFromOpenAIErrors(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		defaultMax int64
		param      string // "" for an internal (non-API) error
	}{
		{"no max tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 0, ""},
		{"ftp image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}`, 10, "messages[0].content[0].image_url.url"},
		{"data url not base64", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, 10, "messages[0].content[0].image_url.url"},
		{"audio part", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}`, 10, "messages[0].content[0].type"},
		{"bad tool_choice", `{"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes","messages":[{"role":"user","content":"x"}]}`, 10, "tool_choice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pivot, err := openai.ParseRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			_, err = anthropic.FromOpenAI(pivot, "claude", tt.defaultMax)
			if err == nil {
				t.Fatal("no error")
			}
			var e *apierror.Error
			isAPI := errors.As(err, &e)
			switch {
			case tt.param == "" && isAPI:
				t.Errorf("err = %v, want an internal error", err)
			case tt.param != "" && (!isAPI || e.Param != tt.param || e.Status != 400):
				t.Errorf("err = %v, want 400 naming %q", err, tt.param)
			}
		})
	}
}

// TestResponseGolden converts Anthropic responses (testdata/response) into the pivot with
// billing usage, renders that pivot back in Anthropic's client shape, and passes the original
// through with the model rewritten.
func TestResponseGolden(t *testing.T) {
	for _, path := range archives(t, "response") {
		t.Run(path, func(t *testing.T) {
			a := readArchive(t, path)
			body := a.input(t, "anthropic.json")
			c, bu, err := anthropic.ToOpenAI(body, "claude-canonical")
			if err != nil {
				t.Fatal(err)
			}
			c.Created = 0 // the conversion time
			a.check(t, "pivot.json", mustJSON(t, c))
			a.check(t, "billing.json", mustJSON(t, bu))
			a.check(t, "client.json", anthropic.ResponseFromOpenAI(c, "claude-canonical"))

			out, bu2, stop, err := anthropic.RewriteResponse(body, "claude-canonical")
			if err != nil {
				t.Fatal(err)
			}
			if bu2 != bu {
				t.Errorf("RewriteResponse usage %+v, ToOpenAI usage %+v", bu2, bu)
			}
			var orig struct {
				StopReason string `json:"stop_reason"`
			}
			_ = json.Unmarshal(body, &orig)
			if stop != orig.StopReason {
				t.Errorf("stop = %q, want %q", stop, orig.StopReason)
			}
			a.check(t, "passthrough.json", out)
			a.save(t)
		})
	}
}

func TestToOpenAIMalformed(t *testing.T) {
	for _, body := range []string{``, `{`, `null`, `[]`, `{"type":"error","error":{"type":"api_error","message":"x"}}`, `{"type":"message","content":"x"}`} {
		if _, _, err := anthropic.ToOpenAI([]byte(body), "m"); err == nil {
			t.Errorf("ToOpenAI(%q): no error", body)
		}
	}
	for _, body := range []string{``, `{`, `null`, `[]`} {
		if _, _, _, err := anthropic.RewriteResponse([]byte(body), "m"); err == nil {
			t.Errorf("RewriteResponse(%q): no error", body)
		}
	}
}

func TestUsageMapping(t *testing.T) {
	tests := []struct {
		name        string
		usage       string
		wantOpenAI  openai.Usage
		wantBilling billing.Usage
	}{
		{
			name:        "plain",
			usage:       `{"input_tokens":2095,"output_tokens":503}`,
			wantOpenAI:  openai.Usage{PromptTokens: 2095, CompletionTokens: 503, TotalTokens: 2598, PromptTokensDetails: &openai.PromptTokensDetails{}},
			wantBilling: billing.Usage{InputTokens: 2095, OutputTokens: 503},
		},
		{
			name:        "cache read and write, no TTL split: writes are 5-minute",
			usage:       `{"input_tokens":21,"cache_creation_input_tokens":188086,"cache_read_input_tokens":10,"output_tokens":393}`,
			wantOpenAI:  openai.Usage{PromptTokens: 188117, CompletionTokens: 393, TotalTokens: 188510, PromptTokensDetails: &openai.PromptTokensDetails{CachedTokens: 10}},
			wantBilling: billing.Usage{InputTokens: 21, CacheReadTokens: 10, CacheWriteTokens: 188086, OutputTokens: 393},
		},
		{
			name:        "TTL split",
			usage:       `{"input_tokens":50,"cache_read_input_tokens":1800,"cache_creation_input_tokens":248,"cache_creation":{"ephemeral_5m_input_tokens":148,"ephemeral_1h_input_tokens":100},"output_tokens":503}`,
			wantOpenAI:  openai.Usage{PromptTokens: 2098, CompletionTokens: 503, TotalTokens: 2601, PromptTokensDetails: &openai.PromptTokensDetails{CachedTokens: 1800}},
			wantBilling: billing.Usage{InputTokens: 50, CacheReadTokens: 1800, CacheWriteTokens: 148, CacheWrite1HTokens: 100, OutputTokens: 503},
		},
		{
			name:        "only 1h writes",
			usage:       `{"input_tokens":5,"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":300},"output_tokens":1}`,
			wantOpenAI:  openai.Usage{PromptTokens: 305, CompletionTokens: 1, TotalTokens: 306, PromptTokensDetails: &openai.PromptTokensDetails{}},
			wantBilling: billing.Usage{InputTokens: 5, CacheWrite1HTokens: 300, OutputTokens: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"id":"msg_1","type":"message","role":"assistant","model":"x","content":[],"stop_reason":"end_turn","usage":` + tt.usage + `}`
			c, bu, err := anthropic.ToOpenAI([]byte(body), "m")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := mustJSON(t, c.Usage), mustJSON(t, tt.wantOpenAI); string(got) != string(want) {
				t.Errorf("openai usage = %s, want %s", got, want)
			}
			if bu != tt.wantBilling {
				t.Errorf("billing = %+v, want %+v", bu, tt.wantBilling)
			}
			// The pivot's own billing view agrees on everything but the cache writes it cannot see.
			if pb := c.Usage.Billing(); pb.CacheReadTokens != bu.CacheReadTokens || pb.OutputTokens != bu.OutputTokens ||
				pb.InputTokens != bu.InputTokens+bu.CacheWriteTokens+bu.CacheWrite1HTokens {
				t.Errorf("pivot billing %+v inconsistent with %+v", pb, bu)
			}
		})
	}
}

// TestToolCallingRoundTrip follows one tool call through every conversion: an OpenAI client's
// request with tools goes to Anthropic; Anthropic's tool_use answer comes back to the pivot as
// tool_calls; and the same pivot answer, had an Anthropic client asked, renders as the original
// tool_use block.
func TestToolCallingRoundTrip(t *testing.T) {
	pivotReq, err := openai.ParseRequest([]byte(`{"model":"gpt-5.4","messages":[{"role":"user","content":"Weather in SF?"}],
		"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather","parameters":{"type":"object","properties":{"location":{"type":"string"}}}}}],
		"tool_choice":"required"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, err := anthropic.FromOpenAI(pivotReq, "claude-sonnet-4-5", 1024)
	if err != nil {
		t.Fatal(err)
	}
	var sent struct {
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"input_schema"`
		} `json:"tools"`
		ToolChoice map[string]any `json:"tool_choice"`
	}
	if err := json.Unmarshal(body, &sent); err != nil {
		t.Fatal(err)
	}
	if len(sent.Tools) != 1 || sent.Tools[0].Name != "get_weather" || sent.ToolChoice["type"] != "any" {
		t.Fatalf("request = %s", body)
	}

	answer := `{"id":"msg_01Aq9w938a90dw8q","type":"message","role":"assistant","model":"claude-sonnet-4-5","stop_reason":"tool_use","stop_sequence":null,
		"content":[{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"San Francisco, CA"}}],
		"usage":{"input_tokens":10,"output_tokens":5}}`
	c, _, err := anthropic.ToOpenAI([]byte(answer), "claude-canonical")
	if err != nil {
		t.Fatal(err)
	}
	ch := c.Choices[0]
	if ch.FinishReason != "tool_calls" || ch.Message.Content != nil || len(ch.Message.ToolCalls) != 1 {
		t.Fatalf("pivot = %s", mustJSON(t, c))
	}
	tc := ch.Message.ToolCalls[0]
	if tc.ID != "toolu_01A09q90qw90lq917835lq9" || tc.Function.Name != "get_weather" || tc.Function.Arguments != `{"location":"San Francisco, CA"}` {
		t.Fatalf("tool call = %+v", tc)
	}

	var back, orig struct {
		Content    []json.RawMessage `json:"content"`
		StopReason string            `json:"stop_reason"`
	}
	if err := json.Unmarshal(anthropic.ResponseFromOpenAI(c, "claude-canonical"), &back); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(answer), &orig); err != nil {
		t.Fatal(err)
	}
	if back.StopReason != orig.StopReason || len(back.Content) != 1 || string(compact(t, back.Content[0])) != string(compact(t, orig.Content[0])) {
		t.Errorf("round trip: %s %s, want %s %s", back.StopReason, back.Content, orig.StopReason, orig.Content)
	}

	// The tool's result goes back to Anthropic as a tool_result in the next user turn.
	followUp, err := openai.ParseRequest([]byte(`{"model":"gpt-5.4","messages":[{"role":"user","content":"Weather in SF?"},
		{"role":"assistant","content":null,"tool_calls":[{"id":"toolu_01A09q90qw90lq917835lq9","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"San Francisco, CA\"}"}}]},
		{"role":"tool","tool_call_id":"toolu_01A09q90qw90lq917835lq9","content":"15 degrees"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, err = anthropic.FromOpenAI(followUp, "claude-sonnet-4-5", 1024)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":[{"type":"text","text":"Weather in SF?"}]},` +
		`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"San Francisco, CA"}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A09q90qw90lq917835lq9","content":"15 degrees"}]}]}`
	if string(body) != want {
		t.Errorf("follow-up request\n%s\nwant\n%s", body, want)
	}
}

func compact(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, v)
}
