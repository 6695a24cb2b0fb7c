package standin_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/envoy/standin"
)

// Conformance tests for retries and fallback (docs/design.md section 2, "the second filter"): the
// bootstrap is bootstrap.Render's model cluster, its retry timings shrunk so nothing waits long.

// fastFallback keeps back-off in milliseconds: tests never sleep.
func fastFallback() *bootstrap.Retry {
	return &bootstrap.Retry{
		BackOffBase: time.Millisecond, BackOffMax: 4 * time.Millisecond,
		PerTryTimeout: 5 * time.Second, PerTryIdleTimeout: 5 * time.Second,
		OutlierInterval: time.Hour, BaseEjectionTime: time.Hour, Consecutive5xx: 100,
	}
}

// recorder is a test backend that answers from a script and records what it received.
type recorder struct {
	mu       sync.Mutex
	requests []recorded
	answer   func(n int, w http.ResponseWriter, r *http.Request) // n counts from 1
}

type recorded struct {
	path, body, contentLength, backend string
}

func (rc *recorder) handler(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.requests = append(rc.requests, recorded{r.URL.Path, string(b), r.Header.Get("Content-Length"), r.Header.Get("x-backend")})
	n := len(rc.requests)
	rc.mu.Unlock()
	if int64(len(b)) != r.ContentLength && r.ContentLength >= 0 {
		http.Error(w, "content-length mismatch", http.StatusBadRequest)
		return
	}
	rc.answer(n, w, r)
}

func (rc *recorder) got() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.requests)
}

func statuses(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		code := codes[min(n, len(codes))-1]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"status":%d}`, code)
	}
}

// fallbackProcessor is the fake extproc serving both filters: on the router filter's stream
// it routes to cluster and sets the internal request id; on each upstream filter stream
// (recognised by its host attributes) it answers CONTINUE_AND_REPLACE with a body rebuilt for
// the backend it reached, the path, an x-backend header, and content_length metadata.
func fallbackProcessor(cluster string, replace bool) processFunc {
	return replyEach(fallbackReply(cluster, replace))
}

// fallbackReply is fallbackProcessor's answer to one message.
func fallbackReply(cluster string, replace bool) func(*extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
	return func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		backend := m.GetAttributes()[contract.ExtProcAttributesKey].GetFields()[contract.UpstreamBackendAttribute].GetStringValue()
		if m.GetRequestHeaders() != nil && backend != "" {
			if !replace {
				return matching(m, &extprocsvc.CommonResponse{})
			}
			_, model, _ := strings.Cut(backend, "/")
			body := `{"model":"` + model + `","messages":[]}`
			r := matching(m, &extprocsvc.CommonResponse{
				Status: extprocsvc.CommonResponse_CONTINUE_AND_REPLACE,
				HeaderMutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
					setHeader(":path", "/v1/"+model), setHeader("x-backend", backend),
				}},
				BodyMutation:    bodyMutation(body),
				ClearRouteCache: true, // not honoured upstream
			})
			r.DynamicMetadata = &structpb.Struct{Fields: map[string]*structpb.Value{
				contract.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
					contract.ContentLengthKey: structpb.NewStringValue(strconv.Itoa(len(body))),
				}}),
			}}
			return r
		}
		if m.GetRequestHeaders() != nil {
			return matching(m, &extprocsvc.CommonResponse{
				HeaderMutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
					setHeader(contract.ClusterHeader, cluster),
				}},
				ClearRouteCache: true,
			})
		}
		if rh := m.GetResponseHeaders(); rh != nil {
			// As extproc does for SSE: stream the response body.
			if ct, _ := headerValue(rh.GetHeaders(), "content-type"); ct == "text/event-stream" {
				r := matching(m, &extprocsvc.CommonResponse{HeaderMutation: &extprocsvc.HeaderMutation{RemoveHeaders: []string{"content-length"}}})
				r.ModeOverride = &extprocv3.ProcessingMode{ResponseBodyMode: extprocv3.ProcessingMode_STREAMED}
				return r
			}
		}
		return continueAll(m)
	}
}

// fallbackBootstrap renders one model cluster "model_m" whose levels are the backends.
func fallbackBootstrap(t *testing.T, extprocAddr string, f *bootstrap.Retry, levels ...backendAt) *bootstrapv3.Bootstrap {
	t.Helper()
	c := bootstrap.Cluster{Name: "model_m"}
	for _, l := range levels {
		c.Priorities = append(c.Priorities, []bootstrap.Endpoint{{Backend: l.key, Host: l.up.host, Port: l.up.port}})
	}
	return testBootstrapParams(t, extprocAddr, bootstrap.Params{Retry: f, Clusters: []bootstrap.Cluster{c}})
}

type backendAt struct {
	key string
	up  upstream
}

// upstreamStreams returns, per upstream filter stream, the backend attribute it carried.
func upstreamStreams(f *fakeProcessor) []string {
	var out []string
	for _, m := range f.messages() {
		if v, ok := m.GetAttributes()[contract.ExtProcAttributesKey].GetFields()[contract.UpstreamBackendAttribute]; ok {
			out = append(out, v.GetStringValue())
		}
	}
	return out
}

// isUpstreamStream reports whether a stream is an upstream filter's: its request_headers
// carry the host attribute.
func isUpstreamStream(ms []*extprocsvc.ProcessingRequest) bool {
	if len(ms) == 0 {
		return false
	}
	_, ok := ms[0].GetAttributes()[contract.ExtProcAttributesKey].GetFields()[contract.UpstreamBackendAttribute]
	return ok
}

// downstreamResponseHeaders returns the statuses of the response_headers messages the
// router filter's streams received.
func downstreamResponseHeaders(f *fakeProcessor) []string {
	return responseStatuses(f, false)
}

// upstreamResponseHeaders returns the statuses of the response_headers messages the
// upstream filter streams received, in stream order.
func upstreamResponseHeaders(f *fakeProcessor) []string {
	return responseStatuses(f, true)
}

func responseStatuses(f *fakeProcessor, upstream bool) []string {
	var out []string
	for _, ms := range f.streams() {
		if isUpstreamStream(ms) != upstream {
			continue
		}
		for _, m := range ms {
			if rh := m.GetResponseHeaders(); rh != nil {
				s, _ := headerValue(rh.GetHeaders(), ":status")
				out = append(out, s)
			}
		}
	}
	return out
}

func attemptsOf(info standin.StreamInfo) []string {
	var out []string
	for _, a := range info.Attempts {
		out = append(out, fmt.Sprintf("p%d %s %d%s", a.Priority, a.Backend, a.Status, strings.TrimSuffix(" "+a.Failure, " ")))
	}
	return out
}

// TestRetrySamePriorityThenSuccess: a primary answering 503 twice then 200 is retried on the
// same level (previous_priorities moves on only after update_frequency attempts), each
// attempt translated anew by its own upstream ext_proc stream carrying the backend.
func TestRetrySamePriorityThenSuccess(t *testing.T) {
	primary := &recorder{answer: statuses(503, 503, 200)}
	secondary := &recorder{answer: statuses(200)}
	f, addr := startProcessor(t, fallbackProcessor("model_m", true))
	b := fallbackBootstrap(t, addr, fastFallback(),
		backendAt{"openai/gpt-a", startUpstream(t, primary.handler)},
		backendAt{"anthropic/claude-longer-name", startUpstream(t, secondary.handler)})
	px := startProxy(t, b)

	resp, body := do(t, "POST", px.url("/v1/chat/completions"), `{"model":"m"}`)
	if resp.StatusCode != 200 || body != `{"status":200}` {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	info := px.nextInfo(t)
	if got, want := attemptsOf(info), []string{"p0 openai/gpt-a 503 retried", "p0 openai/gpt-a 503 retried", "p0 openai/gpt-a 200"}; !slices.Equal(got, want) {
		t.Errorf("attempts = %q, want %q", got, want)
	}
	if n := len(secondary.got()); n != 0 {
		t.Errorf("secondary got %d requests", n)
	}
	if got := upstreamStreams(f); !slices.Equal(got, []string{"openai/gpt-a", "openai/gpt-a", "openai/gpt-a"}) {
		t.Errorf("upstream ext_proc streams = %q", got)
	}
	if got := downstreamResponseHeaders(f); !slices.Equal(got, []string{"200"}) {
		t.Errorf("router filter saw response_headers %q, want only the final 200", got)
	}
	for _, r := range primary.got() {
		if r.path != "/v1/gpt-a" || r.body != `{"model":"gpt-a","messages":[]}` || r.backend != "openai/gpt-a" {
			t.Errorf("primary got %+v", r)
		}
	}
	if st := px.Stats(); st.UpstreamRqRetry != 2 {
		t.Errorf("retries = %d, want 2", st.UpstreamRqRetry)
	}
}

// TestFallbackToNextPriority: a primary that always fails is tried three times, then the next
// level serves. The fallback's body is longer than the primary's: each attempt gets a fresh
// copy of the router's body, the upstream filter replaces it, and header_mutation sets the
// new content-length from dynamic metadata over the stale one in the shared header map.
func TestFallbackToNextPriority(t *testing.T) {
	primary := &recorder{answer: statuses(503)}
	secondary := &recorder{answer: statuses(200)}
	f, addr := startProcessor(t, fallbackProcessor("model_m", true))
	b := fallbackBootstrap(t, addr, fastFallback(),
		backendAt{"openai/m1", startUpstream(t, primary.handler)},
		backendAt{"anthropic/claude-much-longer-model-name", startUpstream(t, secondary.handler)})
	px := startProxy(t, b)

	resp, body := do(t, "POST", px.url("/v1/chat/completions"), `{"model":"m","stream":false}`)
	if resp.StatusCode != 200 || body != `{"status":200}` {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	info := px.nextInfo(t)
	if got := attemptsOf(info); len(got) != 4 || got[3] != "p1 anthropic/claude-much-longer-model-name 200" || got[2] != "p0 openai/m1 503 retried" {
		t.Errorf("attempts = %q", got)
	}
	sec := secondary.got()
	want := `{"model":"claude-much-longer-model-name","messages":[]}`
	if len(sec) != 1 || sec[0].body != want || sec[0].contentLength != strconv.Itoa(len(want)) || sec[0].path != "/v1/claude-much-longer-model-name" {
		t.Errorf("secondary got %+v, want body %q with content-length %d", sec, want, len(want))
	}
	if got := downstreamResponseHeaders(f); !slices.Equal(got, []string{"200"}) {
		t.Errorf("router filter saw response_headers %q, want only the final 200", got)
	}
	if st := px.Stats(); st.ClearRouteCacheIgnored != 4 {
		t.Errorf("clear_route_cache ignored = %d, want 4 (one per upstream reply)", st.ClearRouteCacheIgnored)
	}
}

// TestRetryStatusCodes: 429 is retried because it is in retriable_status_codes; a 400 is not.
func TestRetryStatusCodes(t *testing.T) {
	for _, tt := range []struct {
		name     string
		codes    []int
		want     int
		attempts int
	}{
		{"429 retried", []int{429, 200}, 200, 2},
		{"400 not retried", []int{400, 200}, 400, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			primary := &recorder{answer: statuses(tt.codes...)}
			_, addr := startProcessor(t, fallbackProcessor("model_m", true))
			px := startProxy(t, fallbackBootstrap(t, addr, fastFallback(), backendAt{"p/m", startUpstream(t, primary.handler)}))
			resp, _ := do(t, "POST", px.url("/v1/x"), `{}`)
			if resp.StatusCode != tt.want || len(primary.got()) != tt.attempts {
				t.Errorf("status %d after %d attempts, want %d after %d", resp.StatusCode, len(primary.got()), tt.want, tt.attempts)
			}
		})
	}
}

// TestRetryConnectFailure: a backend nobody listens on fails to connect three times, then the
// next level serves.
func TestRetryConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	secondary := &recorder{answer: statuses(200)}
	_, addr := startProcessor(t, fallbackProcessor("model_m", true))
	px := startProxy(t, fallbackBootstrap(t, addr, fastFallback(),
		backendAt{"dead/m", upstream{host: "127.0.0.1", port: port}},
		backendAt{"live/m", startUpstream(t, secondary.handler)}))
	resp, _ := do(t, "POST", px.url("/v1/x"), `{}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := attemptsOf(px.nextInfo(t)); !slices.Equal(got, []string{
		"p0 dead/m 0 connect_failure", "p0 dead/m 0 connect_failure", "p0 dead/m 0 connect_failure", "p1 live/m 200",
	}) {
		t.Errorf("attempts = %q", got)
	}
}

// TestRetriesExhausted: with every level failing, num_retries+1 attempts are made and the last
// upstream response goes to the client as it is.
func TestRetriesExhausted(t *testing.T) {
	a := &recorder{answer: statuses(503)}
	c := &recorder{answer: statuses(502)}
	_, addr := startProcessor(t, fallbackProcessor("model_m", true))
	px := startProxy(t, fallbackBootstrap(t, addr, fastFallback(),
		backendAt{"a/m", startUpstream(t, a.handler)}, backendAt{"c/m", startUpstream(t, c.handler)}))
	resp, body := do(t, "POST", px.url("/v1/x"), `{}`)
	if resp.StatusCode != 502 || body != `{"status":502}` {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if len(a.got()) != 3 || len(c.got()) != 3 {
		t.Errorf("attempts: %d on level 0, %d on level 1; want 3 and 3 (num_retries 5)", len(a.got()), len(c.got()))
	}
	if st := px.Stats(); st.UpstreamRqRetryLimitExceeded != 1 {
		t.Errorf("retry limit exceeded = %d", st.UpstreamRqRetryLimitExceeded)
	}
}

// TestNoRetryAfterResponseStarted: a stream whose upstream dies after its headers and first
// bytes is not retried; the client's stream is reset.
func TestNoRetryAfterResponseStarted(t *testing.T) {
	primary := &recorder{answer: func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "data: {\"a\":1}\n\n")
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}}
	secondary := &recorder{answer: statuses(200)}
	_, addr := startProcessor(t, fallbackProcessor("model_m", true))
	px := startProxy(t, fallbackBootstrap(t, addr, fastFallback(),
		backendAt{"a/m", startUpstream(t, primary.handler)}, backendAt{"b/m", startUpstream(t, secondary.handler)}))

	req, _ := http.NewRequest("POST", px.url("/v1/x"), strings.NewReader(`{}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The first chunk may still be with the processor when the upstream resets: Envoy then
	// resets the client's stream without it, so only the headers are certain.
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Errorf("stream ended cleanly, want a reset")
	}
	info := px.nextInfo(t)
	if !info.Reset || len(primary.got()) != 1 || len(secondary.got()) != 0 {
		t.Errorf("reset %v, primary %d, secondary %d: want a reset and no retry", info.Reset, len(primary.got()), len(secondary.got()))
	}
}

// TestPerTryTimeout: an attempt whose response does not come within per_try_timeout is
// retried; when none is left the client gets 504 upstream_per_try_timeout.
func TestPerTryTimeout(t *testing.T) {
	hang := &recorder{answer: func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }}
	fb := fastFallback()
	fb.PerTryTimeout = 30 * time.Millisecond
	fb.MaxRetries = 1
	_, addr := startProcessor(t, fallbackProcessor("model_m", true))
	px := startProxy(t, fallbackBootstrap(t, addr, fb, backendAt{"a/m", startUpstream(t, hang.handler)}))
	resp, body := do(t, "POST", px.url("/v1/x"), `{}`)
	if resp.StatusCode != 504 || body != "upstream request timeout" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	info := px.nextInfo(t)
	if info.ResponseCodeDetails != "upstream_per_try_timeout" || len(info.Attempts) != 2 {
		t.Errorf("details %q after %d attempts", info.ResponseCodeDetails, len(info.Attempts))
	}
}

// TestRouteTimeoutSpansRetries: the route timeout bounds the whole request, retries and back-off
// included, while per_try_timeout bounds each try; when it fires the client gets 504 "upstream
// request timeout" (upstream_response_timeout) and no further try starts, however many retries
// were left. Envoy: source/common/router/router.cc onRequestComplete arms response_timeout_ once
// for the request and doRetry never re-arms it; onResponseTimeout → onUpstreamTimeoutAbort;
// route_components.proto RouteAction.timeout ("spans between the point at which the entire
// downstream request has been processed and when the upstream response has been completely
// processed") and RetryPolicy.per_try_timeout.
func TestRouteTimeoutSpansRetries(t *testing.T) {
	hang := &recorder{answer: func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }}
	fb := fastFallback()
	// One level of three tries (num_retries 2), each allowed 200 ms, under a 300 ms route timeout.
	fb.PerTryTimeout = 200 * time.Millisecond
	_, addr := startProcessor(t, fallbackProcessor("model_m", true))
	b := testBootstrapParams(t, addr, bootstrap.Params{
		Retry:           fb,
		UpstreamTimeout: 300 * time.Millisecond,
		Clusters:        []bootstrap.Cluster{{Name: "model_m", Priorities: [][]bootstrap.Endpoint{{{Backend: "a/m", Host: "127.0.0.1", Port: startUpstream(t, hang.handler).port}}}}},
	})
	px := startProxy(t, b)
	resp, body := do(t, "POST", px.url("/v1/x"), `{}`)
	if resp.StatusCode != 504 || body != "upstream request timeout" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	info := px.nextInfo(t)
	if info.ResponseCodeDetails != "upstream_response_timeout" {
		t.Errorf("details %q, want upstream_response_timeout", info.ResponseCodeDetails)
	}
	if n := len(info.Attempts); n < 1 || n >= 3 {
		t.Errorf("%d attempts: the route timeout must end the request before its retries run out", n)
	}
}

// TestOutlierEjection: after consecutive_5xx failures the host is ejected, so the next request
// starts on the next level without trying it.
func TestOutlierEjection(t *testing.T) {
	primary := &recorder{answer: statuses(503)}
	secondary := &recorder{answer: statuses(200)}
	fb := fastFallback()
	fb.Consecutive5xx = 3
	_, addr := startProcessor(t, fallbackProcessor("model_m", true))
	px := startProxy(t, fallbackBootstrap(t, addr, fb,
		backendAt{"a/m", startUpstream(t, primary.handler)}, backendAt{"b/m", startUpstream(t, secondary.handler)}))
	for range 2 {
		if resp, _ := do(t, "POST", px.url("/v1/x"), `{}`); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if len(primary.got()) != 3 || len(secondary.got()) != 2 {
		t.Errorf("primary %d, secondary %d: want the ejected primary skipped by the second request", len(primary.got()), len(secondary.got()))
	}
	if st := px.Stats(); st.OutlierEjections != 1 {
		t.Errorf("ejections = %d", st.OutlierEjections)
	}
}

// TestUpstreamFilterWithoutReplacement: an upstream reply that replaces nothing leaves the
// router's body and content-length; header_mutation, finding no content_length metadata,
// writes nothing (an empty value is not added).
func TestUpstreamFilterWithoutReplacement(t *testing.T) {
	primary := &recorder{answer: statuses(200)}
	_, addr := startProcessor(t, fallbackProcessor("model_m", false))
	px := startProxy(t, fallbackBootstrap(t, addr, fastFallback(), backendAt{"a/m", startUpstream(t, primary.handler)}))
	if resp, _ := do(t, "POST", px.url("/v1/x"), `{"hello":1}`); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := primary.got(); len(got) != 1 || got[0].body != `{"hello":1}` || got[0].contentLength != "11" {
		t.Errorf("primary got %+v", got)
	}
}

// TestFallbackConfigRefusals: what the stand-in does not implement around retries and
// upstream filters is refused at start-up, naming the place.
func TestFallbackConfigRefusals(t *testing.T) {
	good := func(t *testing.T) *bootstrapv3.Bootstrap {
		_, addr := startProcessor(t, fallbackProcessor("model_m", true))
		return fallbackBootstrap(t, addr, fastFallback(), backendAt{"a/m", upstream{host: "127.0.0.1", port: 1}})
	}
	b := good(t)
	editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
		h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetRetryPolicy().RetryOn += ",retriable-4xx"
	})
	if _, err := standin.New(b, standin.Options{}, testLogger(t)); err == nil || !strings.Contains(err.Error(), `retry_on "retriable-4xx": not implemented`) {
		t.Errorf("retry_on: New error = %v", err)
	}

	b = good(t)
	c := b.GetStaticResources().GetClusters()[1]
	c.GetOutlierDetection().EnforcingSuccessRate = nil
	if _, err := standin.New(b, standin.Options{}, testLogger(t)); err == nil || !strings.Contains(err.Error(), "enforcing_success_rate") {
		t.Errorf("success rate: New error = %v", err)
	}
}

// TestUpstreamResponseHeaders: with response_header_mode SEND, each attempt's upstream
// ext_proc stream gets response_headers with that attempt's :status, after the
// request_headers reply, on the same stream; its reply's header mutation is applied to that
// attempt's response headers before the router decides on a retry, so only the final
// attempt's mutated headers reach the router filter's processor and the client.
//
// Envoy: source/common/router/upstream_request.cc (UpstreamRequestFilterManagerCallbacks::
// encodeHeaders → UpstreamRequest::decodeHeaders → router.cc Filter::onUpstreamHeaders);
// source/extensions/filters/http/ext_proc/ext_proc.cc Filter::encodeHeaders.
func TestUpstreamResponseHeaders(t *testing.T) {
	primary := &recorder{answer: statuses(503, 429, 200)}
	reply := fallbackReply("model_m", true)
	f, addr := startProcessor(t, func(srv extprocsvc.ExternalProcessor_ProcessServer) error {
		upstream := false
		for {
			m, err := srv.Recv()
			if err != nil {
				return nil
			}
			if _, ok := m.GetAttributes()[contract.ExtProcAttributesKey].GetFields()[contract.UpstreamBackendAttribute]; ok {
				upstream = true
			}
			r := reply(m)
			if rh := m.GetResponseHeaders(); rh != nil && upstream {
				st, _ := headerValue(rh.GetHeaders(), ":status")
				r = matching(m, &extprocsvc.CommonResponse{HeaderMutation: &extprocsvc.HeaderMutation{
					SetHeaders: []*corev3.HeaderValueOption{setHeader("x-attempt-status", st)},
				}})
			}
			if err := srv.Send(r); err != nil {
				return nil
			}
		}
	})
	px := startProxy(t, fallbackBootstrap(t, addr, fastFallback(), backendAt{"openai/gpt-a", startUpstream(t, primary.handler)}))
	resp, body := do(t, "POST", px.url("/v1/chat/completions"), `{"model":"m"}`)
	if resp.StatusCode != 200 || body != `{"status":200}` || resp.Header.Get("x-attempt-status") != "200" {
		t.Fatalf("got %d %q, x-attempt-status %q", resp.StatusCode, body, resp.Header.Get("x-attempt-status"))
	}
	px.nextInfo(t)
	if got := upstreamResponseHeaders(f); !slices.Equal(got, []string{"503", "429", "200"}) {
		t.Errorf("upstream response_headers statuses = %q", got)
	}
	var upstreams int
	for _, ms := range f.streams() {
		if !isUpstreamStream(ms) {
			continue
		}
		upstreams++
		if got := kinds(ms); !slices.Equal(got, []string{"request_headers", "response_headers"}) {
			t.Errorf("upstream stream %d messages = %q", upstreams, got)
		}
	}
	if upstreams != 3 {
		t.Errorf("%d upstream streams, want 3", upstreams)
	}
	if got := downstreamResponseHeaders(f); !slices.Equal(got, []string{"200"}) {
		t.Errorf("router filter saw response_headers %q", got)
	}
	// The router filter's processor sees the final attempt's mutated headers.
	for _, ms := range f.streams() {
		for _, m := range ms {
			if rh := m.GetResponseHeaders(); rh != nil && !isUpstreamStream(ms) {
				if v, _ := headerValue(rh.GetHeaders(), "x-attempt-status"); v != "200" {
					t.Errorf("router filter's response_headers x-attempt-status = %q, want 200", v)
				}
			}
		}
	}
}
