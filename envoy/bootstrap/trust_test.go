package bootstrap_test

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/peerauth"
)

// grpcServices finds every GrpcService in m and in the typed extensions under it.
func grpcServices(t *testing.T, m proto.Message) []*corev3.GrpcService {
	t.Helper()
	exts, err := bootstrap.TypedExtensions(m)
	if err != nil {
		t.Fatal(err)
	}
	var out []*corev3.GrpcService
	var walk func(protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if g, ok := m.Interface().(*corev3.GrpcService); ok {
			out = append(out, g)
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Kind() == protoreflect.MessageKind:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { walk(mv.Message()); return true })
			case !fd.IsList() && !fd.IsMap() && fd.Kind() == protoreflect.MessageKind:
				walk(v.Message())
			}
			return true
		})
	}
	walk(m.ProtoReflect())
	for _, e := range exts {
		walk(e.ProtoReflect())
	}
	return out
}

func fallbackCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Parse("test.yaml", []byte(`
providers:
  - {name: mock, kind: openai, base_url: "http://127.0.0.1:9000", api_key_env: K}
models:
  - {id: m, owned_by: x, max_output_tokens: 10, backends: [{provider: mock, upstream_model: u}]}
`), func(string) string { return "k" })
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// TestRenderTrustBoundary: with a peer secret, every GrpcService Envoy calls (the router
// ext_proc filter, each model cluster's upstream ext_proc filter, the ratelimit filter) sends
// it as initial_metadata; both ext_proc filters ask for request.id; the connection manager
// treats every client as external; sidecars can be Unix sockets.
func TestRenderTrustBoundary(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	p, err := bootstrap.FromCatalog(fallbackCatalog(t), "0.0.0.0:8080", "unix:/run/tollgate/extproc.sock",
		bootstrap.WithRateLimit("127.0.0.1:50052"), bootstrap.WithPeerSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bootstrap.Render(p)
	if err != nil {
		t.Fatal(err)
	}
	y, err := bootstrap.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = bootstrap.Load(y); err != nil {
		t.Fatalf("Load: %v", err)
	}

	svcs := grpcServices(t, b)
	if len(svcs) != 3 {
		t.Fatalf("%d GrpcServices, want 3 (router ext_proc, upstream ext_proc, ratelimit)", len(svcs))
	}
	for _, g := range svcs {
		md := g.GetInitialMetadata()
		if len(md) != 1 || md[0].GetKey() != peerauth.MetadataKey || md[0].GetValue() != secret {
			t.Errorf("GrpcService %s: initial_metadata %v, want the peer secret", g.GetEnvoyGrpc().GetClusterName(), md)
		}
	}

	exts, _ := bootstrap.TypedExtensions(b)
	var procs, hcms int
	for _, e := range exts {
		switch m := e.(type) {
		case *extprocv3.ExternalProcessor:
			procs++
			if !slices.Contains(m.GetRequestAttributes(), contract.RequestIDAttribute) {
				t.Errorf("ext_proc filter request_attributes %v lack request.id", m.GetRequestAttributes())
			}
		case *hcmv3.HttpConnectionManager:
			hcms++
			if !m.GetUseRemoteAddress().GetValue() || m.GetXffNumTrustedHops() != 0 || m.GetSkipXffAppend() ||
				m.GetPreserveExternalRequestId() || (m.GetGenerateRequestId() != nil && !m.GetGenerateRequestId().GetValue()) {
				t.Errorf("connection manager must treat clients as external and make its own request ids: %v", m)
			}
			iac := m.GetInternalAddressConfig()
			if iac == nil || iac.GetUnixSockets() || len(iac.GetCidrRanges()) != 0 {
				t.Errorf("internal_address_config %v, want explicit and empty", iac)
			}
		}
	}
	if procs != 2 || hcms != 1 {
		t.Errorf("%d ext_proc filters and %d connection managers, want 2 and 1", procs, hcms)
	}

	var extproc *clusterv3.Cluster
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == bootstrap.ExtProcClusterName {
			extproc = c
		}
	}
	addr := extproc.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()
	if addr.GetPipe().GetPath() != "/run/tollgate/extproc.sock" || extproc.GetType() != clusterv3.Cluster_STATIC {
		t.Errorf("extproc cluster address %v (%v), want the unix socket as a STATIC pipe", addr, extproc.GetType())
	}

	// Without a secret nothing is sent.
	p.PeerSecret = ""
	b, err = bootstrap.Render(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range grpcServices(t, b) {
		if len(g.GetInitialMetadata()) != 0 {
			t.Errorf("initial_metadata %v without a secret", g.GetInitialMetadata())
		}
	}
}

// TestRenderSidecarTLS: with SidecarTLS both sidecar clusters speak mutual TLS with ALPN h2,
// verify the sidecar's certificate (and its DNS name, also sent as SNI) and present Envoy's.
func TestRenderSidecarTLS(t *testing.T) {
	p, err := bootstrap.FromCatalog(fallbackCatalog(t), "0.0.0.0:8080", "extproc:50051",
		bootstrap.WithRateLimit("10.0.0.2:50052"),
		bootstrap.WithSidecarTLS(&bootstrap.SidecarTLS{CertFile: "/tls/envoy.pem", KeyFile: "/tls/envoy.key", CAFile: "/tls/ca.pem"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bootstrap.Render(p)
	if err != nil {
		t.Fatal(err)
	}
	y, err := bootstrap.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = bootstrap.Load(y); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != bootstrap.ExtProcClusterName && c.GetName() != bootstrap.RateLimitClusterName {
			if c.GetTransportSocket() != nil {
				t.Errorf("cluster %s got the sidecar TLS", c.GetName())
			}
			continue
		}
		seen++
		var ctx tlsv3.UpstreamTlsContext
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&ctx); err != nil {
			t.Fatalf("cluster %s: %v", c.GetName(), err)
		}
		cc := ctx.GetCommonTlsContext()
		certs := cc.GetTlsCertificates()
		if len(certs) != 1 || certs[0].GetCertificateChain().GetFilename() != "/tls/envoy.pem" || certs[0].GetPrivateKey().GetFilename() != "/tls/envoy.key" ||
			cc.GetValidationContext().GetTrustedCa().GetFilename() != "/tls/ca.pem" || !slices.Equal(cc.GetAlpnProtocols(), []string{"h2"}) {
			t.Errorf("cluster %s: tls context %v", c.GetName(), &ctx)
		}
		sans := cc.GetValidationContext().GetMatchTypedSubjectAltNames()
		if c.GetName() == bootstrap.ExtProcClusterName {
			if ctx.GetSni() != "extproc" || len(sans) != 1 || sans[0].GetMatcher().GetExact() != "extproc" {
				t.Errorf("extproc: sni %q, SANs %v; want the host name in both", ctx.GetSni(), sans)
			}
		} else if ctx.GetSni() != "" || len(sans) != 0 {
			t.Errorf("ratelimit at an IP: sni %q, SANs %v; want neither", ctx.GetSni(), sans)
		}
	}
	if seen != 2 {
		t.Errorf("%d sidecar clusters, want 2", seen)
	}
}
