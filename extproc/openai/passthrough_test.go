package openai

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/billing"
)

func TestRewriteResponse(t *testing.T) {
	in := `{"id":"x","object":"chat.completion","model":"gpt-5.4-2026-03-01","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"length"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12},"service_tier":"default"}`
	out, u, finish, err := RewriteResponse([]byte(in), "gpt-5.4")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"model":"gpt-5.4"`) || !strings.Contains(string(out), `"service_tier":"default"`) {
		t.Errorf("out = %s", out)
	}
	if want := (billing.Usage{InputTokens: 10, OutputTokens: 2}); finish != "length" || u != want {
		t.Errorf("usage %+v, finish %q; want %+v, length", u, finish, want)
	}
	for _, bad := range []string{`{"choices": [`, `null`} {
		if _, _, _, err := RewriteResponse([]byte(bad), "m"); err == nil {
			t.Errorf("RewriteResponse(%s) accepted a malformed body", bad)
		}
	}
	// Usage that does not decode is no usage: the answer passes, and the gateway estimates it.
	for _, bad := range []string{`{"usage": "lots"}`, `{"usage": {"completion_tokens": 1e12}}`} {
		if _, u, _, err := RewriteResponse([]byte(bad), "m"); err != nil || u != (billing.Usage{}) {
			t.Errorf("RewriteResponse(%s) = %+v, %v; want no usage and no error", bad, u, err)
		}
	}
}

// TestPassthroughBody checks that an OpenAI client's request reaches an OpenAI-kind provider
// exactly as the pivot would: the client's request is the pivot.
func TestPassthroughBody(t *testing.T) {
	for _, body := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":3}`,
		`{"model":"m","stream":true,"max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`,
	} {
		r, err := ParseRequest([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := PassthroughBody(r, "up")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := BuildRequest(r, "up")
		if !bytes.Equal(got, want) || !strings.Contains(string(got), `"model":"up"`) {
			t.Errorf("PassthroughBody = %s\nwant %s", got, want)
		}
	}
}
