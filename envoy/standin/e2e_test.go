package standin_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/contract"
)

// sseEvents is what the fake provider streams, one flush per event.
var sseEvents = []string{
	"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
	"data: {\"choices\":[{\"delta\":{\"content\":\"lo, \"}}]}\n\n",
	": keep-alive\n\n",
	"data: {\"choices\":[{\"delta\":{\"content\":\"world\"}}]}\n\n",
	"data: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":3}}\n\n",
}

// TestEndToEndSSE runs Tollgate's rendered bootstrap through the stand-in the way extproc
// drives real Envoy (docs/design.md section 2): the request_body reply sets x-tollgate-cluster
// with clear_route_cache, rewrites :path, the body and content-length, and writes dynamic
// metadata; the response_headers reply switches the response to STREAMED; each streamed
// chunk is replaced. The client must receive exactly the processor's per-chunk
// replacements, in order, flushed as they come.
//
// Envoy: ext_proc.cc (onReceiveMessage, handleDataStreamedMode), processor_state.cc
// (handleBufferedBodyCallback, clearRouteCache, handleStreamedBodyResponse),
// router config_impl.cc (cluster_header), docs/envoy.md sections 1.5, 1.7, 2.
func TestEndToEndSSE(t *testing.T) {
	for _, seed := range []int64{testSeed, 1, 2, 3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { testEndToEndSSE(t, seed) })
	}
}

func testEndToEndSSE(t *testing.T, seed int64) {
	const upstreamBody = `{"model":"gpt-5.4","stream":true}`
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/chat/completions" || string(body) != upstreamBody || r.Header.Get("x-tollgate-cluster") != "model_0" {
			http.Error(w, fmt.Sprintf("unexpected request %s %q %v", r.URL.Path, body, r.Header), http.StatusBadRequest)
			return
		}
		if want := r.Host; !strings.HasPrefix(want, "127.0.0.1:") {
			http.Error(w, "host not rewritten to the endpoint: "+want, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for _, e := range sseEvents {
			io.WriteString(w, e)
			w.(http.Flusher).Flush()
		}
	})

	// Each streamed chunk comes back as "<n|" + upper(chunk) + "|>"; the reply to the end of
	// stream chunk adds a trailer event.
	chunkN := 0
	proc, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		switch v := m.GetRequest().(type) {
		case *extprocsvc.ProcessingRequest_RequestHeaders:
			return continueAll(m)
		case *extprocsvc.ProcessingRequest_RequestBody:
			r := matching(m, &extprocsvc.CommonResponse{
				HeaderMutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
					setHeader(contract.ClusterHeader, "model_0"),
					setHeader(":path", "/v1/chat/completions"),
					setHeader("content-length", strconv.Itoa(len(upstreamBody))),
				}},
				BodyMutation:    bodyMutation(upstreamBody),
				ClearRouteCache: true,
			})
			r.DynamicMetadata = structOf(t, map[string]any{
				"tollgate": map[string]any{"model": "gpt-5.4", "org_id": "org_1"},
				"other":    map[string]any{"dropped": true},
			})
			return r
		case *extprocsvc.ProcessingRequest_ResponseHeaders:
			r := matching(m, &extprocsvc.CommonResponse{HeaderMutation: &extprocsvc.HeaderMutation{
				SetHeaders:    []*corev3.HeaderValueOption{setHeader("x-request-id", "req_1")},
				RemoveHeaders: []string{"content-length"},
			}})
			r.ModeOverride = &extprocv3.ProcessingMode{ResponseBodyMode: extprocv3.ProcessingMode_STREAMED}
			return r
		case *extprocsvc.ProcessingRequest_ResponseBody:
			chunkN++
			out := fmt.Sprintf("<%d|%s|>", chunkN, strings.ToUpper(string(v.ResponseBody.GetBody())))
			if v.ResponseBody.GetEndOfStream() {
				out += "data: [DONE]\n\n"
			}
			return matching(m, &extprocsvc.CommonResponse{BodyMutation: bodyMutation(out)})
		}
		return nil
	}))

	// Through YAML and back, as `tollgate standin -c envoy.yaml` reads it.
	y, err := bootstrap.Marshal(testBootstrap(t, addr, up))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bootstrap.Load(y)
	if err != nil {
		t.Fatal(err)
	}
	px := startProxySeed(t, b, seed)
	resp, got := do(t, http.MethodPost, px.url("/v1/messages"), `{"model":"claude","stream":true}`,
		"Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	if resp.Header.Get("x-request-id") != "req_1" || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("response headers = %v", resp.Header)
	}

	// Rebuild what the client must see from what the processor was sent.
	var want strings.Builder
	var upstreamSeen bytes.Buffer
	n := 0
	sawEmptyEnd := false
	for _, m := range proc.messages() {
		b := m.GetResponseBody()
		if b == nil {
			continue
		}
		n++
		upstreamSeen.Write(b.GetBody())
		fmt.Fprintf(&want, "<%d|%s|>", n, strings.ToUpper(string(b.GetBody())))
		if b.GetEndOfStream() {
			want.WriteString("data: [DONE]\n\n")
			sawEmptyEnd = len(b.GetBody()) == 0
		}
	}
	if upstreamSeen.String() != strings.Join(sseEvents, "") {
		t.Errorf("chunks sent to the processor = %q, want the upstream body", upstreamSeen.String())
	}
	if !sawEmptyEnd {
		t.Errorf("the stream did not end with an empty end_of_stream chunk")
	}
	if n < 3 {
		t.Errorf("body was sent in %d chunks; the seeded splitter should cut it more", n)
	}
	if got != want.String() {
		t.Errorf("client body =\n%q\nwant\n%q", got, want.String())
	}

	info := px.nextInfo(t)
	if info.Cluster != "model_0" || info.ResponseCodeDetails != "via_upstream" {
		t.Errorf("stream info = %+v", info)
	}
	md := info.DynamicMetadata
	if md["tollgate"].GetFields()["model"].GetStringValue() != "gpt-5.4" {
		t.Errorf("dynamic metadata tollgate = %v", md["tollgate"])
	}
	if _, ok := md["other"]; ok {
		t.Errorf("namespace outside receiving_namespaces was kept: %v", md)
	}
	if b := info.UpstreamHostMetadata.GetFilterMetadata()["tollgate"].GetFields()["backend"].GetStringValue(); b != "backend_0" {
		t.Errorf("upstream host backend = %q", b)
	}

	// The first message carried protocol_config with the configured body modes.
	first := proc.messages()[0]
	if pc := first.GetProtocolConfig(); pc.GetRequestBodyMode() != extprocv3.ProcessingMode_BUFFERED || pc.GetResponseBodyMode() != extprocv3.ProcessingMode_BUFFERED {
		t.Errorf("protocol_config = %v", pc)
	}
}
