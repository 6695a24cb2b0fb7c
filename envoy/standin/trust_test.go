package standin_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/envoy/standin"
	"github.com/tollgate/tollgate/peerauth"
	"github.com/tollgate/tollgate/peerauth/peerauthtest"
)

// Conformance tests for the trust boundary: what Envoy sends the sidecars, and what it does to
// a client's headers before any filter sees them.

const peerSecret = "0123456789abcdef0123456789abcdef"

// secretsSeen records the peer-secret metadata of every stream or call a fake server got.
type secretsSeen struct {
	mu   sync.Mutex
	vals [][]string
}

func (s *secretsSeen) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.vals = append(s.vals, md.Get(peerauth.MetadataKey))
	s.mu.Unlock()
}

func (s *secretsSeen) all() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.vals)
}

// TestInitialMetadataOnEveryStream: a GrpcService's initial_metadata goes out on every
// stream Envoy opens to the service — the router ext_proc filter's, each attempt's upstream
// ext_proc filter's — and on every RLS call, stream-done ones included.
//
// Envoy: api/envoy/config/core/v3/grpc_service.proto initial_metadata;
// source/common/grpc/async_client_impl.cc AsyncStreamImpl::initialize ("Fill service-wide
// initial metadata"), used by ext_proc's streams and by the ratelimit client's unary calls.
func TestInitialMetadataOnEveryStream(t *testing.T) {
	var procSeen secretsSeen
	inner := fallbackProcessor("model_m", true)
	f, addr := startProcessor(t, func(srv extprocsvc.ExternalProcessor_ProcessServer) error {
		procSeen.record(srv.Context())
		return inner(srv)
	})
	primary := &recorder{answer: statuses(503, 200)}
	c := bootstrap.Cluster{Name: "model_m", Priorities: [][]bootstrap.Endpoint{
		{{Backend: "openai/gpt-a", Host: "127.0.0.1", Port: startUpstream(t, primary.handler).port}},
	}}
	b := testBootstrapParams(t, addr, bootstrap.Params{Retry: fastFallback(), Clusters: []bootstrap.Cluster{c}, PeerSecret: peerSecret})
	px := startProxy(t, b)
	resp, body := do(t, "POST", px.url("/v1/chat/completions"), `{"model":"m"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	px.nextInfo(t)
	seen := procSeen.all()
	if len(seen) != 3 || len(f.streams()) != 3 {
		t.Fatalf("%d streams recorded, want 3 (router filter, two attempts' upstream filters)", len(seen))
	}
	for i, v := range seen {
		if !slices.Equal(v, []string{peerSecret}) {
			t.Errorf("ext_proc stream %d: %s = %q, want the secret once", i, peerauth.MetadataKey, v)
		}
	}

	// The RLS: the request-path call and the stream-done call.
	var rlsSeen secretsSeen
	rls, rlsAddr := startRLS(t, func(ctx context.Context, _ *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		rlsSeen.record(ctx)
		return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}, nil
	})
	_, addr = startProcessor(t, replyEach(tollgateReplies(t, identity{org: "o1", key: "k1", model: "m"}, 12)))
	var n atomic.Int64
	host, port, _ := net.SplitHostPort(rlsAddr)
	pn, _ := strconv.Atoi(port)
	b = testBootstrapParams(t, addr, bootstrap.Params{
		RateLimit:  &bootstrap.RateLimit{Service: bootstrap.Upstream{Host: host, Port: uint32(pn)}},
		PeerSecret: peerSecret,
	}, countingUpstream(t, &n, nil))
	px = startProxy(t, b)
	if resp, body := do(t, "POST", px.url("/v1/chat/completions"), `{"model":"m"}`); resp.StatusCode != 200 {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	px.nextInfo(t)
	rls.next(t)
	rls.next(t) // the stream-done call
	for i, v := range rlsSeen.all() {
		if !slices.Equal(v, []string{peerSecret}) {
			t.Errorf("RLS call %d: %s = %q, want the secret once", i, peerauth.MetadataKey, v)
		}
	}
}

// TestExtProcOverUnixSocket: a gRPC cluster whose endpoint is a pipe address is reached over
// a Unix socket.
func TestExtProcOverUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "extproc.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeProcessor{fn: replyEach(routeTo("model_0")), ended: make(chan error, 16)}
	s := grpc.NewServer()
	extprocsvc.RegisterExternalProcessorServer(s, f)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)

	var n atomic.Int64
	p := bootstrap.Params{ExtProc: bootstrap.Upstream{Path: path}}
	b := testBootstrapParams(t, "127.0.0.1:1", p, countingUpstream(t, &n, nil))
	// testBootstrapParams sets a TCP extproc; put the socket back.
	b = renderWithExtProc(t, b, p.ExtProc)
	px := startProxy(t, b)
	if resp, body := do(t, "GET", px.url("/x"), ""); resp.StatusCode != 200 || n.Load() != 1 {
		t.Fatalf("got %d %q, upstream saw %d requests", resp.StatusCode, body, n.Load())
	}
	if len(f.messages()) == 0 {
		t.Error("the processor behind the socket got nothing")
	}
}

// renderWithExtProc replaces the extproc cluster of b with one for u.
func renderWithExtProc(t *testing.T, b *bootstrapv3.Bootstrap, u bootstrap.Upstream) *bootstrapv3.Bootstrap {
	t.Helper()
	c, err := bootstrap.GRPCCluster(bootstrap.ExtProcClusterName, u)
	if err != nil {
		t.Fatal(err)
	}
	for i, cl := range b.GetStaticResources().GetClusters() {
		if cl.GetName() == bootstrap.ExtProcClusterName {
			b.StaticResources.Clusters[i] = c
		}
	}
	return b
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestClientCannotSteerEnvoy: with use_remote_address and no internal addresses, every client
// is external: the x-envoy-* headers that steer the router are removed before the first
// filter (so neither ext_proc, the router nor the upstream sees them), retries the client
// asks for do not happen, x-request-id is Envoy's own UUID, x-forwarded-for gets the peer,
// x-forwarded-proto is overwritten and x-envoy-external-address set.
//
// Envoy: source/common/http/conn_manager_utility.cc mutateRequestHeaders, cleanInternalHeaders.
func TestClientCannotSteerEnvoy(t *testing.T) {
	f, addr := startProcessor(t, replyEach(routeTo("model_0")))
	var n atomic.Int64
	var last atomic.Pointer[http.Header]
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h := r.Header.Clone()
		last.Store(&h)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	px := startProxy(t, testBootstrap(t, addr, up))

	steering := []string{
		"x-envoy-max-retries", "5", "x-envoy-retry-on", "5xx,reset", "x-envoy-retriable-status-codes", "503",
		"x-envoy-upstream-rq-timeout-ms", "1", "x-envoy-upstream-rq-per-try-timeout-ms", "1",
		"x-envoy-expected-rq-timeout-ms", "1", "x-envoy-force-trace", "1", "x-envoy-internal", "true",
		"x-envoy-downstream-service-cluster", "evil", "x-envoy-decorator-operation", "op",
		"x-envoy-original-url", "http://x/", "x-envoy-hedge-on-per-try-timeout", "true",
		"x-envoy-upstream-alt-stat-name", "s", "x-envoy-ip-tags", "t", "x-envoy-retry-grpc-on", "cancelled",
		"x-envoy-retriable-header-names", "x", "x-envoy-downstream-service-node", "n",
		"x-envoy-upstream-rq-timeout-alt-response", "204", "x-envoy-external-address", "6.6.6.6",
		"x-forwarded-client-cert", "Hash=x", "x-request-id", "client-chosen",
		"x-forwarded-for", "6.6.6.6", "x-forwarded-proto", "https",
	}
	resp, _ := do(t, "POST", px.url("/v1/chat/completions"), `{}`, steering...)
	if resp.StatusCode != 503 || n.Load() != 1 {
		t.Fatalf("status %d after %d upstream attempts, want the upstream's 503 after exactly 1 (no client-requested retries)", resp.StatusCode, n.Load())
	}
	px.nextInfo(t)

	got := map[string]string{}
	for _, m := range f.messages() {
		if rh := m.GetRequestHeaders(); rh != nil {
			for _, h := range rh.GetHeaders().GetHeaders() {
				got[h.GetKey()] = string(h.GetRawValue())
			}
		}
	}
	upstream := *last.Load()
	for i := 0; i < len(steering); i += 2 {
		k := steering[i]
		switch k {
		case "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-envoy-external-address":
			continue
		case "x-envoy-expected-rq-timeout-ms": // the router sets its own
			if v := upstream.Get(k); v == "1" {
				t.Errorf("upstream %s = %q: the client's value survived", k, v)
			}
			if _, ok := got[k]; ok {
				t.Errorf("ext_proc saw the client's %s", k)
			}
			continue
		}
		if v, ok := got[k]; ok {
			t.Errorf("ext_proc saw the client's %s: %q", k, v)
		}
		if v := upstream.Get(k); v != "" {
			t.Errorf("upstream got the client's %s: %q", k, v)
		}
	}
	if rid := got["x-request-id"]; !uuidRE.MatchString(rid) || upstream.Get("x-request-id") != rid {
		t.Errorf("x-request-id: ext_proc %q, upstream %q; want one fresh UUID, not the client's", rid, upstream.Get("x-request-id"))
	}
	if v := got["x-forwarded-for"]; v != "6.6.6.6,127.0.0.1" {
		t.Errorf("x-forwarded-for = %q, want the client's value with the peer appended", v)
	}
	if v := got["x-forwarded-proto"]; v != "http" {
		t.Errorf("x-forwarded-proto = %q, want http (the client's value is not trusted)", v)
	}
	if v := got["x-envoy-external-address"]; v != "127.0.0.1" {
		t.Errorf("x-envoy-external-address = %q, want the peer's address", v)
	}
}

// TestRequestIDAttribute: both ext_proc filters of one request get the same request.id
// attribute (the connection manager's x-request-id, a string keyed by the expression under
// "envoy.filters.http.ext_proc", on the first request-direction message), every attempt's
// upstream filter included; two requests get different ones.
//
// Envoy: source/extensions/filters/common/expr/context.cc (request.id:
// headers.getRequestIdValue()); ext_proc matching_utils.cc ExpressionManager::
// evaluateAttributes; ext_proc.cc sends them once per direction.
func TestRequestIDAttribute(t *testing.T) {
	f, addr := startProcessor(t, fallbackProcessor("model_m", true))
	primary := &recorder{answer: statuses(503, 200, 200)}
	b := fallbackBootstrap(t, addr, fastFallback(), backendAt{"openai/gpt-a", startUpstream(t, primary.handler)})
	px := startProxy(t, b)

	var ids []string
	for range 2 {
		before := len(f.streams())
		resp, body := do(t, "POST", px.url("/v1/chat/completions"), `{"model":"m"}`, "x-request-id", "client-chosen")
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		px.nextInfo(t)
		var reqID string
		for i, ms := range f.streams()[before:] {
			var withAttrs int
			for _, m := range ms {
				a, ok := m.GetAttributes()[contract.ExtProcAttributesKey].GetFields()[contract.RequestIDAttribute]
				if !ok {
					continue
				}
				withAttrs++
				if m.GetRequestHeaders() == nil {
					t.Errorf("stream %d: attributes on a %s message, want them on request_headers", i, kinds([]*extprocsvc.ProcessingRequest{m}))
				}
				hv, _ := headerValue(m.GetRequestHeaders().GetHeaders(), "x-request-id")
				if a.GetStringValue() != hv {
					t.Errorf("stream %d: request.id %v, x-request-id header %q", i, a, hv)
				}
				if reqID == "" {
					reqID = a.GetStringValue()
				} else if a.GetStringValue() != reqID {
					t.Errorf("stream %d: request.id %q, the router filter's was %q", i, a.GetStringValue(), reqID)
				}
			}
			if withAttrs != 1 {
				t.Errorf("stream %d: request.id on %d messages, want exactly the first request one", i, withAttrs)
			}
		}
		if !uuidRE.MatchString(reqID) {
			t.Errorf("request.id %q, want Envoy's UUID", reqID)
		}
		ids = append(ids, reqID)
	}
	if len(f.streams()) != 5 {
		t.Errorf("%d streams, want 5: each request's router filter, the first's two attempts and the second's one", len(f.streams()))
	}
	if ids[0] == ids[1] {
		t.Errorf("two requests share request.id %q", ids[0])
	}
}

// TestSidecarMutualTLS: a gRPC cluster with an UpstreamTlsContext is reached over TLS,
// presenting tls_certificates and verifying the server against the trusted CA, with the ALPN
// the config names; the sidecar (behind peerauth with mutual TLS and the secret) sees Envoy's
// certificate as the peer's identity.
func TestSidecarMutualTLS(t *testing.T) {
	pki := peerauthtest.New(t)
	g := peerauth.New([]byte(peerSecret), nil)
	if err := g.WithTLS(peerauth.TLSFiles{Cert: pki.ServerCert, Key: pki.ServerKey, ClientCA: pki.CA}); err != nil {
		t.Fatal(err)
	}
	lis, err := peerauth.Listen(t.Context(), "127.0.0.1:0", g, "x")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ids []peerauth.Identity
	inner := replyEach(routeTo("model_0"))
	f := &fakeProcessor{fn: func(srv extprocsvc.ExternalProcessor_ProcessServer) error {
		id, _ := peerauth.FromContext(srv.Context())
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		return inner(srv)
	}, ended: make(chan error, 16)}
	s := grpc.NewServer(g.ServerOptions()...)
	extprocsvc.RegisterExternalProcessorServer(s, f)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)

	var n atomic.Int64
	p := bootstrap.Params{PeerSecret: peerSecret, SidecarTLS: &bootstrap.SidecarTLS{CertFile: pki.ClientCert, KeyFile: pki.ClientKey, CAFile: pki.CA}}
	px := startProxy(t, testBootstrapParams(t, lis.Addr().String(), p, countingUpstream(t, &n, nil)))
	if resp, body := do(t, "GET", px.url("/x"), ""); resp.StatusCode != 200 || n.Load() != 1 {
		t.Fatalf("got %d %q, upstream saw %d requests", resp.StatusCode, body, n.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if want := peerauth.Identity("cert:CN=" + peerauthtest.ClientName); len(ids) != 1 || ids[0] != want {
		t.Errorf("identities %q, want [%q]", ids, want)
	}

	// A stranger's certificate is refused at the handshake: ext_proc fails closed.
	p.SidecarTLS = &bootstrap.SidecarTLS{CertFile: pki.OtherClientCert, KeyFile: pki.OtherClientKey, CAFile: pki.CA}
	px = startProxy(t, testBootstrapParams(t, lis.Addr().String(), p, countingUpstream(t, &n, nil)))
	if resp, _ := do(t, "GET", px.url("/x"), ""); resp.StatusCode != 500 || n.Load() != 1 {
		t.Errorf("stranger's certificate: status %d, upstream saw %d requests; want ext_proc's 500 and nothing upstream", resp.StatusCode, n.Load())
	}
}

// TestSidecarTLSWithoutALPNRefused: a TLS gRPC cluster without alpn_protocols h2 works with
// the stand-in's gRPC client but not with Envoy against a grpc-go server, so it is refused.
func TestSidecarTLSWithoutALPNRefused(t *testing.T) {
	pki := peerauthtest.New(t)
	p := bootstrap.Params{SidecarTLS: &bootstrap.SidecarTLS{CertFile: pki.ClientCert, KeyFile: pki.ClientKey, CAFile: pki.CA}}
	b := testBootstrapParams(t, "127.0.0.1:1", p)
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != bootstrap.ExtProcClusterName {
			continue
		}
		var ctx tlsv3.UpstreamTlsContext
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&ctx); err != nil {
			t.Fatal(err)
		}
		ctx.CommonTlsContext.AlpnProtocols = nil
		a, err := anypb.New(&ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: a}
	}
	_, err := standin.New(b, standin.Options{}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "alpn_protocols [h2]") {
		t.Errorf("New = %v, want a refusal naming alpn_protocols", err)
	}
}
