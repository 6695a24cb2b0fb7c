package anthropic_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

// TestClientGolden converts Anthropic requests (testdata/client) into the body an OpenAI-kind
// provider receives through the pivot, and into the same-protocol passthrough body.
func TestClientGolden(t *testing.T) {
	for _, path := range archives(t, "client") {
		t.Run(path, func(t *testing.T) {
			a := readArchive(t, path)
			body := a.input(t, "request.json")
			r, err := anthropic.ParseRequest(body)
			if err != nil {
				t.Fatal(err)
			}
			pivot, err := r.ToPivot()
			if err != nil {
				t.Fatal(err)
			}
			if pivot.PromptBytes() <= 0 {
				t.Errorf("PromptBytes = %d, want > 0", pivot.PromptBytes())
			}
			upstream, err := openai.BuildRequest(pivot, "gpt-upstream")
			if err != nil {
				t.Fatal(err)
			}
			a.check(t, "openai_upstream.json", upstream)

			pass, err := anthropic.PassthroughBody(r, "claude-upstream-20250929")
			if err != nil {
				t.Fatal(err)
			}
			// Every field the client sent is forwarded unchanged; only the model is replaced.
			var sent, forwarded map[string]json.RawMessage
			if err := json.Unmarshal(body, &sent); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(pass, &forwarded); err != nil {
				t.Fatal(err)
			}
			if string(forwarded["model"]) != `"claude-upstream-20250929"` {
				t.Errorf("model = %s", forwarded["model"])
			}
			delete(sent, "model")
			delete(forwarded, "model")
			if !maps.EqualFunc(sent, forwarded, sameJSON) {
				t.Errorf("passthrough changed fields:\n%s", pass)
			}
			a.save(t)
		})
	}
}

// sameJSON compares two JSON texts byte for byte, ignoring insignificant whitespace only.
func sameJSON(x, y json.RawMessage) bool {
	var cx, cy bytes.Buffer
	return json.Compact(&cx, x) == nil && json.Compact(&cy, y) == nil && bytes.Equal(cx.Bytes(), cy.Bytes())
}

func TestParseRequestValid(t *testing.T) {
	r, err := anthropic.ParseRequest([]byte(`{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,
		"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"The answer is"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "claude-sonnet-4-5" || r.MaxTokens != 64 || !r.Stream || len(r.Messages) != 2 {
		t.Errorf("got %+v", r)
	}
	if !r.Messages[1].IsString || *r.Messages[1].Blocks[0].Text != "The answer is" {
		t.Errorf("prefill message = %+v", r.Messages[1])
	}
}

func TestParseRequestErrors(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"Hi"}]`
	tests := []struct {
		name, body, param string
	}{
		{"not json", `{`, ""},
		{"not object", `[]`, ""},
		{"null body", `null`, ""},
		{"model missing", `{"max_tokens":1,` + msgs + `}`, "model"},
		{"model not string", `{"model":1,"max_tokens":1,` + msgs + `}`, "model"},
		{"max_tokens missing", `{"model":"m",` + msgs + `}`, "max_tokens"},
		{"max_tokens zero", `{"model":"m","max_tokens":0,` + msgs + `}`, "max_tokens"},
		{"max_tokens fractional", `{"model":"m","max_tokens":1.5,` + msgs + `}`, "max_tokens"},
		{"messages missing", `{"model":"m","max_tokens":1}`, "messages"},
		{"messages empty", `{"model":"m","max_tokens":1,"messages":[]}`, "messages"},
		{"messages not array", `{"model":"m","max_tokens":1,"messages":{}}`, "messages"},
		{"message null", `{"model":"m","max_tokens":1,"messages":[null]}`, "messages"},
		{"role system", `{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}`, "messages[0].role"},
		{"role missing", `{"model":"m","max_tokens":1,"messages":[{"content":"x"}]}`, "messages[0].role"},
		{"content missing", `{"model":"m","max_tokens":1,"messages":[{"role":"user"}]}`, "messages[0].content"},
		{"content number", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":3}]}`, "messages[0].content"},
		{"block type missing", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"text":"x"}]}]}`, "messages[0].content[0].type"},
		{"text missing", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages[0].content[0].text"},
		{"image source missing", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image"}]}]}`, "messages[0].content[0].source"},
		{"image base64 no data", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png"}}]}]}`, "messages[0].content[0].source"},
		{"tool_use in user", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]}]}`, "messages[0].content[0].type"},
		{"tool_use input not object", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"b","input":[]}]}]}`, "messages[1].content[0].input"},
		{"tool_result in assistant", `{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"a"}]}]}`, "messages[0].content[0].type"},
		{"tool_result without id", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}`, "messages[0].content[0].tool_use_id"},
		{"too long", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"` + strings.Repeat("a", openai.MaxMessageChars+1) + `"}]}`, "messages[0].content"},
		{"system number", `{"model":"m","max_tokens":1,"system":1,` + msgs + `}`, "system"},
		{"system image block", `{"model":"m","max_tokens":1,"system":[{"type":"image"}],` + msgs + `}`, "system[0]"},
		{"temperature high", `{"model":"m","max_tokens":1,"temperature":1.5,` + msgs + `}`, "temperature"},
		{"temperature negative", `{"model":"m","max_tokens":1,"temperature":-0.1,` + msgs + `}`, "temperature"},
		{"top_p high", `{"model":"m","max_tokens":1,"top_p":2,` + msgs + `}`, "top_p"},
		{"top_k negative", `{"model":"m","max_tokens":1,"top_k":-1,` + msgs + `}`, "top_k"},
		{"stop_sequences string", `{"model":"m","max_tokens":1,"stop_sequences":"x",` + msgs + `}`, "stop_sequences"},
		{"stream string", `{"model":"m","max_tokens":1,"stream":"yes",` + msgs + `}`, "stream"},
		{"tool without name", `{"model":"m","max_tokens":1,"tools":[{"input_schema":{}}],` + msgs + `}`, "tools[0].name"},
		{"tool without schema", `{"model":"m","max_tokens":1,"tools":[{"name":"f"}],` + msgs + `}`, "tools[0].input_schema"},
		{"tool_choice unknown", `{"model":"m","max_tokens":1,"tool_choice":{"type":"required"},` + msgs + `}`, "tool_choice.type"},
		{"tool_choice tool no name", `{"model":"m","max_tokens":1,"tool_choice":{"type":"tool"},` + msgs + `}`, "tool_choice.name"},
		{"metadata string", `{"model":"m","max_tokens":1,"metadata":"x",` + msgs + `}`, "metadata"},
		{"thinking type", `{"model":"m","max_tokens":2048,"thinking":{"type":"on"},` + msgs + `}`, "thinking.type"},
		{"thinking budget small", `{"model":"m","max_tokens":2048,"thinking":{"type":"enabled","budget_tokens":100},` + msgs + `}`, "thinking.budget_tokens"},
		{"thinking budget over max", `{"model":"m","max_tokens":2048,"thinking":{"type":"enabled","budget_tokens":2048},` + msgs + `}`, "thinking.budget_tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := anthropic.ParseRequest([]byte(tt.body))
			var e *apierror.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *apierror.Error", err)
			}
			if e.Status != 400 || e.Code != apierror.CodeInvalidParams || e.Param != tt.param {
				t.Errorf("got %d %s param %q (%s), want 400 invalid_params param %q", e.Status, e.Code, e.Param, e.Message, tt.param)
			}
		})
	}
}

func TestToPivotUnsupported(t *testing.T) {
	tests := []struct{ name, body, param string }{
		{"server tool", `{"model":"m","max_tokens":1,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"q"}]}`, "tools[0]"},
		{"pdf document", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBER"}}]}]}`, "messages[0].content[0]"},
		{"file image", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"file_1"}}]}]}`, "messages[0].content[0].source"},
		{"unknown block", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"search_result"}]}]}`, "messages[0].content[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := anthropic.ParseRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err) // valid for the same-protocol path
			}
			_, err = r.ToPivot()
			var e *apierror.Error
			if !errors.As(err, &e) || e.Status != 400 || e.Param != tt.param {
				t.Errorf("err = %v, want 400 naming %q", err, tt.param)
			}
		})
	}
}
