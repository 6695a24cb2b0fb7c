package standin_test

import (
	"io"
	"net/http"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
)

// TestMessageSequence: one gRPC stream per request; request_headers, request_body,
// response_headers, response_body, each only when its mode asks for it and the message has
// a body; end_of_stream on headers when no body follows; protocol_config on the first
// message only.
//
// Envoy: ext_proc.cc Filter::onHeaders, handleDataBufferedMode, encodeProtocolConfig;
// docs/envoy.md sections 1.1 to 1.3.
func TestMessageSequence(t *testing.T) {
	tests := []struct {
		name         string
		mode         *extprocv3.ProcessingMode
		method, body string
		upstream     string // "" answers 204
		want         []string
		wantEOS      []bool
	}{
		{"buffered both ways", nil, http.MethodPost, `{"a":1}`, "hello",
			[]string{"request_headers", "request_body", "response_headers", "response_body"}, []bool{false, true, false, true}},
		{"no request body", nil, http.MethodGet, "", "hello",
			[]string{"request_headers", "response_headers", "response_body"}, []bool{true, false, true}},
		{"header-only response", nil, http.MethodGet, "", "",
			[]string{"request_headers", "response_headers"}, []bool{true, true}},
		{"request headers skipped", &extprocv3.ProcessingMode{
			RequestHeaderMode: extprocv3.ProcessingMode_SKIP, RequestBodyMode: extprocv3.ProcessingMode_BUFFERED,
			ResponseBodyMode: extprocv3.ProcessingMode_BUFFERED,
		}, http.MethodPost, "x", "hello",
			[]string{"request_body", "response_headers", "response_body"}, []bool{true, false, true}},
		{"bodies not sent", &extprocv3.ProcessingMode{}, http.MethodPost, "x", "hello",
			[]string{"request_headers", "response_headers"}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if tt.upstream == "" {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				io.WriteString(w, tt.upstream)
			})
			proc, addr := startProcessor(t, replyEach(continueAll))
			b := testBootstrap(t, addr, up)
			if tt.mode != nil {
				editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) { ep.ProcessingMode = tt.mode })
			}
			px := startProxy(t, b)
			resp, got := do(t, tt.method, px.url("/v1/chat/completions?x=1"), tt.body, "x-tollgate-cluster", "model_0")
			if resp.StatusCode/100 != 2 || got != tt.upstream {
				t.Fatalf("got %d %q", resp.StatusCode, got)
			}
			px.nextInfo(t) // the stream (and its gRPC stream) is done
			msgs := proc.messages()
			if k := kinds(msgs); !slices.Equal(k, tt.want) {
				t.Fatalf("messages = %v, want %v", k, tt.want)
			}
			for i, m := range msgs {
				eos := m.GetRequestHeaders().GetEndOfStream() || m.GetResponseHeaders().GetEndOfStream() ||
					m.GetRequestBody().GetEndOfStream() || m.GetResponseBody().GetEndOfStream()
				if eos != tt.wantEOS[i] {
					t.Errorf("message %d (%s) end_of_stream = %v", i, tt.want[i], eos)
				}
				if (m.GetProtocolConfig() != nil) != (i == 0) {
					t.Errorf("message %d: protocol_config = %v, want it on the first message only", i, m.GetProtocolConfig())
				}
			}
		})
	}
}

// TestHeadersInRawValue: header values travel in raw_value, pseudo-headers included
// (:method :path :authority :scheme on requests, :status on responses).
//
// Envoy: mutation_utils.cc headersToProto (send_header_raw_value was removed: raw_value is
// the only encoding).
func TestHeadersInRawValue(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(http.StatusCreated)
	})
	proc, addr := startProcessor(t, replyEach(routeTo("model_0")))
	px := startProxy(t, testBootstrap(t, addr, up))
	resp, _ := do(t, http.MethodGet, px.url("/v1/models?limit=2"), "", "X-Client", "c")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	px.nextInfo(t)
	msgs := proc.messages()
	reqH := msgs[0].GetRequestHeaders().GetHeaders()
	respH := msgs[1].GetResponseHeaders().GetHeaders()
	for _, want := range []struct {
		hm         *corev3.HeaderMap
		key, value string
	}{
		{reqH, ":method", "GET"},
		{reqH, ":path", "/v1/models?limit=2"},
		{reqH, ":authority", px.Addr()},
		{reqH, ":scheme", "http"},
		{reqH, "x-client", "c"},
		{reqH, "x-forwarded-proto", "http"},
		{respH, ":status", "201"},
		{respH, "x-upstream", "yes"},
	} {
		if got, ok := headerValue(want.hm, want.key); !ok || got != want.value {
			t.Errorf("%s = %q (present %v), want %q", want.key, got, ok, want.value)
		}
	}
	for _, h := range append(reqH.GetHeaders(), respH.GetHeaders()...) {
		if h.GetValue() != "" {
			t.Errorf("header %s uses value, want raw_value only", h.GetKey())
		}
	}
}
