package bootstrap

import (
	"fmt"
	"net"
	"strconv"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/peerauth"
)

// Extension names, as Envoy's docs spell them.
const (
	hcmFilterName          = "envoy.filters.network.http_connection_manager"
	extProcFilterName      = "envoy.filters.http.ext_proc"
	routerFilterName       = "envoy.filters.http.router"
	tlsTransportName       = "envoy.transport_sockets.tls"
	httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	transportSocketMatchNS = "envoy.transport_socket_match"
)

// Render builds the bootstrap for p: admin on 127.0.0.1:9901; one listener whose HTTP
// connection manager (codec AUTO, so HTTP/1.1 and h2c both work) runs ext_proc, the ratelimit
// filter if p.RateLimit is set, p.ExtraHTTPFilters, then the router; one route per model
// cluster and the management cluster, then a catch-all that reads the cluster from
// x-tollgate-cluster (routeList); the extproc cluster (HTTP/2) and one STRICT_DNS cluster per
// cluster of p, each model cluster with the per-attempt upstream filters and outlier detection.
// It reports every invalid parameter at once.
func Render(p Params) (*bootstrapv3.Bootstrap, error) {
	p = p.withDefaults()
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("render bootstrap: %w", err)
	}
	hcm, err := httpConnectionManager(p)
	if err != nil {
		return nil, fmt.Errorf("render bootstrap: %w", err)
	}
	hcmAny, err := anypb.New(hcm)
	if err != nil {
		return nil, fmt.Errorf("render bootstrap: http connection manager: %w", err)
	}

	extproc, err := sidecarCluster(ExtProcClusterName, p.ExtProc, p.SidecarTLS)
	if err != nil {
		return nil, fmt.Errorf("render bootstrap: %w", err)
	}
	clusters := []*clusterv3.Cluster{extproc}
	if p.RateLimit != nil {
		rls, err := sidecarCluster(RateLimitClusterName, p.RateLimit.Service, p.SidecarTLS)
		if err != nil {
			return nil, fmt.Errorf("render bootstrap: %w", err)
		}
		clusters = append(clusters, rls)
	}
	for _, c := range p.Clusters {
		mc, err := modelCluster(c, p.UpstreamCAFile)
		if err != nil {
			return nil, fmt.Errorf("render bootstrap: cluster %q: %w", c.Name, err)
		}
		if !c.Direct {
			opts, err := upstreamProtocolOptions(p)
			if err != nil {
				return nil, fmt.Errorf("render bootstrap: cluster %q: %w", c.Name, err)
			}
			mc.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: opts}
			mc.OutlierDetection = p.Retry.outlierDetection()
		}
		clusters = append(clusters, mc)
	}
	for _, c := range p.ExtraClusters {
		clusters = append(clusters, proto.Clone(c).(*clusterv3.Cluster))
	}

	return &bootstrapv3.Bootstrap{
		Admin: &bootstrapv3.Admin{Address: socketAddress(AdminAddress, p.AdminPort)},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{{
				Name:    ListenerName,
				Address: socketAddress(p.ListenAddress, p.ListenPort),
				// Envoy's buffer limit for a request (and a buffered response) is the
				// listener's per-connection limit: over it, ext_proc's BUFFERED mode gets 413
				// (source/common/http/filter_manager.cc requestDataTooLarge).
				PerConnectionBufferLimitBytes: wrapperspb.UInt32(p.MaxRequestBytes),
				FilterChains: []*listenerv3.FilterChain{{
					Filters: []*listenerv3.Filter{{
						Name:       hcmFilterName,
						ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
					}},
				}},
			}},
			Clusters: clusters,
		},
	}, nil
}

func httpConnectionManager(p Params) (*hcmv3.HttpConnectionManager, error) {
	ep := ExtProcFilter(p.MessageTimeout, p.MaxRequestBytes)
	ep.GrpcService.InitialMetadata = peerMetadata(p.PeerSecret)
	extProc, err := anypb.New(ep)
	if err != nil {
		return nil, fmt.Errorf("ext_proc filter: %w", err)
	}
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, fmt.Errorf("router filter: %w", err)
	}
	filters := []*hcmv3.HttpFilter{{
		Name:       extProcFilterName,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: extProc},
	}}
	perFilter := map[string]*anypb.Any{}
	var managementRateLimit *anypb.Any
	if p.RateLimit != nil {
		// Right after ext_proc: its decodeHeaders then runs once extproc's request_body
		// reply released the headers, so the descriptors see x-tollgate-*.
		f, perRoute, management, err := rateLimitParts(p.RateLimit, p.PeerSecret)
		if err != nil {
			return nil, err
		}
		filters = append(filters, f)
		perFilter[RateLimitFilterName] = perRoute
		managementRateLimit = management
	}
	for _, f := range p.ExtraHTTPFilters {
		filters = append(filters, proto.Clone(f).(*hcmv3.HttpFilter))
	}
	filters = append(filters, &hcmv3.HttpFilter{
		Name:       routerFilterName,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
	})

	for name, cfg := range p.RouteTypedPerFilterConfig {
		perFilter[name] = proto.Clone(cfg).(*anypb.Any)
	}
	routes, err := routeList(p, perFilter, managementRateLimit)
	if err != nil {
		return nil, err
	}

	return &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: StatPrefix,
		// The route timeout must be the one that ends a silent request: it answers 504
		// "upstream request timeout", which extproc turns into 524 provider_timeout. An idle
		// timeout equal to it would race it (both timers start as the request ends) and, when
		// it fires while the route's local reply is still with ext_proc, answer a bare 408 past
		// the filters (filter_manager.cc sendLocalReply once the encoder chain has started). So
		// the idle timeout outlasts the route timeout by one ext_proc message_timeout.
		StreamIdleTimeout: durationpb.New(p.UpstreamTimeout + p.MessageTimeout),
		// Every client is external, so Envoy honours none of its x-envoy-* headers and makes
		// the request id its own. use_remote_address: the peer of the connection is the client
		// (x-forwarded-for is appended to, never trusted: xff_num_trusted_hops stays 0, and
		// x-forwarded-proto is overwritten). An explicit internal_address_config without CIDRs
		// or unix sockets: no address is internal, so every request is an edge request and
		// source/common/http/conn_manager_utility.cc mutateRequestHeaders runs
		// cleanInternalHeaders (x-envoy-retry-on, x-envoy-max-retries,
		// x-envoy-upstream-rq-timeout-ms, … removed) and sets x-envoy-external-address. With
		// generate_request_id (default true) and preserve_external_request_id false, an edge
		// request's x-request-id is always replaced by a fresh UUID, so the request.id
		// attribute the ext_proc filters send cannot be chosen by a client.
		UseRemoteAddress:      wrapperspb.Bool(true),
		InternalAddressConfig: &hcmv3.HttpConnectionManager_InternalAddressConfig{},
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: RouteConfigName,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "tollgate",
				Domains: []string{"*"},
				Routes:  routes,
			}},
		}},
		HttpFilters: filters,
	}, nil
}

// ExtProcFilter is the router filter's ext_proc: headers SEND, bodies BUFFERED (extproc switches
// the response to STREAMED for SSE through mode_override), fail closed, the request id in
// request_attributes, and dynamic metadata accepted in namespace tollgate only.
//
// contract.RequestIDAttribute is the request's x-request-id
// (source/extensions/filters/common/expr/context.cc, RequestWrapper "id":
// headers.getRequestIdValue(), a string), which the connection manager generates for every
// external request (see httpConnectionManager). It reaches extproc in
// ProcessingRequest.attributes[contract.ExtProcAttributesKey] as a string value, on the first
// message of the request direction, and is the same for the router filter and every attempt's
// upstream filter of one request.
func ExtProcFilter(messageTimeout time.Duration, maxRequestBytes uint32) *extprocv3.ExternalProcessor {
	return &extprocv3.ExternalProcessor{
		RequestAttributes: []string{contract.RequestIDAttribute},
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName:             ExtProcClusterName,
				MaxReceiveMessageLength: wrapperspb.UInt32(GRPCMaxMessageBytes(maxRequestBytes)),
			}},
		},
		FailureModeAllow: false,
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:  extprocv3.ProcessingMode_SEND,
			RequestBodyMode:    extprocv3.ProcessingMode_BUFFERED,
			ResponseHeaderMode: extprocv3.ProcessingMode_SEND,
			ResponseBodyMode:   extprocv3.ProcessingMode_BUFFERED,
		},
		MessageTimeout:    durationpb.New(messageTimeout),
		AllowModeOverride: true,
		MetadataOptions: &extprocv3.MetadataOptions{
			ReceivingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: []string{contract.MetadataNamespace}},
		},
	}
}

// routeList is the virtual host's routes. Every model cluster gets its own route matching
// x-tollgate-cluster exactly and naming the cluster, with a retry policy sized for that
// cluster's levels; the management cluster, whenever there is one, gets one without retries; a
// catch-all route (no retries) that reads the cluster from x-tollgate-cluster (cluster_header)
// stays last for anything else, so an unknown cluster is still Envoy's 503.
//
// The header routes work because extproc sets x-tollgate-cluster and clears the route cache:
// the router filter's next route() call re-matches the whole table against the mutated
// headers (ext_proc processor_state.cc clearRouteCache →
// StreamDecoderFilterCallbacks::downstreamCallbacks()->clearRouteCache();
// source/common/http/conn_manager_impl.cc ActiveStream::refreshCachedRoute). The first
// route whose path and headers match wins (source/common/router/config_impl.cc
// VirtualHostImpl::getRouteFromEntries, RouteEntryImplBase::matchRoute →
// Http::HeaderUtility::matchHeaders).
//
// The management route, rendered whenever there is a management cluster, carries the
// management API's own rate-limit policy (managementRateLimit) in place of the model routes'.
func routeList(p Params, perFilter map[string]*anypb.Any, managementRateLimit *anypb.Any) ([]*routev3.Route, error) {
	newRoute := func(name string, match *routev3.RouteMatch, action *routev3.RouteAction) *routev3.Route {
		action.Timeout = durationpb.New(p.UpstreamTimeout)
		// extproc cannot set :authority under ext_proc's default mutation rules, so the
		// upstream Host comes from the chosen endpoint's hostname.
		action.HostRewriteSpecifier = &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(true)}
		r := &routev3.Route{Name: name, Match: match, Action: &routev3.Route_Route{Route: action}}
		if len(perFilter) > 0 {
			r.TypedPerFilterConfig = map[string]*anypb.Any{}
			for k, v := range perFilter {
				if k == RateLimitFilterName && name == contract.ManagementCluster {
					v = managementRateLimit
				}
				r.TypedPerFilterConfig[k] = proto.Clone(v).(*anypb.Any)
			}
		}
		return r
	}
	byHeader := func(cluster string) *routev3.RouteMatch {
		return &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers: []*routev3.HeaderMatcher{{
				Name: contract.ClusterHeader,
				HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_Exact{Exact: cluster},
				}},
			}},
		}
	}
	var routes []*routev3.Route
	for _, c := range p.Clusters {
		switch {
		case c.Name == contract.ManagementCluster:
			routes = append(routes, newRoute(c.Name, byHeader(c.Name), &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c.Name},
			}))
		case !c.Direct:
			rp, err := p.Retry.retryPolicy(c)
			if err != nil {
				return nil, fmt.Errorf("cluster %q: retry policy: %w", c.Name, err)
			}
			routes = append(routes, newRoute(c.Name, byHeader(c.Name), &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c.Name},
				RetryPolicy:      rp,
			}))
		}
	}
	routes = append(routes, newRoute("", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		&routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_ClusterHeader{ClusterHeader: contract.ClusterHeader}}))
	return routes, nil
}

// peerMetadata is a GrpcService's initial_metadata carrying the peer secret: Envoy adds it to
// every stream or call it opens on the service (api/envoy/config/core/v3/grpc_service.proto
// initial_metadata; source/common/grpc/async_client_impl.cc AsyncStreamImpl::initialize copies
// parent_.initial_metadata_ into the request headers). None without a secret.
func peerMetadata(secret string) []*corev3.HeaderValue {
	if secret == "" {
		return nil
	}
	return []*corev3.HeaderValue{{Key: peerauth.MetadataKey, Value: secret}}
}

// sidecarCluster is GRPCCluster with, when t is set, mutual TLS: Envoy presents t's client
// certificate and verifies the sidecar's against t's CA — and, for a DNS name, that it names
// the host (SNI too). ALPN h2 is required: Envoy offers no ALPN unless told to, and grpc-go
// servers refuse TLS connections without it.
func sidecarCluster(name string, u Upstream, t *SidecarTLS) (*clusterv3.Cluster, error) {
	c, err := GRPCCluster(name, u)
	if err != nil || t == nil {
		return c, err
	}
	vc := &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.CAFile}},
	}
	sni := ""
	if u.Path == "" && net.ParseIP(u.Host) == nil {
		sni = u.Host
		vc.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{{
			SanType: tlsv3.SubjectAltNameMatcher_DNS,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: u.Host}},
		}}
	}
	tlsCtx, err := anypb.New(&tlsv3.UpstreamTlsContext{
		Sni: sni,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.CertFile}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.KeyFile}},
			}},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc},
			AlpnProtocols:         []string{"h2"},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: tls context: %w", name, err)
	}
	c.TransportSocket = &corev3.TransportSocket{
		Name:       tlsTransportName,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tlsCtx},
	}
	return c, nil
}

// GRPCCluster is a cluster for a gRPC service spoken to over cleartext HTTP/2: STATIC when
// u.Host is an IP address or u.Path a Unix socket (Envoy's pipe address), STRICT_DNS otherwise
// (e.g. a docker-compose service name).
func GRPCCluster(name string, u Upstream) (*clusterv3.Cluster, error) {
	opts, err := anypb.New(&upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: http protocol options: %w", name, err)
	}
	discovery := clusterv3.Cluster_STRICT_DNS
	addr := socketAddress(u.Host, u.Port)
	switch {
	case u.Path != "":
		discovery = clusterv3.Cluster_STATIC
		addr = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: u.Path}}}
	case net.ParseIP(u.Host) != nil:
		discovery = clusterv3.Cluster_STATIC
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: discovery},
		ConnectTimeout:       durationpb.New(DefaultExtProcConnectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: addr,
					}},
				}},
			}},
		},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: opts},
	}, nil
}

// modelCluster is one STRICT_DNS cluster whose priority levels are c.Priorities. TLS
// endpoints pick their own TLS transport socket (SNI = their host) through
// transport_socket_matches, so one cluster can mix providers on different hosts and plain
// HTTP endpoints (local mocks) keep the cluster's default raw socket.
func modelCluster(c Cluster, caFile string) (*clusterv3.Cluster, error) {
	cl := &clusterv3.Cluster{
		Name:                 c.Name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		ConnectTimeout:       durationpb.New(DefaultConnectTimeout),
		LoadAssignment:       &endpointv3.ClusterLoadAssignment{ClusterName: c.Name},
	}
	tlsHosts := map[string]bool{}
	for prio, level := range c.Priorities {
		loc := &endpointv3.LocalityLbEndpoints{Priority: uint32(prio)}
		for _, e := range level {
			lbe, err := lbEndpoint(e)
			if err != nil {
				return nil, err
			}
			loc.LbEndpoints = append(loc.LbEndpoints, lbe)
			if e.TLS && !tlsHosts[e.Host] {
				tlsHosts[e.Host] = true
				m, err := tlsMatch(e.Host, caFile)
				if err != nil {
					return nil, err
				}
				cl.TransportSocketMatches = append(cl.TransportSocketMatches, m)
			}
		}
		cl.LoadAssignment.Endpoints = append(cl.LoadAssignment.Endpoints, loc)
	}
	return cl, nil
}

func lbEndpoint(e Endpoint) (*endpointv3.LbEndpoint, error) {
	fields := map[string]any{
		contract.MetadataNamespace: map[string]any{contract.BackendMetadataKey: e.Backend},
	}
	if e.TLS {
		fields[transportSocketMatchNS] = map[string]any{TransportSocketMatchKey: e.Host}
	}
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	for ns, v := range fields {
		s, err := structpb.NewStruct(v.(map[string]any))
		if err != nil {
			return nil, fmt.Errorf("endpoint %s metadata: %w", e.Host, err)
		}
		md.FilterMetadata[ns] = s
	}
	lbe := &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address:  socketAddress(e.Host, e.Port),
			Hostname: hostname(e),
		}},
		Metadata: md,
	}
	if e.Weight > 0 {
		lbe.LoadBalancingWeight = wrapperspb.UInt32(e.Weight)
	}
	return lbe, nil
}

// hostname is what auto_host_rewrite puts in the upstream Host header: the host, with the
// port only when it is not the scheme's default (RFC 9110 section 7.2).
func hostname(e Endpoint) string {
	if (e.TLS && e.Port == 443) || (!e.TLS && e.Port == 80) {
		return e.Host
	}
	return net.JoinHostPort(e.Host, strconv.FormatUint(uint64(e.Port), 10))
}

func tlsMatch(host, caFile string) (*clusterv3.Cluster_TransportSocketMatch, error) {
	tlsCtx, err := anypb.New(&tlsv3.UpstreamTlsContext{
		Sni: host,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
				ValidationContext: &tlsv3.CertificateValidationContext{
					TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: caFile}},
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
						SanType: tlsv3.SubjectAltNameMatcher_DNS,
						Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: host}},
					}},
				},
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("tls context for %s: %w", host, err)
	}
	match, err := structpb.NewStruct(map[string]any{TransportSocketMatchKey: host})
	if err != nil {
		return nil, fmt.Errorf("tls match for %s: %w", host, err)
	}
	return &clusterv3.Cluster_TransportSocketMatch{
		Name:  "tls_" + host,
		Match: match,
		TransportSocket: &corev3.TransportSocket{
			Name:       tlsTransportName,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tlsCtx},
		},
	}, nil
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
