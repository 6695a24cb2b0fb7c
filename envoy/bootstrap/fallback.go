package bootstrap

import (
	"errors"
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	previouspriovv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate/tollgate/envoy/contract"
)

// Retries and fallback: Envoy retries a failed attempt on the next priority level of the model's
// cluster, and an upstream ext_proc filter translates every attempt for the backend it reached.
//
// The upstream ext_proc filter lists contract.UpstreamBackendAttribute in request_attributes:
// the chosen endpoint's filter_metadata.tollgate.backend, which reaches extproc as a string. The
// narrow path is used because ext_proc sends a whole Metadata message only as a printed string
// (ext_proc matching_utils.cc ExpressionManager::evaluateAttributes: strings, numbers and bools
// keep their type, anything else is printed); Envoy AI Gateway reads its backend name the same
// way.
const (
	// RetryOn is the route's retry_on: 5xx responses and resets, 502/503/504, connect
	// failures, refused streams, and the statuses in RetriableStatusCodes (429).
	RetryOn = "5xx,gateway-error,reset,connect-failure,refused-stream,retriable-status-codes"

	upstreamExtProcFilterName = "tollgate.upstream_ext_proc"
	headerMutationFilterName  = "envoy.filters.http.header_mutation"
	upstreamCodecFilterName   = "envoy.filters.http.upstream_codec"
	previousPrioritiesName    = "envoy.retry_priorities.previous_priorities"

	DefaultAttemptsPerLevel = 3
	DefaultMaxRetries       = 14 // 15 attempts: five levels of three
	// DefaultPerTryTimeout is zero: no per_try_timeout, so the route timeout bounds a whole
	// attempt and a long stream is never cut while it keeps flowing (per_try_idle_timeout
	// still cuts a stalled one).
	DefaultPerTryTimeout      = time.Duration(0)
	DefaultPerTryIdleTimeout  = 60 * time.Second
	DefaultBackOffBase        = 300 * time.Millisecond // seed 003
	DefaultBackOffMax         = 8 * time.Second        // seed 003
	DefaultConsecutive5xx     = 5
	DefaultOutlierInterval    = 10 * time.Second
	DefaultBaseEjectionTime   = 30 * time.Second
	DefaultMaxEjectionPercent = 100
)

// Retry is Envoy's retry and fallback machinery for model clusters. Zero values take the
// documented defaults.
type Retry struct {
	// AttemptsPerLevel is how many attempts one priority level (one backend of the chain)
	// gets before retries move to the next level: previous_priorities' update_frequency.
	// Default 3.
	AttemptsPerLevel uint32
	// MaxRetries caps num_retries. Each model cluster has its own route, so num_retries
	// is AttemptsPerLevel × (that cluster's levels) − 1, at most MaxRetries (default 14).
	MaxRetries uint32
	// PerTryTimeout, if set, bounds one attempt from the moment its connection is ready to
	// the end of its response, body included: a stream longer than this is reset. Zero (the
	// default) renders no per_try_timeout: the route timeout bounds the whole attempt.
	PerTryTimeout time.Duration
	// PerTryIdleTimeout bounds the silence of one attempt, before and after response headers
	// (default 60s): a stalled stream is cut rather than held to the route timeout.
	PerTryIdleTimeout time.Duration
	// BackOffBase and BackOffMax are retry_back_off (seed 003: 300ms, 8s). Envoy waits a
	// random time in [0, min(BackOffBase×2^(n-1), BackOffMax)) before retry n.
	BackOffBase, BackOffMax time.Duration
	// RetriableStatusCodes are retried besides 5xx (default [429]).
	RetriableStatusCodes []uint32
	// Consecutive5xx ejects a backend after that many 5xx (or connect failures, resets and
	// timeouts) in a row, for BaseEjectionTime × times ejected; ejections are lifted at
	// OutlierInterval ticks. Defaults 5, 10s, 30s.
	Consecutive5xx   uint32
	OutlierInterval  time.Duration
	BaseEjectionTime time.Duration
}

func (f *Retry) withDefaults() *Retry {
	var out Retry
	if f != nil {
		out = *f
	}
	if out.AttemptsPerLevel == 0 {
		out.AttemptsPerLevel = DefaultAttemptsPerLevel
	}
	if out.MaxRetries == 0 {
		out.MaxRetries = DefaultMaxRetries
	}
	if out.PerTryIdleTimeout == 0 {
		out.PerTryIdleTimeout = DefaultPerTryIdleTimeout
	}
	if out.BackOffBase == 0 {
		out.BackOffBase = DefaultBackOffBase
	}
	if out.BackOffMax == 0 {
		out.BackOffMax = DefaultBackOffMax
	}
	if out.RetriableStatusCodes == nil {
		out.RetriableStatusCodes = []uint32{429}
	}
	if out.Consecutive5xx == 0 {
		out.Consecutive5xx = DefaultConsecutive5xx
	}
	if out.OutlierInterval == 0 {
		out.OutlierInterval = DefaultOutlierInterval
	}
	if out.BaseEjectionTime == 0 {
		out.BaseEjectionTime = DefaultBaseEjectionTime
	}
	return &out
}

func (f *Retry) validate() error {
	var errs []error
	if f.PerTryTimeout != 0 && f.PerTryTimeout < time.Millisecond {
		errs = append(errs, fmt.Errorf("retry: per-try timeout %s: must be zero (none) or at least 1ms", f.PerTryTimeout))
	}
	for name, d := range map[string]time.Duration{
		"per-try idle timeout": f.PerTryIdleTimeout,
		"back-off base":        f.BackOffBase, "outlier interval": f.OutlierInterval, "base ejection time": f.BaseEjectionTime,
	} {
		if d < time.Millisecond {
			errs = append(errs, fmt.Errorf("retry: %s %s: must be at least 1ms", name, d))
		}
	}
	if f.BackOffMax < f.BackOffBase {
		errs = append(errs, fmt.Errorf("retry: back-off max %s is below the base %s", f.BackOffMax, f.BackOffBase))
	}
	for _, c := range f.RetriableStatusCodes {
		if c < 100 || c > 599 {
			errs = append(errs, fmt.Errorf("retry: retriable status code %d: not an HTTP status", c))
		}
	}
	return errors.Join(errs...)
}

// numRetries is num_retries for the route of cluster c: enough for AttemptsPerLevel attempts
// on every one of its levels, capped.
func (f *Retry) numRetries(c Cluster) uint32 {
	levels := uint32(max(1, len(c.Priorities)))
	return min(f.MaxRetries, f.AttemptsPerLevel*levels-1)
}

// retryPolicy is the route's retry_policy.
//
// previous_priorities counts every attempted host, the first attempt included (router.cc
// Filter::onUpstreamHostSelected → RetryState::onHostAttempted), and re-excludes the
// priorities of all attempted hosts each time their count is a multiple of update_frequency
// (source/extensions/retry/priority/previous_priorities/previous_priorities.cc
// determinePriorityLoad). With one backend per level and update_frequency = attempts per
// level, attempts 1..3 go to level 0, 4..6 to level 1, and so on. previous_hosts is not used:
// it would forbid the same-level attempts, each level having one host.
func (f *Retry) retryPolicy(c Cluster) (*routev3.RetryPolicy, error) {
	prio, err := anypb.New(&previouspriovv3.PreviousPrioritiesConfig{UpdateFrequency: int32(f.AttemptsPerLevel)})
	if err != nil {
		return nil, fmt.Errorf("previous_priorities: %w", err)
	}
	rp := &routev3.RetryPolicy{
		RetryOn:              RetryOn,
		NumRetries:           wrapperspb.UInt32(f.numRetries(c)),
		PerTryIdleTimeout:    durationpb.New(f.PerTryIdleTimeout),
		RetriableStatusCodes: append([]uint32(nil), f.RetriableStatusCodes...),
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{
			BaseInterval: durationpb.New(f.BackOffBase),
			MaxInterval:  durationpb.New(f.BackOffMax),
		},
		RetryPriority: &routev3.RetryPolicy_RetryPriority{
			Name:       previousPrioritiesName,
			ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: prio},
		},
	}
	if f.PerTryTimeout > 0 {
		rp.PerTryTimeout = durationpb.New(f.PerTryTimeout)
	}
	return rp, nil
}

// outlierDetection ejects a backend after consecutive 5xx. Success-rate ejection (on by
// default in Envoy once a cluster has 5 hosts with 100 requests each) is turned off: the
// priority levels, not statistics across unlike providers, decide where traffic goes.
func (f *Retry) outlierDetection() *clusterv3.OutlierDetection {
	return &clusterv3.OutlierDetection{
		Consecutive_5Xx:      wrapperspb.UInt32(f.Consecutive5xx),
		Interval:             durationpb.New(f.OutlierInterval),
		BaseEjectionTime:     durationpb.New(f.BaseEjectionTime),
		MaxEjectionPercent:   wrapperspb.UInt32(DefaultMaxEjectionPercent),
		EnforcingSuccessRate: wrapperspb.UInt32(0),
	}
}

// UpstreamExtProcFilter is the ext_proc filter that runs per attempt as an upstream HTTP
// filter of a model cluster: request headers (the body is rebuilt by extproc from the
// original request and returned with CONTINUE_AND_REPLACE) and response headers, so that
// extproc learns each attempt's status on that attempt's own stream (it answers with an
// empty HeadersResponse; the upstream filters' encodeHeaders run before the router's retry
// decision, source/common/router/upstream_request.cc), no bodies, the chosen backend in
// request_attributes, the request's tollgate metadata forwarded (so extproc finds the request
// without relying on a header a previous attempt may have removed) and accepted back.
func UpstreamExtProcFilter(messageTimeout time.Duration, maxRequestBytes uint32) *extprocv3.ExternalProcessor {
	ep := ExtProcFilter(messageTimeout, maxRequestBytes)
	ep.AllowModeOverride = false
	ep.ProcessingMode = &extprocv3.ProcessingMode{
		RequestHeaderMode:  extprocv3.ProcessingMode_SEND,
		RequestBodyMode:    extprocv3.ProcessingMode_NONE,
		ResponseHeaderMode: extprocv3.ProcessingMode_SEND,
		ResponseBodyMode:   extprocv3.ProcessingMode_NONE,
	}
	ep.RequestAttributes = []string{contract.RequestIDAttribute, contract.UpstreamBackendAttribute}
	ep.MetadataOptions.ForwardingNamespaces = &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: []string{contract.MetadataNamespace}}
	return ep
}

// ContentLengthMutation is the header_mutation upstream filter: content-length from dynamic
// metadata tollgate:content_length (contract.ContentLengthKey, which extproc writes in the
// attempt's reply that replaces the body), overwriting whatever the shared header map holds. When the
// key is absent the formatted value is empty, and an empty value is not written at all
// (keep_empty_value false: source/extensions/filters/http/header_mutation/header_mutation.cc
// AppendMutation::mutate; source/common/router/header_parser.cc HeadersToAddEntry), so a
// request whose body extproc did not replace keeps its own content-length.
func ContentLengthMutation() *headermutationv3.HeaderMutation {
	return &headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{
		RequestMutations: []*mutationrulesv3.HeaderMutation{{
			Action: &mutationrulesv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
				Header: &corev3.HeaderValue{
					Key:   "content-length",
					Value: "%DYNAMIC_METADATA(" + contract.MetadataNamespace + ":" + contract.ContentLengthKey + ")%",
				},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			}},
		}},
	}}
}

func upstreamExtProc(p Params) *extprocv3.ExternalProcessor {
	ep := UpstreamExtProcFilter(p.MessageTimeout, p.MaxRequestBytes)
	ep.GrpcService.InitialMetadata = peerMetadata(p.PeerSecret)
	return ep
}

// upstreamProtocolOptions is a model cluster's HttpProtocolOptions: HTTP/1.1, and the
// per-attempt filter chain ext_proc → header_mutation → upstream_codec.
func upstreamProtocolOptions(p Params) (*anypb.Any, error) {
	var filters []*hcmv3.HttpFilter
	for _, f := range []struct {
		name string
		cfg  proto.Message
	}{
		{upstreamExtProcFilterName, upstreamExtProc(p)},
		{headerMutationFilterName, ContentLengthMutation()},
		{upstreamCodecFilterName, &upstreamcodecv3.UpstreamCodec{}},
	} {
		a, err := anypb.New(f.cfg)
		if err != nil {
			return nil, fmt.Errorf("upstream filter %s: %w", f.name, err)
		}
		filters = append(filters, &hcmv3.HttpFilter{Name: f.name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}})
	}
	opts, err := anypb.New(&upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
					HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
				},
			},
		},
		HttpFilters: filters,
	})
	if err != nil {
		return nil, fmt.Errorf("http protocol options: %w", err)
	}
	return opts, nil
}
