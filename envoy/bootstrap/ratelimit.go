package bootstrap

import (
	"errors"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate/tollgate/envoy/contract"
)

// The rate-limit filter and its RLS. The descriptors' keys, quotas and domain, and the metadata
// keys they read, are envoy/contract's: extproc writes the metadata and the RLS
// (ratelimit/descriptor.go) parses the descriptors.
const (
	// RateLimitFilterName names the HTTP ratelimit filter; RateLimitPerRoute is keyed by it.
	RateLimitFilterName = "envoy.filters.http.ratelimit"
	// RateLimitClusterName is the cluster through which Envoy reaches the RLS.
	RateLimitClusterName = "tollgate_ratelimit"
	// DefaultRateLimitTimeout bounds one ShouldRateLimit call (Envoy's default is 20 ms). It
	// is a bound, not a cost: a decision normally takes a millisecond. But with the filter
	// failing closed a timeout is a 500 to the client, and on a loaded 2-core host a burst of
	// concurrent decisions waits on scheduling, the RLS's Redis connection pool and GC: with a
	// 15 ms Redis deadline under a 20-50 ms timeout, 38 of a burst of 40 requests against an
	// RPM of 20 were served. The RLS's own Redis deadline (ratelimit.DefaultRedisTimeout,
	// 250 ms) is half of this, so its answer — a decision, or its configured failure — reaches
	// Envoy before Envoy's own timer fires; the other half covers gRPC and scheduling. Half a
	// second is small beside an LLM call.
	DefaultRateLimitTimeout = 500 * time.Millisecond

	// OrgHeader, KeyHeader and ModelHeader are the descriptor headers of earlier renderings; the
	// rate limits now read the metadata above, and the stand-in's tests still send them to show
	// that headers are not what counts.
	OrgHeader   = "x-tollgate-org"
	KeyHeader   = "x-tollgate-key"
	ModelHeader = "x-tollgate-model"
)

// RateLimit configures the HTTP ratelimit filter and its RLS.
type RateLimit struct {
	// Service is the RLS, spoken to over cleartext HTTP/2.
	Service Upstream
	// Timeout bounds each ShouldRateLimit call (default DefaultRateLimitTimeout).
	Timeout time.Duration
	// FailOpen lets requests through when the RLS fails or times out. The default (false) is
	// the production setting: the filter's failure_mode_deny, so an RLS or Redis outage gives
	// clients status_on_error (500, rewritten by extproc into the client's protocol), never
	// unmetered admissions.
	FailOpen bool
}

func (r *RateLimit) withDefaults() *RateLimit {
	if r == nil {
		return nil
	}
	c := *r
	if c.Timeout == 0 {
		c.Timeout = DefaultRateLimitTimeout
	}
	return &c
}

func (r *RateLimit) validate() error {
	if r == nil {
		return nil
	}
	var errs []error
	if !r.Service.valid() {
		errs = append(errs, errors.New("ratelimit: host and port, or a unix socket path, are required"))
	}
	if r.Timeout < time.Millisecond {
		errs = append(errs, fmt.Errorf("ratelimit timeout %s: must be at least 1ms", r.Timeout))
	}
	return errors.Join(errs...)
}

// RateLimitFilter is the HTTP ratelimit filter of docs/design.md section 7: domain tollgate, the
// RLS at RateLimitClusterName, DRAFT_VERSION_03 x-ratelimit-* headers, and no filter-level
// rate_limits (they live in the route's RateLimitPerRoute, RateLimitPerRoute).
func RateLimitFilter(r RateLimit) *ratelimitv3.RateLimit {
	return &ratelimitv3.RateLimit{
		Domain:          contract.RateLimitDomain,
		Timeout:         durationpb.New(r.Timeout),
		FailureModeDeny: !r.FailOpen,
		// 429 to clients, not gRPC RESOURCE_EXHAUSTED: Tollgate serves plain HTTP.
		RateLimitedAsResourceExhausted: false,
		RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: RateLimitClusterName},
			}},
			// Envoy refuses anything but V3 (config.cc checkTransportVersion).
			TransportApiVersion: corev3.ApiVersion_V3,
		},
		EnableXRatelimitHeaders: ratelimitv3.RateLimit_DRAFT_VERSION_03,
	}
}

// rateLimitScope is one scope of docs/design.md section 7: org, plus the key and/or the model.
type rateLimitScope struct{ key, model bool }

// rateLimitScopes is the order of scopes in the route's rate_limits.
var rateLimitScopes = []rateLimitScope{
	{model: true},            // org+model
	{},                       // org
	{key: true},              // org+key
	{key: true, model: true}, // org+key+model
}

// RateLimitPerRoute is the route's rate-limit policy (docs/design.md section 7). For each scope
// in [org+model, org, org+key, org+key+model] it holds five entries whose descriptors are
// {quota}, {org}, then {key} and {model} as the scope says:
//   - rpm on the request path (hits_addend unset: the RLS counts 1);
//   - tpm and tpd on the request path with hits_addend 0: checked, not consumed;
//   - tpm and tpd with apply_on_stream_done, hits_addend read from
//     %DYNAMIC_METADATA(tollgate:total_tokens)%: consumed once the response is done.
//
// The org, key and model come from the dynamic metadata extproc writes with its request-body
// reply (namespace tollgate), not from request headers: headers would travel on to the provider,
// and the apply_on_stream_done entries are evaluated only after the whole response. A scope whose
// value is missing yields no descriptor: Envoy drops a descriptor when a metadata action finds
// nothing and has no default (source/common/router/router_ratelimit.cc
// MetaDataAction::populateDescriptor).
// These entries must sit in RateLimitPerRoute: hits_addend is only allowed there and the
// filter-level rate_limits never evaluate apply_on_stream_done (ratelimit.cc
// populateRateLimitDescriptors; docs/envoy.md section 3).
func RateLimitPerRoute() *ratelimitv3.RateLimitPerRoute {
	tokens := "%DYNAMIC_METADATA(" + contract.MetadataNamespace + ":" + contract.TotalTokensKey + ")%"
	var limits []*routev3.RateLimit
	for _, s := range rateLimitScopes {
		entry := func(quota string, hits *routev3.RateLimit_HitsAddend, onDone bool) *routev3.RateLimit {
			actions := []*routev3.RateLimit_Action{genericKey(contract.DescriptorQuota, quota), dynamicMetadata(contract.OrgIDKey, contract.DescriptorOrg)}
			if s.key {
				actions = append(actions, dynamicMetadata(contract.KeyIDKey, contract.DescriptorKey))
			}
			if s.model {
				actions = append(actions, dynamicMetadata(contract.ModelKey, contract.DescriptorModel))
			}
			return &routev3.RateLimit{Actions: actions, HitsAddend: hits, ApplyOnStreamDone: onDone}
		}
		check := &routev3.RateLimit_HitsAddend{Number: wrapperspb.UInt64(0)}
		consume := &routev3.RateLimit_HitsAddend{Format: tokens}
		limits = append(limits,
			entry(contract.QuotaRequestsPerMinute, nil, false),
			entry(contract.QuotaTokensPerMinute, check, false),
			entry(contract.QuotaTokensPerDay, check, false),
			entry(contract.QuotaTokensPerMinute, consume, true),
			entry(contract.QuotaTokensPerDay, consume, true),
		)
	}
	return &ratelimitv3.RateLimitPerRoute{RateLimits: limits}
}

// ManagementRateLimitPerRoute is the management route's rate-limit policy: one descriptor,
// {quota: mgmt_rpm}, {org}, {key}, from the dynamic metadata extproc writes with its
// request-headers reply to a management request (management requests have no body, so the
// headers reply is the only one before the ratelimit filter runs). A request without that
// metadata (extproc refused it) yields no descriptor and no RLS call.
func ManagementRateLimitPerRoute() *ratelimitv3.RateLimitPerRoute {
	return &ratelimitv3.RateLimitPerRoute{RateLimits: []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{
		genericKey(contract.DescriptorQuota, contract.QuotaManagementRequestsPerMinute),
		dynamicMetadata(contract.OrgIDKey, contract.DescriptorOrg),
		dynamicMetadata(contract.KeyIDKey, contract.DescriptorKey),
	}}}}
}

func genericKey(key, value string) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
		GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: key, DescriptorValue: value},
	}}
}

func dynamicMetadata(field, key string) *routev3.RateLimit_Action {
	return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Metadata{
		Metadata: &routev3.RateLimit_Action_MetaData{
			DescriptorKey: key,
			MetadataKey: &metadatav3.MetadataKey{Key: contract.MetadataNamespace,
				Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: field}}}},
			Source: routev3.RateLimit_Action_MetaData_DYNAMIC,
		},
	}}
}

// rateLimitParts is what Render adds for p.RateLimit: the filter (placed right after
// ext_proc, so it sees extproc's headers), the model routes' policy and the management route's.
func rateLimitParts(r *RateLimit, peerSecret string) (filter *hcmv3.HttpFilter, perRoute, management *anypb.Any, err error) {
	rl := RateLimitFilter(*r)
	rl.RateLimitService.GrpcService.InitialMetadata = peerMetadata(peerSecret)
	f, err := anypb.New(rl)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ratelimit filter: %w", err)
	}
	if perRoute, err = anypb.New(RateLimitPerRoute()); err != nil {
		return nil, nil, nil, fmt.Errorf("ratelimit per route: %w", err)
	}
	if management, err = anypb.New(ManagementRateLimitPerRoute()); err != nil {
		return nil, nil, nil, fmt.Errorf("management ratelimit per route: %w", err)
	}
	return &hcmv3.HttpFilter{Name: RateLimitFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: f}}, perRoute, management, nil
}
