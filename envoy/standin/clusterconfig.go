package standin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func parseCluster(c *clusterv3.Cluster) (*clusterConfig, error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	cc := &clusterConfig{
		name:           c.GetName(),
		discovery:      c.GetType(),
		connectTimeout: defaultConnectTimeout,
	}
	switch cc.discovery {
	case clusterv3.Cluster_STATIC, clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
	default:
		fail("type %s: not implemented by the stand-in", cc.discovery)
	}
	if d := c.GetConnectTimeout(); d != nil {
		cc.connectTimeout = d.AsDuration()
	}
	for k, v := range c.GetTypedExtensionProtocolOptions() {
		if k != httpProtocolOptionsKey {
			fail("typed_extension_protocol_options[%s]: not implemented by the stand-in", k)
			continue
		}
		opts := &upstreamhttpv3.HttpProtocolOptions{}
		if err := v.UnmarshalTo(opts); err != nil {
			fail("typed_extension_protocol_options[%s]: %w", k, err)
			continue
		}
		cc.http2 = opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
		cc.upstreamFilterProtos = opts.GetHttpFilters()
	}
	od, err := parseOutlierDetection(c.GetOutlierDetection())
	if err != nil {
		fail("outlier_detection: %w", err)
	}
	cc.outlier = od

	var defaultTLS *tlsConfig
	if ts := c.GetTransportSocket(); ts != nil {
		t, err := parseTransportSocket(ts)
		if err != nil {
			fail("transport_socket: %w", err)
		}
		// Envoy offers ALPN only when alpn_protocols says so, and grpc-go servers refuse a TLS
		// connection without h2; the stand-in's gRPC client would offer it regardless, so such
		// a bootstrap would work here and not with Envoy.
		if t != nil && cc.http2 && !slices.Contains(t.alpn, "h2") {
			fail("transport_socket: a TLS gRPC cluster needs common_tls_context.alpn_protocols [h2]: Envoy offers no ALPN otherwise and grpc-go servers refuse the connection")
		}
		defaultTLS = t
	}
	type match struct {
		criteria *structpb.Struct
		tls      *tlsConfig
	}
	var matches []match
	for i, m := range c.GetTransportSocketMatches() {
		t, err := parseTransportSocket(m.GetTransportSocket())
		if err != nil {
			fail("transport_socket_matches[%d]: %w", i, err)
		}
		matches = append(matches, match{m.GetMatch(), t})
	}

	byPriority := map[uint32][]endpointConfig{}
	var maxPrio uint32
	for _, loc := range c.GetLoadAssignment().GetEndpoints() {
		for _, lbe := range loc.GetLbEndpoints() {
			ep := lbe.GetEndpoint()
			sa := ep.GetAddress().GetSocketAddress()
			e := endpointConfig{
				host:     sa.GetAddress(),
				port:     sa.GetPortValue(),
				pipe:     ep.GetAddress().GetPipe().GetPath(),
				hostname: ep.GetHostname(),
				weight:   1,
				metadata: lbe.GetMetadata(),
				tls:      defaultTLS,
			}
			if w := lbe.GetLoadBalancingWeight(); w != nil {
				e.weight = w.GetValue()
			}
			switch {
			case e.pipe != "":
				// Envoy connects a pipe address with a Unix socket; the stand-in implements it
				// for the gRPC sidecars only.
				if !cc.http2 || cc.discovery != clusterv3.Cluster_STATIC {
					fail("endpoint pipe %q: the stand-in implements Unix sockets only for STATIC HTTP/2 (gRPC) clusters", e.pipe)
				}
			case cc.discovery == clusterv3.Cluster_STATIC && net.ParseIP(e.host) == nil:
				fail("STATIC cluster endpoint %q: must be an IP address", e.host)
			}
			// Envoy: source/common/upstream/transport_socket_match_impl.cc: the first match
			// whose criteria are all in the endpoint's envoy.transport_socket_match metadata.
			epMatch := lbe.GetMetadata().GetFilterMetadata()[transportSocketMatchNS].GetFields()
			for _, m := range matches {
				if structSubset(m.criteria.GetFields(), epMatch) {
					e.tls = m.tls
					break
				}
			}
			byPriority[loc.GetPriority()] = append(byPriority[loc.GetPriority()], e)
			maxPrio = max(maxPrio, loc.GetPriority())
		}
	}
	for p := uint32(0); p <= maxPrio && len(byPriority) > 0; p++ {
		level, ok := byPriority[p]
		if !ok {
			fail("load_assignment: priority %d has no endpoints (priorities must be contiguous from 0)", p)
		}
		cc.levels = append(cc.levels, level)
	}
	return cc, errors.Join(errs...)
}

func structSubset(criteria, fields map[string]*structpb.Value) bool {
	for k, v := range criteria {
		f, ok := fields[k]
		if !ok || f.GetStringValue() != v.GetStringValue() || f.GetNumberValue() != v.GetNumberValue() || f.GetBoolValue() != v.GetBoolValue() {
			return false
		}
	}
	return true
}

// dataSource reads a DataSource: a file, or inline bytes or string.
func dataSource(ds *corev3.DataSource) ([]byte, error) {
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_Filename:
		return os.ReadFile(s.Filename)
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	}
	return nil, errors.New("empty data source")
}

func parseTransportSocket(ts *corev3.TransportSocket) (*tlsConfig, error) {
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(ctx); err != nil {
		return nil, fmt.Errorf("only envoy.transport_sockets.tls with UpstreamTlsContext is implemented by the stand-in: %w", err)
	}
	t := &tlsConfig{sni: ctx.GetSni(), alpn: ctx.GetCommonTlsContext().GetAlpnProtocols()}
	switch certs := ctx.GetCommonTlsContext().GetTlsCertificates(); len(certs) {
	case 0:
	case 1:
		chain, err := dataSource(certs[0].GetCertificateChain())
		if err != nil {
			return nil, fmt.Errorf("tls_certificates[0].certificate_chain: %w", err)
		}
		key, err := dataSource(certs[0].GetPrivateKey())
		if err != nil {
			return nil, fmt.Errorf("tls_certificates[0].private_key: %w", err)
		}
		c, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, fmt.Errorf("tls_certificates[0]: %w", err)
		}
		t.cert = &c
	default:
		return nil, errors.New("tls_certificates: the stand-in implements one client certificate")
	}
	vc := ctx.GetCommonTlsContext().GetValidationContext()
	if ca := vc.GetTrustedCa(); ca != nil {
		var pem []byte
		switch s := ca.GetSpecifier().(type) {
		case *corev3.DataSource_Filename:
			b, err := os.ReadFile(s.Filename)
			if err != nil {
				return nil, fmt.Errorf("trusted_ca: %w", err)
			}
			pem = b
		case *corev3.DataSource_InlineString:
			pem = []byte(s.InlineString)
		case *corev3.DataSource_InlineBytes:
			pem = s.InlineBytes
		}
		t.roots = x509.NewCertPool()
		if !t.roots.AppendCertsFromPEM(pem) {
			return nil, errors.New("trusted_ca: no PEM certificates found")
		}
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		if m.GetSanType() != tlsv3.SubjectAltNameMatcher_DNS {
			return nil, fmt.Errorf("match_typed_subject_alt_names[%d]: san_type %s not implemented by the stand-in", i, m.GetSanType())
		}
		t.sans = append(t.sans, strings.ToLower(m.GetMatcher().GetExact()))
	}
	return t, nil
}
