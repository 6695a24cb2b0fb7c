package anthropic_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/apierror"
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
			body, err := anthropic.BuildRequest(pivot, "claude-upstream", 4096)
			if err != nil {
				t.Fatal(err)
			}
			a.check(t, "anthropic_request.json", body)
			// What BuildRequest writes is a request the gateway itself accepts as Anthropic's.
			if _, err := anthropic.ParseRequest(body); err != nil {
				t.Errorf("BuildRequest output does not parse as a Messages request: %v", err)
			}
			a.save(t)
		})
	}
}

func TestBuildRequestErrors(t *testing.T) {
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
			_, err = anthropic.BuildRequest(pivot, "claude", tt.defaultMax)
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
	body, err := anthropic.BuildRequest(pivotReq, "claude-sonnet-4-5", 1024)
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
	c, _, err := anthropic.DecodeResponse([]byte(answer), "claude-canonical")
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
	if err := json.Unmarshal(anthropic.EncodeResponse(c, "claude-canonical"), &back); err != nil {
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
	body, err = anthropic.BuildRequest(followUp, "claude-sonnet-4-5", 1024)
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

// TestPath: the Messages API has one path; the model and streaming travel in the body.
func TestPath(t *testing.T) {
	for _, tt := range []struct {
		model  string
		stream bool
	}{{"claude-sonnet-4-5", false}, {"claude-sonnet-4-5", true}, {"", false}} {
		if got := anthropic.Path(tt.model, tt.stream); got != "/v1/messages" {
			t.Errorf("Path(%q, %v) = %q, want /v1/messages", tt.model, tt.stream, got)
		}
	}
}
