package standin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/grpc/metadata"
)

// Envoy defaults the stand-in applies when a field is unset.
const (
	defaultBufferLimit       = 1 << 20          // listener per_connection_buffer_limit_bytes
	defaultStreamIdleTimeout = 5 * time.Minute  // HCM stream_idle_timeout
	defaultRouteTimeout      = 15 * time.Second // RouteAction.timeout
	defaultMessageTimeout    = 200 * time.Millisecond
	defaultConnectTimeout    = 5 * time.Second // Cluster.connect_timeout
	httpProtocolOptionsKey   = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	transportSocketMatchNS   = "envoy.transport_socket_match"
)

// config is the part of a bootstrap the stand-in serves, parsed and checked.
type config struct {
	admin    string // host:port, "" without admin
	listener listenerConfig
	clusters map[string]*clusterConfig
}

type listenerConfig struct {
	name        string
	addr        string
	bufferLimit int64
	codec       hcmv3.HttpConnectionManager_CodecType
	idleTimeout time.Duration // 0: disabled
	routes      *routeTable
	extProc     *extProcConfig   // nil without an ext_proc filter
	rateLimit   *rateLimitConfig // nil without a ratelimit filter
	router      routerConfig
	connManager connManagerConfig
}

type routerConfig struct {
	suppressEnvoyHeaders bool
}

// extProcConfig is the ext_proc filter's configuration.
type extProcConfig struct {
	cluster                  string
	maxRecvMsgBytes          int
	failureModeAllow         bool
	mode                     *extprocv3.ProcessingMode
	messageTimeout           time.Duration
	maxMessageTimeout        time.Duration
	allowModeOverride        bool
	allowedOverrideModes     []*extprocv3.ProcessingMode
	forwardingNamespaces     []string
	receivingNamespaces      []string
	statusOnError            int
	rules                    *mutationRules
	routeCacheAction         extprocv3.ExternalProcessor_RouteCacheAction
	disableImmediateResponse bool
	// requestID: request_attributes holds request.id.
	requestID bool
	// initialMetadata is the GrpcService's initial_metadata, sent on every stream.
	initialMetadata metadata.MD
}

type clusterConfig struct {
	name           string
	discovery      clusterv3.Cluster_DiscoveryType
	connectTimeout time.Duration
	http2          bool
	levels         [][]endpointConfig // by priority
	// upstreamFilterProtos are HttpProtocolOptions.http_filters, parsed into upstreamFilters
	// once every cluster is known (an ext_proc filter names a cluster).
	upstreamFilterProtos []*hcmv3.HttpFilter
	upstreamFilters      *upstreamFilterChain // nil: the codec only
	outlier              *outlierConfig       // nil: no outlier detection
}

type endpointConfig struct {
	host     string
	port     uint32
	pipe     string // a Unix socket path instead of host and port
	hostname string
	weight   uint32
	metadata *corev3.Metadata
	tls      *tlsConfig // nil: plaintext
}

// tlsConfig is an UpstreamTlsContext.
type tlsConfig struct {
	sni   string
	roots *x509.CertPool // nil: no validation context, so nothing is verified (as Envoy)
	sans  []string       // DNS SANs, exact; empty: any
	// cert is the client certificate (common_tls_context.tls_certificates), nil for none.
	cert *tls.Certificate
	// alpn is common_tls_context.alpn_protocols, as configured.
	alpn []string
}

// parseConfig turns b into a config, reporting every unsupported value at once. Fields the
// stand-in does not know at all were already refused by refuseUnimplemented.
func parseConfig(b *bootstrapv3.Bootstrap) (*config, error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	cfg := &config{clusters: map[string]*clusterConfig{}}

	if a := b.GetAdmin(); a != nil {
		cfg.admin = socketAddr(a.GetAddress())
	}
	for i, c := range b.GetStaticResources().GetClusters() {
		cc, err := parseCluster(c)
		if err != nil {
			fail("static_resources.clusters[%d] (%s): %w", i, c.GetName(), err)
			continue
		}
		if cfg.clusters[cc.name] != nil {
			fail("static_resources.clusters[%d]: cluster %q defined twice", i, cc.name)
		}
		cfg.clusters[cc.name] = cc
	}

	for _, cc := range cfg.clusters {
		chain, err := parseUpstreamFilters(cc.upstreamFilterProtos, cfg.clusters)
		if err != nil {
			fail("cluster %s: typed_extension_protocol_options[%s].http_filters: %w", cc.name, httpProtocolOptionsKey, err)
		}
		cc.upstreamFilters = chain
	}

	listeners := b.GetStaticResources().GetListeners()
	if len(listeners) != 1 {
		fail("static_resources.listeners: the stand-in serves exactly one listener, got %d", len(listeners))
		return nil, errors.Join(errs...)
	}
	l, err := parseListener(listeners[0], cfg.clusters)
	if err != nil {
		fail("static_resources.listeners[0] (%s): %w", listeners[0].GetName(), err)
	}
	cfg.listener = l
	// Upstream ext_proc filters share the listener ext_proc's gRPC client.
	for _, cc := range cfg.clusters {
		if ep := cc.upstreamFilters.extProc(); ep != nil && (l.extProc == nil || ep.cluster != l.extProc.cluster) {
			fail("cluster %s: the stand-in implements an upstream ext_proc filter only on the cluster of the listener's ext_proc filter", cc.name)
		}
	}
	return cfg, errors.Join(errs...)
}

// initialMetadata reads a GrpcService's initial_metadata: entries Envoy adds to the headers of
// every stream or call it opens on the service, keys lower-cased (source/common/grpc/
// async_client_impl.cc AsyncStreamImpl::initialize, "Fill service-wide initial metadata").
// Envoy evaluates the values as header formatters; the stand-in implements literal values
// only, so a '%' is refused.
func initialMetadata(g *corev3.GrpcService) (metadata.MD, error) {
	if len(g.GetInitialMetadata()) == 0 {
		return nil, nil
	}
	md := metadata.MD{}
	var errs []error
	for i, hv := range g.GetInitialMetadata() {
		if strings.Contains(hv.GetValue(), "%") {
			errs = append(errs, fmt.Errorf("[%d]: a value with %% (a header formatter) is not implemented by the stand-in", i))
			continue
		}
		if len(hv.GetRawValue()) > 0 {
			errs = append(errs, fmt.Errorf("[%d]: raw_value is not implemented by the stand-in", i))
			continue
		}
		md.Append(strings.ToLower(hv.GetKey()), hv.GetValue())
	}
	return md, errors.Join(errs...)
}

func socketAddr(a *corev3.Address) string {
	sa := a.GetSocketAddress()
	return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
}

func parseListener(l *listenerv3.Listener, clusters map[string]*clusterConfig) (listenerConfig, error) {
	if l.GetAddress().GetSocketAddress() == nil {
		return listenerConfig{}, errors.New("address: the stand-in listens on a socket_address only")
	}
	out := listenerConfig{
		name:        l.GetName(),
		addr:        socketAddr(l.GetAddress()),
		bufferLimit: defaultBufferLimit,
		idleTimeout: defaultStreamIdleTimeout,
	}
	if v := l.GetPerConnectionBufferLimitBytes(); v != nil {
		out.bufferLimit = int64(v.GetValue())
	}
	chains := l.GetFilterChains()
	if len(chains) != 1 || len(chains[0].GetFilters()) != 1 {
		return out, errors.New("filter_chains: the stand-in serves exactly one filter chain holding one http_connection_manager")
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := chains[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return out, fmt.Errorf("filter_chains[0].filters[0]: only envoy.filters.network.http_connection_manager is implemented: %w", err)
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	out.codec = hcm.GetCodecType()
	if out.codec != hcmv3.HttpConnectionManager_AUTO && out.codec != hcmv3.HttpConnectionManager_HTTP1 && out.codec != hcmv3.HttpConnectionManager_HTTP2 {
		fail("http_connection_manager.codec_type %s: not implemented by the stand-in", out.codec)
	}
	if d := hcm.GetStreamIdleTimeout(); d != nil {
		out.idleTimeout = d.AsDuration()
	}
	out.connManager = connManagerConfig{
		useRemoteAddress:          hcm.GetUseRemoteAddress().GetValue(),
		skipXffAppend:             hcm.GetSkipXffAppend(),
		generateRequestID:         hcm.GetGenerateRequestId() == nil || hcm.GetGenerateRequestId().GetValue(),
		preserveExternalRequestID: hcm.GetPreserveExternalRequestId(),
	}
	if hcm.GetXffNumTrustedHops() != 0 {
		fail("http_connection_manager.xff_num_trusted_hops %d: only 0 is implemented by the stand-in", hcm.GetXffNumTrustedHops())
	}
	routes, err := parseRoutes(hcm.GetRouteConfig(), clusters)
	if err != nil {
		fail("http_connection_manager.route_config: %w", err)
	}
	out.routes = routes

	filters := hcm.GetHttpFilters()
	for i, f := range filters {
		where := fmt.Sprintf("http_connection_manager.http_filters[%d] (%s)", i, f.GetName())
		tc := f.GetTypedConfig()
		switch {
		case tc.MessageIs(&routerv3.Router{}):
			if i != len(filters)-1 {
				fail("%s: the router must be the last filter", where)
			}
			r := &routerv3.Router{}
			if err := tc.UnmarshalTo(r); err != nil {
				fail("%s: %w", where, err)
			}
			out.router.suppressEnvoyHeaders = r.GetSuppressEnvoyHeaders()
		case tc.MessageIs(&extprocv3.ExternalProcessor{}):
			if out.extProc != nil {
				fail("%s: the stand-in implements one ext_proc filter", where)
				continue
			}
			ep := &extprocv3.ExternalProcessor{}
			if err := tc.UnmarshalTo(ep); err != nil {
				fail("%s: %w", where, err)
				continue
			}
			cfg, err := parseExtProc(ep, clusters)
			if err != nil {
				fail("%s: %w", where, err)
			}
			for j, a := range ep.GetRequestAttributes() {
				if a != requestIDAttribute {
					fail("%s: request_attributes[%d] %q: only %s is implemented by the stand-in in the listener's filter chain", where, j, a, requestIDAttribute)
				}
			}
			cfg.requestID = slices.Contains(ep.GetRequestAttributes(), requestIDAttribute)
			out.extProc = cfg
		case tc.MessageIs(&ratelimitv3.RateLimit{}):
			// The stand-in runs the ratelimit filter's decodeHeaders once ext_proc releases
			// the request headers and its encodeHeaders before ext_proc's: that is Envoy's
			// order only when ratelimit comes after ext_proc in the chain.
			if out.rateLimit != nil {
				fail("%s: the stand-in implements one ratelimit filter", where)
				continue
			}
			if out.extProc == nil && slices.ContainsFunc(filters[i+1:], func(f *hcmv3.HttpFilter) bool {
				return f.GetTypedConfig().MessageIs(&extprocv3.ExternalProcessor{})
			}) {
				fail("%s: the stand-in implements the ratelimit filter only after ext_proc", where)
			}
			rl := &ratelimitv3.RateLimit{}
			if err := tc.UnmarshalTo(rl); err != nil {
				fail("%s: %w", where, err)
				continue
			}
			cfg, err := parseRateLimit(f.GetName(), rl, clusters)
			if err != nil {
				fail("%s: %w", where, err)
			}
			out.rateLimit = cfg
		default:
			fail("%s: filter type %s is not implemented by the stand-in", where, tc.GetTypeUrl())
		}
	}
	if len(filters) == 0 || !filters[len(filters)-1].GetTypedConfig().MessageIs(&routerv3.Router{}) {
		fail("http_connection_manager.http_filters: the last filter must be envoy.filters.http.router")
	}
	if routes != nil {
		if err := routes.bindPerFilterConfig(out.rateLimit); err != nil {
			fail("http_connection_manager.route_config: %w", err)
		}
	}
	return out, errors.Join(errs...)
}

// Body and trailer modes the stand-in implements, per direction. Tollgate's bootstrap uses
// BUFFERED requests and BUFFERED or (by mode_override) STREAMED responses.
var (
	requestBodyModes  = []extprocv3.ProcessingMode_BodySendMode{extprocv3.ProcessingMode_NONE, extprocv3.ProcessingMode_BUFFERED}
	responseBodyModes = []extprocv3.ProcessingMode_BodySendMode{extprocv3.ProcessingMode_NONE, extprocv3.ProcessingMode_BUFFERED, extprocv3.ProcessingMode_STREAMED}
)

// checkMode reports the parts of m the stand-in does not implement.
func checkMode(m *extprocv3.ProcessingMode) error {
	var errs []error
	if !slices.Contains(requestBodyModes, m.GetRequestBodyMode()) {
		errs = append(errs, fmt.Errorf("request_body_mode %s: not implemented by the stand-in", m.GetRequestBodyMode()))
	}
	if !slices.Contains(responseBodyModes, m.GetResponseBodyMode()) {
		errs = append(errs, fmt.Errorf("response_body_mode %s: not implemented by the stand-in", m.GetResponseBodyMode()))
	}
	if m.GetRequestTrailerMode() == extprocv3.ProcessingMode_SEND {
		errs = append(errs, errors.New("request_trailer_mode SEND: not implemented by the stand-in"))
	}
	if m.GetResponseTrailerMode() == extprocv3.ProcessingMode_SEND {
		errs = append(errs, errors.New("response_trailer_mode SEND: not implemented by the stand-in"))
	}
	return errors.Join(errs...)
}

func parseExtProc(ep *extprocv3.ExternalProcessor, clusters map[string]*clusterConfig) (*extProcConfig, error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	eg := ep.GetGrpcService().GetEnvoyGrpc()
	if eg == nil {
		fail("grpc_service: only envoy_grpc is implemented by the stand-in")
	}
	cfg := &extProcConfig{
		cluster:                  eg.GetClusterName(),
		maxRecvMsgBytes:          int(eg.GetMaxReceiveMessageLength().GetValue()),
		failureModeAllow:         ep.GetFailureModeAllow(),
		mode:                     ep.GetProcessingMode(),
		messageTimeout:           defaultMessageTimeout,
		allowModeOverride:        ep.GetAllowModeOverride(),
		allowedOverrideModes:     ep.GetAllowedOverrideModes(),
		forwardingNamespaces:     ep.GetMetadataOptions().GetForwardingNamespaces().GetUntyped(),
		receivingNamespaces:      ep.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(),
		statusOnError:            int(ep.GetStatusOnError().GetCode()),
		routeCacheAction:         ep.GetRouteCacheAction(),
		disableImmediateResponse: ep.GetDisableImmediateResponse(),
	}
	if cfg.mode == nil {
		cfg.mode = &extprocv3.ProcessingMode{}
	}
	md, err := initialMetadata(ep.GetGrpcService())
	if err != nil {
		fail("grpc_service.initial_metadata: %w", err)
	}
	cfg.initialMetadata = md
	if cfg.maxRecvMsgBytes == 0 {
		cfg.maxRecvMsgBytes = 1<<31 - 1 // Envoy: 0 means unlimited
	}
	// Envoy: ext_proc.cc FilterConfig, status_on_error defaults to 500.
	if cfg.statusOnError == 0 {
		cfg.statusOnError = 500
	}
	if d := ep.GetMessageTimeout(); d != nil {
		cfg.messageTimeout = d.AsDuration()
	}
	if d := ep.GetMaxMessageTimeout(); d != nil {
		cfg.maxMessageTimeout = d.AsDuration()
	}
	if ep.GetDisableClearRouteCache() {
		if cfg.routeCacheAction != extprocv3.ExternalProcessor_DEFAULT {
			fail("disable_clear_route_cache and route_cache_action cannot both be set")
		}
		cfg.routeCacheAction = extprocv3.ExternalProcessor_RETAIN
	}
	if c := clusters[cfg.cluster]; eg != nil && c == nil {
		fail("grpc_service.envoy_grpc.cluster_name %q: no such cluster", cfg.cluster)
	} else if c != nil && !c.http2 {
		fail("grpc_service.envoy_grpc.cluster_name %q: the cluster must use HTTP/2 (typed_extension_protocol_options)", cfg.cluster)
	}
	if err := checkMode(cfg.mode); err != nil {
		fail("processing_mode: %w", err)
	}
	for i, m := range cfg.allowedOverrideModes {
		if err := checkMode(m); err != nil {
			fail("allowed_override_modes[%d]: %w", i, err)
		}
	}
	rules, err := newMutationRules(ep.GetMutationRules())
	if err != nil {
		fail("mutation_rules: %w", err)
	}
	cfg.rules = rules
	return cfg, errors.Join(errs...)
}
