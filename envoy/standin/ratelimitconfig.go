package standin

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"
)

// Envoy defaults of the HTTP ratelimit filter.
const (
	// defaultRateLimitTimeout: config.cc PROTOBUF_GET_MS_OR_DEFAULT(proto_config, timeout, 20).
	defaultRateLimitTimeout = 20 * time.Millisecond
	// rateLimitMetadataNamespace is where the RLS's dynamic_metadata goes (ratelimit.cc
	// Filter::complete, unless metadata_namespace is set, which the stand-in refuses).
	rateLimitMetadataNamespace = "envoy.filters.http.ratelimit"
	// maxHitsAddend bounds a hits_addend read through a format: above it the descriptor is
	// dropped (filters/common/ratelimit_config/ratelimit_config.cc MAX_HITS_ADDEND).
	maxHitsAddend = 1e9
)

// rateLimitConfig is the HTTP ratelimit filter's configuration.
type rateLimitConfig struct {
	name              string // the HttpFilter's name: RateLimitPerRoute is keyed by it
	domain            string
	cluster           string
	maxRecvMsgBytes   int
	timeout           time.Duration
	failureModeDeny   bool
	xRateLimitHeaders bool // enable_x_ratelimit_headers: DRAFT_VERSION_03
	xEnvoyRateLimited bool // !disable_x_envoy_ratelimited_header
	rateLimitedStatus int
	statusOnError     int
	initialMetadata   metadata.MD // the GrpcService's, sent on every call
}

// rateLimitPolicy is a route's RateLimitPerRoute: its rate_limits and optional domain.
type rateLimitPolicy struct {
	domain string
	limits []rateLimitEntry
}

// rateLimitEntry is one RateLimit: actions in order, an optional hits_addend, and whether it
// applies on the request path or once the stream is done.
type rateLimitEntry struct {
	actions      []rateLimitAction
	hitsNumber   *uint64       // hits_addend.number
	hitsFormat   *metadataPath // hits_addend.format, a single %DYNAMIC_METADATA(...)%
	onStreamDone bool
}

type actionKind int

const (
	actionRequestHeaders actionKind = iota
	actionGenericKey
	actionMetadata
)

// rateLimitAction is one RateLimit.Action the stand-in implements.
type rateLimitAction struct {
	kind         actionKind
	key          string // descriptor key
	value        string // generic_key: the descriptor value
	header       string // request_headers: lower-case header name
	md           metadataPath
	defaultValue string // metadata: used when the value is absent or not a string
	skipIfAbsent bool
}

// metadataPath names a value in dynamic metadata: a namespace and a path of struct keys.
type metadataPath struct {
	namespace string
	path      []string
}

// hitsAddendFormat is the only substitution format the stand-in implements for hits_addend:
// exactly one %DYNAMIC_METADATA(namespace:key[:key...])%. Envoy requires exactly one
// substitution (ratelimit_config.cc "hits_addend format must contain exactly one
// substitution"), so literal text around it is refused by Envoy too.
var hitsAddendFormat = regexp.MustCompile(`^%DYNAMIC_METADATA\(([^:()%]+)((?::[^:()%]+)+)\)%$`)

func parseRateLimit(name string, rl *ratelimitv3.RateLimit, clusters map[string]*clusterConfig) (*rateLimitConfig, error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	svc := rl.GetRateLimitService()
	eg := svc.GetGrpcService().GetEnvoyGrpc()
	if eg == nil {
		fail("rate_limit_service.grpc_service: only envoy_grpc is implemented by the stand-in")
	}
	// Envoy: config.cc Config::Utility::checkTransportVersion refuses anything but V3.
	if v := svc.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		fail("rate_limit_service.transport_api_version %s: Envoy requires V3", v)
	}
	cfg := &rateLimitConfig{
		name:              name,
		domain:            rl.GetDomain(),
		cluster:           eg.GetClusterName(),
		maxRecvMsgBytes:   int(eg.GetMaxReceiveMessageLength().GetValue()),
		timeout:           defaultRateLimitTimeout,
		failureModeDeny:   rl.GetFailureModeDeny(),
		xEnvoyRateLimited: !rl.GetDisableXEnvoyRatelimitedHeader(),
		rateLimitedStatus: int(rl.GetRateLimitedStatus().GetCode()),
		statusOnError:     int(rl.GetStatusOnError().GetCode()),
	}
	if d := rl.GetTimeout(); d != nil {
		cfg.timeout = d.AsDuration()
	}
	md, err := initialMetadata(svc.GetGrpcService())
	if err != nil {
		fail("rate_limit_service.grpc_service.initial_metadata: %w", err)
	}
	cfg.initialMetadata = md
	if cfg.maxRecvMsgBytes == 0 {
		cfg.maxRecvMsgBytes = 1<<31 - 1
	}
	switch rl.GetEnableXRatelimitHeaders() {
	case ratelimitv3.RateLimit_OFF:
	case ratelimitv3.RateLimit_DRAFT_VERSION_03:
		cfg.xRateLimitHeaders = true
	default:
		fail("enable_x_ratelimit_headers %s: not implemented by the stand-in", rl.GetEnableXRatelimitHeaders())
	}
	// Envoy: rate_limit.proto rate_limited_status "defaults to 429 if not set or if the code
	// is less than 400"; status_on_error defaults to 500.
	if cfg.rateLimitedStatus < 400 {
		cfg.rateLimitedStatus = 429
	}
	if cfg.statusOnError == 0 {
		cfg.statusOnError = 500
	}
	if c := clusters[cfg.cluster]; eg != nil && c == nil {
		fail("rate_limit_service.grpc_service.envoy_grpc.cluster_name %q: no such cluster", cfg.cluster)
	} else if c != nil && !c.http2 {
		fail("rate_limit_service.grpc_service.envoy_grpc.cluster_name %q: the cluster must use HTTP/2 (typed_extension_protocol_options)", cfg.cluster)
	}
	return cfg, errors.Join(errs...)
}

// parseRateLimitPerRoute reads a route's typed_per_filter_config for the ratelimit filter.
func parseRateLimitPerRoute(a *anypb.Any) (*rateLimitPolicy, error) {
	pr := &ratelimitv3.RateLimitPerRoute{}
	if err := a.UnmarshalTo(pr); err != nil {
		return nil, fmt.Errorf("only envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute is implemented by the stand-in: %w", err)
	}
	var errs []error
	pol := &rateLimitPolicy{domain: pr.GetDomain()}
	for i, rl := range pr.GetRateLimits() {
		e, err := parseRateLimitEntry(rl)
		if err != nil {
			errs = append(errs, fmt.Errorf("rate_limits[%d]: %w", i, err))
			continue
		}
		pol.limits = append(pol.limits, e)
	}
	return pol, errors.Join(errs...)
}

// parseRateLimitEntry follows filters/common/ratelimit_config/ratelimit_config.cc
// RateLimitPolicy::RateLimitPolicy.
func parseRateLimitEntry(rl *routev3.RateLimit) (rateLimitEntry, error) {
	var errs []error
	e := rateLimitEntry{onStreamDone: rl.GetApplyOnStreamDone()}
	if h := rl.GetHitsAddend(); h != nil {
		switch {
		case h.GetFormat() != "" && h.GetNumber() != nil:
			errs = append(errs, errors.New("hits_addend must contain either a format or a number"))
		case h.GetFormat() != "":
			m := hitsAddendFormat.FindStringSubmatch(h.GetFormat())
			if m == nil {
				errs = append(errs, fmt.Errorf("hits_addend.format %q: only a single %%DYNAMIC_METADATA(namespace:key)%% is implemented by the stand-in", h.GetFormat()))
				break
			}
			e.hitsFormat = &metadataPath{namespace: m[1], path: strings.Split(m[2][1:], ":")}
		case h.GetNumber() != nil:
			n := h.GetNumber().GetValue()
			e.hitsNumber = &n
		default:
			errs = append(errs, errors.New("hits_addend must contain either a format or a number"))
		}
	}
	for i, a := range rl.GetActions() {
		act, err := parseRateLimitAction(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("actions[%d]: %w", i, err))
			continue
		}
		e.actions = append(e.actions, act)
	}
	return e, errors.Join(errs...)
}

// parseRateLimitAction follows source/common/router/router_ratelimit.cc (the action
// constructors; generic_key's descriptor_key defaults to "generic_key").
func parseRateLimitAction(a *routev3.RateLimit_Action) (rateLimitAction, error) {
	switch v := a.GetActionSpecifier().(type) {
	case *routev3.RateLimit_Action_RequestHeaders_:
		return rateLimitAction{
			kind:         actionRequestHeaders,
			key:          v.RequestHeaders.GetDescriptorKey(),
			header:       strings.ToLower(v.RequestHeaders.GetHeaderName()),
			skipIfAbsent: v.RequestHeaders.GetSkipIfAbsent(),
		}, nil
	case *routev3.RateLimit_Action_GenericKey_:
		key := v.GenericKey.GetDescriptorKey()
		if key == "" {
			key = "generic_key"
		}
		return rateLimitAction{kind: actionGenericKey, key: key, value: v.GenericKey.GetDescriptorValue()}, nil
	case *routev3.RateLimit_Action_Metadata:
		m := v.Metadata
		if m.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC {
			return rateLimitAction{}, fmt.Errorf("metadata.source %s: only DYNAMIC is implemented by the stand-in", m.GetSource())
		}
		md := metadataPath{namespace: m.GetMetadataKey().GetKey()}
		for _, seg := range m.GetMetadataKey().GetPath() {
			md.path = append(md.path, seg.GetKey())
		}
		return rateLimitAction{
			kind:         actionMetadata,
			key:          m.GetDescriptorKey(),
			md:           md,
			defaultValue: m.GetDefaultValue(),
			skipIfAbsent: m.GetSkipIfAbsent(),
		}, nil
	}
	// Other actions are refused by the field table (allow.go) before this point.
	return rateLimitAction{}, fmt.Errorf("action %T: not implemented by the stand-in", a.GetActionSpecifier())
}
