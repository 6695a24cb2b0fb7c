package standin_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// TestModeOverride: mode_override is honoured only with allow_mode_override, only while a
// headers reply is awaited, and always copies both body modes (so an override that names
// only response_body_mode, sent in the request_headers reply, turns the request body off);
// allowed_override_modes restricts it. A mode the stand-in does not implement fails the
// request loudly.
//
// Envoy: ext_proc.cc Filter::onReceiveMessage (allow_mode_override, inHeaderProcessState,
// allowed_override_modes), effectiveModeOverride; docs/envoy.md section 1.4.
func TestModeOverride(t *testing.T) {
	streamed := &extprocv3.ProcessingMode{ResponseBodyMode: extprocv3.ProcessingMode_STREAMED}
	tests := []struct {
		name       string
		allow      bool
		allowed    []*extprocv3.ProcessingMode
		on         string // the message whose reply carries the override
		override   *extprocv3.ProcessingMode
		wantStatus int
		want       []string
		streamed   bool // the response body went STREAMED
	}{
		{"not allowed", false, nil, "response_headers", streamed, 200,
			[]string{"request_headers", "request_body", "response_headers", "response_body"}, false},
		{"on response_headers", true, nil, "response_headers", streamed, 200,
			[]string{"request_headers", "request_body", "response_headers", "response_body"}, true},
		{"body modes always copied", true, nil, "request_headers", streamed, 200,
			[]string{"request_headers", "response_headers", "response_body"}, true},
		{"ignored in a body reply", true, nil, "request_body", &extprocv3.ProcessingMode{}, 200,
			[]string{"request_headers", "request_body", "response_headers", "response_body"}, false},
		{"not in allowed_override_modes", true, []*extprocv3.ProcessingMode{{
			RequestBodyMode: extprocv3.ProcessingMode_BUFFERED, ResponseBodyMode: extprocv3.ProcessingMode_NONE,
		}}, "response_headers", streamed, 200,
			[]string{"request_headers", "request_body", "response_headers", "response_body"}, false},
		{"in allowed_override_modes", true, []*extprocv3.ProcessingMode{{
			// Compared on every field but request_header_mode, after the override is
			// resolved against the configured mode (response headers SEND).
			ResponseHeaderMode: extprocv3.ProcessingMode_SEND,
			RequestBodyMode:    extprocv3.ProcessingMode_NONE, ResponseBodyMode: extprocv3.ProcessingMode_STREAMED,
		}}, "response_headers", streamed, 200,
			[]string{"request_headers", "request_body", "response_headers", "response_body"}, true},
		{"unimplemented mode fails loudly", true, nil, "request_headers",
			&extprocv3.ProcessingMode{RequestBodyMode: extprocv3.ProcessingMode_STREAMED}, 500,
			[]string{"request_headers"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.(http.Flusher).Flush() // chunked: STREAMED ends with an empty chunk
				w.Write([]byte("reply"))
			})
			proc, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				r := continueAll(m)
				if kinds([]*extprocsvc.ProcessingRequest{m})[0] == tt.on {
					r.ModeOverride = tt.override
				}
				return r
			}))
			b := testBootstrap(t, addr, up)
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
				ep.AllowModeOverride = tt.allow
				ep.AllowedOverrideModes = tt.allowed
			})
			px := startProxy(t, b)
			resp, body := do(t, http.MethodPost, px.url("/"), "request", "x-tollgate-cluster", "model_0")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d %q", resp.StatusCode, body)
			}
			info := px.nextInfo(t)
			// STREAMED sends as many response_body messages as the splitter cut chunks:
			// compare runs of kinds.
			if got := slices.Compact(kinds(proc.messages())); !slices.Equal(got, slices.Compact(tt.want)) {
				t.Errorf("messages = %v, want %v", got, tt.want)
			}
			var bodies []*extprocsvc.HttpBody
			for _, m := range proc.messages() {
				if b := m.GetResponseBody(); b != nil {
					bodies = append(bodies, b)
				}
			}
			// BUFFERED sends one message with the whole body; STREAMED ends with an empty
			// end_of_stream chunk after the data.
			if tt.streamed {
				if last := bodies[len(bodies)-1]; len(bodies) < 2 || len(last.GetBody()) != 0 || !last.GetEndOfStream() {
					t.Errorf("STREAMED body messages = %v", bodies)
				}
			} else if len(bodies) > 1 {
				t.Errorf("BUFFERED body sent in %d messages", len(bodies))
			}
			if tt.wantStatus == 500 && !strings.HasPrefix(info.ResponseCodeDetails, "standin_not_implemented") {
				t.Errorf("details = %q", info.ResponseCodeDetails)
			}
		})
	}
}
