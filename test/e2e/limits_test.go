package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// bodyOfSize builds a valid chat request of exactly n bytes: enough 200,000-character user
// messages to fill it.
func bodyOfSize(t *testing.T, n int) string {
	t.Helper()
	const head, tail = `{"model":"mock-gpt","max_tokens":5,"messages":[`, `]}`
	var b strings.Builder
	b.WriteString(head)
	remaining := n - len(head) - len(tail)
	const msgOverhead = len(`{"role":"user","content":""}`)
	for first := true; remaining > 0; first = false {
		if !first {
			b.WriteByte(',')
			remaining--
		}
		size := min(200_000, remaining-msgOverhead)
		if size < 1 {
			t.Fatalf("cannot pad to %d bytes", n)
		}
		fmt.Fprintf(&b, `{"role":"user","content":"%s"}`, strings.Repeat("a", size))
		remaining -= msgOverhead + size
	}
	b.WriteString(tail)
	if b.Len() != n {
		t.Fatalf("built %d bytes, want %d", b.Len(), n)
	}
	return b.String()
}

// TestBodyLimit checks the 32 MiB default: a body just under it is served (so every gRPC message
// limit on the way admits it), one byte over is refused with 413 in OpenAI's shape.
func TestBodyLimit(t *testing.T) {
	s := startStack(t)
	// A 32 MiB prompt is an upper bound of 32 Mi tokens: the hold needs more than the default $5.
	s.tollgate(t, "credits", "add", "--org", s.OrgID, "--usd", "100")
	const limit = 32 << 20
	tests := []struct {
		name       string
		size       int
		wantStatus int
	}{
		{name: "just under the limit", size: limit - 1024, wantStatus: 200},
		{name: "over the limit", size: limit + 1, wantStatus: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, s, "/v1/chat/completions", bodyOfSize(t, tt.size), nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %.300s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == 413 {
				var e errorShape
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != "request_too_large" {
					t.Errorf("413 body is not OpenAI's shape with code request_too_large: %s", body)
				}
			}
		})
	}
}
