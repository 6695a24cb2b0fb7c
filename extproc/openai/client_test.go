package openai

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
)

func TestParseRequestRejects(t *testing.T) {
	user := `{"role":"user","content":"hi"}`
	long := `{"role":"user","content":"` + strings.Repeat("é", MaxMessageChars+1) + `"}`
	many := `[` + strings.TrimSuffix(strings.Repeat(user+",", MaxMessages+1), ",") + `]`
	tests := []struct {
		name      string
		body      string
		wantParam string
		wantInMsg string
	}{
		{name: "not json", body: `{"model":`, wantInMsg: "not valid JSON"},
		{name: "not an object", body: `[1,2]`, wantInMsg: "not valid JSON"},
		{name: "null body", body: `null`, wantInMsg: "JSON object"},
		{name: "missing model", body: `{"messages":[` + user + `]}`, wantParam: "model", wantInMsg: "model is required"},
		{name: "model not a string", body: `{"model":5,"messages":[` + user + `]}`, wantParam: "model"},
		{name: "missing messages", body: `{"model":"m"}`, wantParam: "messages", wantInMsg: "messages is required"},
		{name: "empty messages", body: `{"model":"m","messages":[]}`, wantParam: "messages", wantInMsg: "can not be empty"},
		{name: "null message", body: `{"model":"m","messages":[null]}`, wantParam: "messages", wantInMsg: "null elements"},
		{name: "message without content", body: `{"model":"m","messages":[{"role":"user"}]}`, wantParam: "messages[0].content", wantInMsg: "without content"},
		{name: "too many messages", body: `{"model":"m","messages":` + many + `}`, wantParam: "messages", wantInMsg: "1024"},
		{name: "message too long", body: `{"model":"m","messages":[` + long + `]}`, wantParam: "messages[0].content", wantInMsg: "200000"},
		{name: "system after user", body: `{"model":"m","messages":[` + user + `,{"role":"system","content":"s"},` + user + `]}`, wantParam: "messages[1].role", wantInMsg: "only allowed at the start"},
		{name: "last is assistant", body: `{"model":"m","messages":[` + user + `,{"role":"assistant","content":"a"}]}`, wantParam: "messages", wantInMsg: "last message"},
		{name: "unknown role", body: `{"model":"m","messages":[{"role":"robot","content":"x"}]}`, wantParam: "messages[0].role"},
		{name: "n above one", body: `{"model":"m","n":2,"messages":[` + user + `]}`, wantParam: "n", wantInMsg: "n greater than 1"},
		{name: "stream_options without stream", body: `{"model":"m","stream_options":{"include_usage":true},"messages":[` + user + `]}`, wantParam: "stream_options", wantInMsg: "while stream is false"},
		{name: "temperature too high", body: `{"model":"m","temperature":2.5,"messages":[` + user + `]}`, wantParam: "temperature"},
		{name: "negative temperature", body: `{"model":"m","temperature":-0.1,"messages":[` + user + `]}`, wantParam: "temperature"},
		{name: "zero max_tokens", body: `{"model":"m","max_tokens":0,"messages":[` + user + `]}`, wantParam: "max_tokens"},
		{name: "text part without text", body: `{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}`, wantParam: "messages[0].content[0].text"},
		{name: "content a number", body: `{"model":"m","messages":[{"role":"user","content":7}]}`, wantParam: "messages[0].content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest([]byte(tt.body))
			var e *apierror.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want an *apierror.Error", err)
			}
			if e.Status != 400 || e.Code != apierror.CodeInvalidParams {
				t.Errorf("got %d %s, want 400 invalid_params", e.Status, e.Code)
			}
			if e.Param != tt.wantParam {
				t.Errorf("param = %q, want %q", e.Param, tt.wantParam)
			}
			if !strings.Contains(e.Message, tt.wantInMsg) {
				t.Errorf("message %q does not contain %q", e.Message, tt.wantInMsg)
			}
		})
	}
}

func TestParseRequestAccepts(t *testing.T) {
	body := `{"model":"eu/m","stream":true,"stream_options":{"include_usage":true},"temperature":0.7,
		"max_completion_tokens":50,"max_tokens":10,"top_p":0.9,"user":"u1",
		"messages":[{"role":"developer","content":"d"},{"role":"system","content":"s"},
		{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
		{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
		{"role":"tool","tool_call_id":"c1","content":"42"}]}`
	r, err := ParseRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "eu/m" || !r.Stream || !r.IncludeUsage || *r.Temperature != 0.7 {
		t.Errorf("parsed %+v", r)
	}
	if *r.MaxTokens != 50 || r.usedMaxTokensParam != "max_completion_tokens" {
		t.Errorf("max_completion_tokens should win over max_tokens: %d via %s", *r.MaxTokens, r.usedMaxTokensParam)
	}
	if got := string(r.Messages[2].Content); got != `"ab"` {
		t.Errorf("text parts flattened to %s, want \"ab\"", got)
	}
	if _, ok := r.Extra["user"]; !ok || *r.TopP != 0.9 {
		t.Error("uninterpreted fields must be kept for the provider")
	}

	up, err := BuildRequest(r, "upstream-name")
	if err != nil {
		t.Fatal(err)
	}
	var sent map[string]any
	if err := json.Unmarshal(up, &sent); err != nil {
		t.Fatal(err)
	}
	if sent["model"] != "upstream-name" || sent["top_p"] != 0.9 || sent["user"] != "u1" {
		t.Errorf("upstream body %s", up)
	}
	if so, _ := sent["stream_options"].(map[string]any); so["include_usage"] != true {
		t.Errorf("streams always ask the provider for usage: %s", up)
	}
	if _, ok := sent["max_tokens"]; ok {
		t.Errorf("only the parameter the gateway honoured is forwarded: %s", up)
	}
	if sent["max_completion_tokens"] != 50.0 {
		t.Errorf("max_completion_tokens not forwarded: %s", up)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	f.Add([]byte(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"assistant","tool_calls":[]},{"role":"tool","content":null}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body)
		if err != nil {
			var e *apierror.Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("non-client error %v", err)
			}
			return
		}
		up, err := BuildRequest(r, "u")
		if err != nil {
			t.Fatalf("valid request did not translate: %v", err)
		}
		if !json.Valid(up) {
			t.Fatalf("upstream body is not JSON: %s", up)
		}
		if _, err := ParseRequest(up); err != nil {
			t.Fatalf("upstream body no longer validates: %v\n%s", err, up)
		}
	})
}
