package standin_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
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
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/envoy/standin"
)

// testSeed makes body splitting reproducible; tests that care about splitting also run a
// few seeds.
const testSeed = 20260301

// processFunc is a fake ext_proc server's handling of one stream.
type processFunc func(srv extprocsvc.ExternalProcessor_ProcessServer) error

// fakeProcessor is an in-test ext_proc server. It records every message it receives.
type fakeProcessor struct {
	extprocsvc.UnimplementedExternalProcessorServer
	fn processFunc

	mu        sync.Mutex
	received  []*extprocsvc.ProcessingRequest
	perStream [][]*extprocsvc.ProcessingRequest // received, by stream in the order they opened
	ended     chan error                        // one value per finished stream: the stream's context error
}

func (f *fakeProcessor) Process(srv extprocsvc.ExternalProcessor_ProcessServer) error {
	f.mu.Lock()
	id := len(f.perStream)
	f.perStream = append(f.perStream, nil)
	f.mu.Unlock()
	err := f.fn(&recordingServer{ExternalProcessor_ProcessServer: srv, f: f, id: id})
	select {
	case f.ended <- srv.Context().Err():
	default:
	}
	return err
}

func (f *fakeProcessor) messages() []*extprocsvc.ProcessingRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*extprocsvc.ProcessingRequest(nil), f.received...)
}

// streams returns the messages received, stream by stream.
func (f *fakeProcessor) streams() [][]*extprocsvc.ProcessingRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]*extprocsvc.ProcessingRequest, len(f.perStream))
	for i, ms := range f.perStream {
		out[i] = append([]*extprocsvc.ProcessingRequest(nil), ms...)
	}
	return out
}

type recordingServer struct {
	extprocsvc.ExternalProcessor_ProcessServer
	f  *fakeProcessor
	id int
}

func (r *recordingServer) Recv() (*extprocsvc.ProcessingRequest, error) {
	m, err := r.ExternalProcessor_ProcessServer.Recv()
	if err == nil {
		r.f.mu.Lock()
		r.f.received = append(r.f.received, m)
		r.f.perStream[r.id] = append(r.f.perStream[r.id], m)
		r.f.mu.Unlock()
	}
	return m, err
}

// startProcessor serves fn on a loopback port.
func startProcessor(t *testing.T, fn processFunc) (*fakeProcessor, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeProcessor{fn: fn, ended: make(chan error, 16)}
	s := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	extprocsvc.RegisterExternalProcessorServer(s, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return f, ln.Addr().String()
}

// replyEach answers every message with reply(msg); a nil reply sends nothing. It returns
// when Envoy (the stand-in) ends the stream.
func replyEach(reply func(*extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse) processFunc {
	return func(srv extprocsvc.ExternalProcessor_ProcessServer) error {
		for {
			m, err := srv.Recv()
			if err != nil {
				return nil
			}
			if r := reply(m); r != nil {
				if err := srv.Send(r); err != nil {
					return nil
				}
			}
		}
	}
}

// continueAll answers every message with an empty reply of the matching kind.
func continueAll(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
	return matching(m, &extprocsvc.CommonResponse{})
}

// matching builds the reply kind that answers m, carrying cr.
func matching(m *extprocsvc.ProcessingRequest, cr *extprocsvc.CommonResponse) *extprocsvc.ProcessingResponse {
	switch m.GetRequest().(type) {
	case *extprocsvc.ProcessingRequest_RequestHeaders:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocsvc.HeadersResponse{Response: cr}}}
	case *extprocsvc.ProcessingRequest_ResponseHeaders:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocsvc.HeadersResponse{Response: cr}}}
	case *extprocsvc.ProcessingRequest_RequestBody:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_RequestBody{RequestBody: &extprocsvc.BodyResponse{Response: cr}}}
	case *extprocsvc.ProcessingRequest_ResponseBody:
		return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ResponseBody{ResponseBody: &extprocsvc.BodyResponse{Response: cr}}}
	}
	return nil
}

func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}}
}

func appendHeader(k, v string) *corev3.HeaderValueOption {
	//lint:ignore SA1019 the flag under test: the only one Envoy's ext_proc honours.
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}, Append: wrapperspb.Bool(true)}
}

func bodyMutation(b string) *extprocsvc.BodyMutation {
	return &extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_Body{Body: []byte(b)}}
}

// headerValue returns the raw_value of key in hm, and whether it is there.
func headerValue(hm *corev3.HeaderMap, key string) (string, bool) {
	for _, h := range hm.GetHeaders() {
		if h.GetKey() == key {
			return string(h.GetRawValue()), true
		}
	}
	return "", false
}

// upstream is a test backend.
type upstream struct {
	host string
	port uint32
	tls  bool
}

func startUpstream(t *testing.T, h http.HandlerFunc) upstream {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return upstreamOf(t, srv, false)
}

func upstreamOf(t *testing.T, srv *httptest.Server, tls bool) upstream {
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	return upstream{host: u.Hostname(), port: uint32(port), tls: tls}
}

// testBootstrap renders Tollgate's bootstrap for an extproc address and clusters named
// model_<i>, listening and administering on free loopback ports. The clusters are Direct (no
// upstream filters, outlier detection or retries), so that the conformance tests of the router
// filter's ext_proc see one stream per request; fallbackBootstrap renders model clusters.
func testBootstrap(t *testing.T, extprocAddr string, ups ...upstream) *bootstrapv3.Bootstrap {
	t.Helper()
	return testBootstrapParams(t, extprocAddr, bootstrap.Params{}, ups...)
}

func testBootstrapParams(t *testing.T, extprocAddr string, p bootstrap.Params, ups ...upstream) *bootstrapv3.Bootstrap {
	t.Helper()
	host, port, err := net.SplitHostPort(extprocAddr)
	if err != nil {
		t.Fatal(err)
	}
	pn, _ := strconv.Atoi(port)
	p.ListenAddress = "127.0.0.1"
	p.ListenPort = 1 // replaced by 0 below: Render treats 0 as "default 8080"
	p.ExtProc = bootstrap.Upstream{Host: host, Port: uint32(pn)}
	for i, u := range ups {
		p.Clusters = append(p.Clusters, bootstrap.Cluster{
			Name:       "model_" + strconv.Itoa(i),
			Direct:     true,
			Priorities: [][]bootstrap.Endpoint{{{Backend: "backend_" + strconv.Itoa(i), Host: u.host, Port: u.port, TLS: u.tls}}},
		})
	}
	b, err := bootstrap.Render(p)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	b.GetStaticResources().GetListeners()[0].GetAddress().GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 0}
	b.GetAdmin().GetAddress().GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 0}
	return b
}

// editHCM changes the bootstrap's HTTP connection manager.
func editHCM(t *testing.T, b *bootstrapv3.Bootstrap, edit func(*hcmv3.HttpConnectionManager)) {
	t.Helper()
	f := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0]
	hcm := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	edit(hcm)
	a, err := anypb.New(hcm)
	if err != nil {
		t.Fatal(err)
	}
	f.GetTypedConfig().Value = a.Value
}

// editExtProc changes the ext_proc filter's configuration.
func editExtProc(t *testing.T, b *bootstrapv3.Bootstrap, edit func(*extprocv3.ExternalProcessor)) {
	t.Helper()
	editHCM(t, b, func(hcm *hcmv3.HttpConnectionManager) {
		f := hcm.GetHttpFilters()[0]
		ep := &extprocv3.ExternalProcessor{}
		if err := f.GetTypedConfig().UnmarshalTo(ep); err != nil {
			t.Fatal(err)
		}
		edit(ep)
		a, err := anypb.New(ep)
		if err != nil {
			t.Fatal(err)
		}
		f.GetTypedConfig().Value = a.Value
	})
}

// proxy is a running stand-in and what it reported.
type proxy struct {
	*standin.Proxy
	infos chan standin.StreamInfo
}

func (p *proxy) url(path string) string { return "http://" + p.Addr() + path }

// nextInfo waits (with a deadline) for the next finished stream's info.
func (p *proxy) nextInfo(t *testing.T) standin.StreamInfo {
	t.Helper()
	select {
	case i := <-p.infos:
		return i
	case <-time.After(10 * time.Second):
		t.Fatal("no stream finished")
		return standin.StreamInfo{}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startProxy runs a stand-in for b until the test ends.
func startProxy(t *testing.T, b *bootstrapv3.Bootstrap) *proxy {
	t.Helper()
	return startProxySeed(t, b, testSeed)
}

func startProxySeed(t *testing.T, b *bootstrapv3.Bootstrap, seed int64) *proxy {
	t.Helper()
	infos := make(chan standin.StreamInfo, 64)
	sp, err := standin.New(proto.Clone(b).(*bootstrapv3.Bootstrap), standin.Options{
		SplitSeed: seed,
		OnStreamComplete: func(i standin.StreamInfo) {
			select {
			case infos <- i:
			default: // a test that does not read them
			}
		},
	}, testLogger(t))
	if err != nil {
		t.Fatalf("standin.New: %v", err)
	}
	px := startProxyFrom(t, sp)
	px.infos = infos
	return px
}

// startProxyFrom runs sp until the test ends.
func startProxyFrom(t *testing.T, sp *standin.Proxy) *proxy {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	select {
	case <-sp.Ready():
	case err := <-done:
		t.Fatalf("Start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("stand-in did not become ready")
	}
	return &proxy{Proxy: sp}
}

// do sends a request and reads the whole response.
func do(t *testing.T, method, url, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

func structOf(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// routeTo answers request_headers by routing to cluster (set x-tollgate-cluster and clear
// the route cache, as extproc does) and everything else with an empty reply.
func routeTo(cluster string) func(*extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
	return func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		if m.GetRequestHeaders() != nil {
			return matching(m, &extprocsvc.CommonResponse{
				HeaderMutation:  &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader(contract.ClusterHeader, cluster)}},
				ClearRouteCache: true,
			})
		}
		return continueAll(m)
	}
}

// kinds names the messages, in order.
func kinds(msgs []*extprocsvc.ProcessingRequest) []string {
	var out []string
	for _, m := range msgs {
		switch m.GetRequest().(type) {
		case *extprocsvc.ProcessingRequest_RequestHeaders:
			out = append(out, "request_headers")
		case *extprocsvc.ProcessingRequest_RequestBody:
			out = append(out, "request_body")
		case *extprocsvc.ProcessingRequest_ResponseHeaders:
			out = append(out, "response_headers")
		case *extprocsvc.ProcessingRequest_ResponseBody:
			out = append(out, "response_body")
		default:
			out = append(out, "other")
		}
	}
	return out
}
