package standin_test

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// rewriteErrors is a processor that routes nothing itself and rewrites every error
// response's body, the way extproc turns Envoy's replies into the client's protocol:
// through the BUFFERED body reply (fixing content-length) or, for a header-only reply,
// CONTINUE_AND_REPLACE.
func rewriteErrors(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
	const body = `{"error":"rewritten"}`
	switch {
	case m.GetResponseHeaders() != nil && m.GetResponseHeaders().GetEndOfStream():
		return matching(m, &extprocsvc.CommonResponse{
			Status:       extprocsvc.CommonResponse_CONTINUE_AND_REPLACE,
			BodyMutation: bodyMutation(body),
		})
	case m.GetResponseBody() != nil:
		return matching(m, &extprocsvc.CommonResponse{
			HeaderMutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				setHeader("content-length", strconv.Itoa(len(body))), setHeader("content-type", "application/json"),
			}},
			BodyMutation: bodyMutation(body),
		})
	}
	return continueAll(m)
}

// TestLocalRepliesGoThroughExtProc: Envoy's own replies (413 request too large, 503 no or
// unknown cluster, 503 upstream connect failure, 504 upstream timeout, 408 stream idle
// timeout) are sent through the filter chain before any response exists, so ext_proc's
// encode path sends them to the processor as response_headers (with their :status) and,
// if they have a body, response_body, and the processor can rewrite them.
//
// Envoy: source/common/http/filter_manager.cc sendLocalReply → sendLocalReplyViaFilterChain;
// filter_manager.cc ActiveStreamDecoderFilter::requestDataTooLarge (413 "Payload Too
// Large"); router.cc decodeHeaders (cluster_not_found, body ""), onUpstreamReset ("upstream
// connect error or disconnect/reset before headers. reset reason: …"),
// onUpstreamTimeoutAbort ("upstream request timeout"); conn_manager_impl.cc onIdleTimeout
// (408 "stream timeout").
func TestLocalRepliesGoThroughExtProc(t *testing.T) {
	closedPort := func(t *testing.T) upstream {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u := upstream{host: "127.0.0.1", port: uint32(ln.Addr().(*net.TCPAddr).Port)}
		ln.Close()
		return u
	}
	hang := func(t *testing.T) upstream {
		return startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // then net/http notices the stand-in hanging up
			<-r.Context().Done()
		})
	}
	tests := []struct {
		name        string
		upstream    func(*testing.T) upstream
		edit        func(*hcmv3.HttpConnectionManager)
		bufferLimit uint32
		cluster     string
		reqBody     string
		wantStatus  int
		envoyBody   string // the local reply's own body, seen by the processor
		wantDetails string
	}{
		{"request too large", echoUpstream, nil, 20, "model_0", strings.Repeat("x", 21), 413, "Payload Too Large", "request_payload_too_large"},
		{"no cluster header", echoUpstream, nil, 0, "", "x", 503, "", "cluster_not_found"},
		{"unknown cluster", echoUpstream, nil, 0, "model_9", "x", 503, "", "cluster_not_found"},
		{"connect failure", closedPort, nil, 0, "model_0", "x", 503,
			"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: ",
			"upstream_reset_before_response_started{remote_connection_failure|"},
		{"upstream timeout", hang, func(h *hcmv3.HttpConnectionManager) {
			h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetRoute().Timeout = durationpb.New(100 * time.Millisecond)
		}, 0, "model_0", "x", 504, "upstream request timeout", "upstream_response_timeout"},
		{"stream idle timeout", hang, func(h *hcmv3.HttpConnectionManager) {
			h.StreamIdleTimeout = durationpb.New(500 * time.Millisecond)
		}, 0, "model_0", "x", 408, "stream timeout", "stream_idle_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, addr := startProcessor(t, replyEach(rewriteErrors))
			b := testBootstrap(t, addr, tt.upstream(t))
			if tt.edit != nil {
				editHCM(t, b, tt.edit)
			}
			if tt.bufferLimit != 0 {
				b.StaticResources.Listeners[0].PerConnectionBufferLimitBytes = wrapperspb.UInt32(tt.bufferLimit)
			}
			px := startProxy(t, b)
			hdr := []string{}
			if tt.cluster != "" {
				hdr = append(hdr, "x-tollgate-cluster", tt.cluster)
			}
			resp, body := do(t, http.MethodPost, px.url("/v1/chat"), tt.reqBody, hdr...)
			if resp.StatusCode != tt.wantStatus || body != `{"error":"rewritten"}` {
				t.Fatalf("got %d %q, want %d with the processor's body", resp.StatusCode, body, tt.wantStatus)
			}
			info := px.nextInfo(t)
			if !strings.HasPrefix(info.ResponseCodeDetails, tt.wantDetails) {
				t.Errorf("details = %q, want prefix %q", info.ResponseCodeDetails, tt.wantDetails)
			}
			var status, seenBody string
			for _, m := range proc.messages() {
				if h := m.GetResponseHeaders(); h != nil {
					status, _ = headerValue(h.GetHeaders(), ":status")
				}
				if b := m.GetResponseBody(); b != nil {
					seenBody = string(b.GetBody())
				}
			}
			if status != strconv.Itoa(tt.wantStatus) || !strings.HasPrefix(seenBody, tt.envoyBody) || (tt.envoyBody == "" && seenBody != "") {
				t.Errorf("processor saw :status %q body %q, want %d %q", status, seenBody, tt.wantStatus, tt.envoyBody)
			}
		})
	}
}

// TestRequestAtBufferLimit: exactly the buffer limit is accepted; one byte more is 413.
//
// Envoy: the buffer's high watermark is exceeded only above the limit
// (filter_manager.cc commonHandleBufferData).
func TestRequestAtBufferLimit(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	_, addr := startProcessor(t, replyEach(continueAll))
	b := testBootstrap(t, addr, up)
	// The limit also bounds buffered responses: "Payload Too Large" (17 bytes) must fit.
	b.StaticResources.Listeners[0].PerConnectionBufferLimitBytes = wrapperspb.UInt32(20)
	px := startProxy(t, b)
	if resp, body := do(t, http.MethodPost, px.url("/"), strings.Repeat("x", 20), "x-tollgate-cluster", "model_0"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("20 bytes: got %d %q", resp.StatusCode, body)
	}
	if resp, body := do(t, http.MethodPost, px.url("/"), strings.Repeat("x", 21), "x-tollgate-cluster", "model_0"); resp.StatusCode != 413 || body != "Payload Too Large" {
		t.Fatalf("21 bytes: got %d %q", resp.StatusCode, body)
	}
}

// TestResetAfterResponseStarted: once upstream headers entered the filter chain, a route
// timeout or an upstream failure can only reset the downstream stream.
//
// Envoy: router.cc onUpstreamAbort (downstream_response_started_ → resetStream);
// filter_manager.cc sendLocalReply (headers already sent → reset).
func TestResetAfterResponseStarted(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	_, addr := startProcessor(t, replyEach(continueAll))
	b := testBootstrap(t, addr, up)
	editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
		h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetRoute().Timeout = durationpb.New(500 * time.Millisecond)
	})
	px := startProxy(t, b)
	req, _ := http.NewRequest(http.MethodGet, px.url("/"), nil)
	req.Header.Set("x-tollgate-cluster", "model_0")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatalf("response completed; want the stream reset")
	}
	info := px.nextInfo(t)
	if !info.Reset || info.ResponseCodeDetails != "upstream_response_timeout" {
		t.Errorf("stream info = %+v", info)
	}
}

// TestResponseOverBufferLimit: a BUFFERED response body over the buffer limit is a 500
// sent directly (the headers are already in the filter chain), not through ext_proc.
//
// Envoy: filter_manager.cc ActiveStreamEncoderFilter::responseDataTooLarge →
// sendLocalReply → sendDirectLocalReply.
func TestResponseOverBufferLimit(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("y", 64)) })
	proc, addr := startProcessor(t, replyEach(continueAll))
	b := testBootstrap(t, addr, up)
	b.StaticResources.Listeners[0].PerConnectionBufferLimitBytes = wrapperspb.UInt32(32)
	px := startProxy(t, b)
	resp, body := do(t, http.MethodGet, px.url("/"), "", "x-tollgate-cluster", "model_0")
	if resp.StatusCode != 500 || body != "Internal Server Error" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	px.nextInfo(t)
	if k := kinds(proc.messages()); strings.Join(k, ",") != "request_headers,response_headers" {
		t.Errorf("messages = %v: the 500 must bypass ext_proc", k)
	}
}
