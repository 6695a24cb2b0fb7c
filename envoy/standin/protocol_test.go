package standin_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tollgate/tollgate/envoy/bootstrap"
)

// TestDownstreamProtocols: codec AUTO serves HTTP/1.1 and prior-knowledge h2c on one port.
//
// Envoy: api/envoy/extensions/filters/network/http_connection_manager/v3 CodecType AUTO;
// source/common/http/conn_manager_utility.cc autoCreateCodec.
func TestDownstreamProtocols(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	_, addr := startProcessor(t, replyEach(routeTo("model_0")))
	px := startProxy(t, testBootstrap(t, addr, up))

	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	for _, tt := range []struct {
		name   string
		client *http.Client
		proto  int
	}{
		{"http1", &http.Client{}, 1},
		{"h2c", &http.Client{Transport: h2c}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.client.Get(px.url("/v1/models"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != "ok" || resp.ProtoMajor != tt.proto {
				t.Fatalf("got %d %q over HTTP/%d", resp.StatusCode, body, resp.ProtoMajor)
			}
			if resp.Header.Get("Server") != "envoy" {
				t.Errorf("server header = %q, want envoy", resp.Header.Get("Server"))
			}
		})
	}
}

// TestUpstreamH2C: a cluster with explicit http2_protocol_options speaks cleartext HTTP/2
// to its endpoints; others speak HTTP/1.1.
//
// Envoy: api/envoy/extensions/upstreams/http/v3/http_protocol_options.proto
// ExplicitHttpConfig.
func TestUpstreamH2C(t *testing.T) {
	protoSeen := make(chan int, 2)
	h := func(w http.ResponseWriter, r *http.Request) { protoSeen <- r.ProtoMajor }
	srv := httptest.NewUnstartedServer(http.HandlerFunc(h))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	up := upstreamOf(t, srv, false)

	_, addr := startProcessor(t, replyEach(routeTo("model_1")))
	b := testBootstrap(t, addr, up, up)
	opts, err := anypb.New(&upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.StaticResources.Clusters[2].TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts}
	px := startProxy(t, b)
	if resp, body := do(t, http.MethodGet, px.url("/"), ""); resp.StatusCode != 200 {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	if got := <-protoSeen; got != 2 {
		t.Errorf("upstream saw HTTP/%d, want HTTP/2", got)
	}
}

// TestUpstreamTLS: a TLS endpoint gets its UpstreamTlsContext through
// transport_socket_matches: SNI is the host, the chain is verified against trusted_ca, the
// DNS SAN must match, and Host is the endpoint's hostname (auto_host_rewrite). A
// certificate that does not verify is a connect failure: 503 naming the TLS error.
//
// Envoy: source/common/upstream/transport_socket_match_impl.cc;
// source/common/tls/cert_validator/default_validator.cc; router.cc onUpstreamReset.
func TestUpstreamTLS(t *testing.T) {
	type seen struct{ sni, host string }
	got := make(chan seen, 1)
	up := startTLSUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.TLS.ServerName, r.Host}
		io.WriteString(w, "secure")
	})
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	_, addr := startProcessor(t, replyEach(routeTo("model_0")))
	endpoint := upstreamOf(t, up.Server, true)
	endpoint.host = "localhost"

	t.Run("verified", func(t *testing.T) {
		px := startProxy(t, testBootstrapParams(t, addr, bootstrap.Params{UpstreamCAFile: writeCA(t, up)}, endpoint))
		resp, body := do(t, http.MethodGet, px.url("/v1/models"), "")
		if resp.StatusCode != 200 || body != "secure" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		s := <-got
		if s.sni != "localhost" || s.host != "localhost:"+port {
			t.Errorf("upstream saw SNI %q Host %q", s.sni, s.host)
		}
	})
	t.Run("h2 over TLS", func(t *testing.T) {
		protoSeen := make(chan string, 1)
		up2 := startTLSUpstream(t, func(w http.ResponseWriter, r *http.Request) { protoSeen <- r.Proto }, true)
		ep2 := upstreamOf(t, up2.Server, true)
		ep2.host = "localhost"
		b := testBootstrapParams(t, addr, bootstrap.Params{UpstreamCAFile: writeCA(t, up2)}, ep2)
		b.StaticResources.Clusters[1].TypedExtensionProtocolOptions = b.StaticResources.Clusters[0].TypedExtensionProtocolOptions
		px := startProxy(t, b)
		if resp, body := do(t, http.MethodGet, px.url("/"), ""); resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if p := <-protoSeen; p != "HTTP/2.0" {
			t.Errorf("upstream saw %s, want HTTP/2.0 (ALPN h2)", p)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		other := startTLSUpstream(t, nil)
		px := startProxy(t, testBootstrapParams(t, addr, bootstrap.Params{UpstreamCAFile: writeCA(t, other)}, endpoint))
		resp, body := do(t, http.MethodGet, px.url("/v1/models"), "")
		if resp.StatusCode != http.StatusServiceUnavailable ||
			!strings.HasPrefix(body, "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: TLS_error") {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
}
