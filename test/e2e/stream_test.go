package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestBrokenProviderStreams checks that a provider stream that breaks mid-way ends the client's
// stream with an error event in OpenAI's shape and [DONE] (never a hang), and that what was
// delivered is charged.
func TestBrokenProviderStreams(t *testing.T) {
	s := startStack(t)
	tests := []struct {
		model     string
		wantInErr string
	}{
		{model: "mock-broken-stream", wantInErr: "malformed stream"},
		{model: "mock-cut-stream", wantInErr: "ended before it was complete"},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			resp, body := post(t, s, "/v1/chat/completions",
				`{"model":"`+tt.model+`","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d: %s", resp.StatusCode, body)
			}
			var datas []string
			sc := bufio.NewScanner(bytes.NewReader(body))
			for sc.Scan() {
				if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					datas = append(datas, d)
				}
			}
			if len(datas) < 3 || datas[len(datas)-1] != "[DONE]" {
				t.Fatalf("stream does not end with [DONE]: %q", datas)
			}
			var e errorShape
			if err := json.Unmarshal([]byte(datas[len(datas)-2]), &e); err != nil || e.Error.Code != "provider_error" ||
				!strings.Contains(e.Error.Message, tt.wantInErr) {
				t.Errorf("event before [DONE] = %s, want a provider_error mentioning %q", datas[len(datas)-2], tt.wantInErr)
			}
			requestID := resp.Header.Get("X-Request-Id")
			var finish string
			var cost int64
			eventually(t, "usage row", func() (bool, error) {
				err := s.DB.QueryRow(t.Context(), `SELECT finish_reason, cost_micros FROM usage_records WHERE request_id = $1`, requestID).Scan(&finish, &cost)
				return err == nil, err
			})
			if finish != "incomplete" || cost <= 0 {
				t.Errorf("usage row: finish %q cost %d; want an incomplete, charged request", finish, cost)
			}
		})
	}
}
