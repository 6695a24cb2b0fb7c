package standin

import (
	"slices"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// dynamicMetadata is a request's dynamic metadata (StreamInfo::dynamicMetadata), per
// namespace. Filters after ext_proc (the ratelimit filter) and access logging read it;
// StreamInfo hands a copy to Options.OnStreamComplete. Owned by the stream goroutine.
type dynamicMetadata struct {
	ns map[string]*structpb.Struct
}

// merge is StreamInfo::setDynamicMetadata: the struct is merged into the namespace, so a
// later reply overwrites keys it repeats and keeps the others.
func (m *dynamicMetadata) merge(namespace string, s *structpb.Struct) {
	if m.ns == nil {
		m.ns = map[string]*structpb.Struct{}
	}
	cur, ok := m.ns[namespace]
	if !ok {
		cur = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		m.ns[namespace] = cur
	}
	for k, v := range s.GetFields() {
		cur.Fields[k] = proto.Clone(v).(*structpb.Value)
	}
}

// forward is the metadata_context sent to the processor: the request's metadata for each
// forwarding namespace present.
func (m *dynamicMetadata) forward(namespaces []string) *corev3.Metadata {
	out := &corev3.Metadata{}
	for _, n := range namespaces {
		if s, ok := m.ns[n]; ok {
			if out.FilterMetadata == nil {
				out.FilterMetadata = map[string]*structpb.Struct{}
			}
			out.FilterMetadata[n] = proto.Clone(s).(*structpb.Struct)
		}
	}
	return out
}

func (m *dynamicMetadata) snapshot() map[string]*structpb.Struct {
	out := make(map[string]*structpb.Struct, len(m.ns))
	for k, v := range m.ns {
		out[k] = proto.Clone(v).(*structpb.Struct)
	}
	return out
}

// acceptMetadata applies a reply's dynamic_metadata: only namespaces listed in
// receiving_namespaces are written; with none listed, everything is dropped.
//
// Envoy: source/extensions/filters/http/ext_proc/ext_proc.cc Filter::setDynamicMetadata.
func (m *dynamicMetadata) accept(receiving []string, s *structpb.Struct) (dropped []string) {
	for k, v := range s.GetFields() {
		if !slices.Contains(receiving, k) {
			dropped = append(dropped, k)
			continue
		}
		m.merge(k, v.GetStructValue())
	}
	return dropped
}

// counters are the stand-in's statistics, named after Envoy's ext_proc and router stats.
type counters struct {
	streamsStarted, streamsClosed, streamsFailed atomic.Uint64
	msgsSent, msgsReceived, spuriousMsgs         atomic.Uint64
	messageTimeouts, failureModeAllowed          atomic.Uint64
	rejectedHeaderMutations                      atomic.Uint64
	clearRouteCacheIgnored, clearRouteCacheOff   atomic.Uint64
	overrideTimeoutReceived                      atomic.Uint64
	overrideTimeoutIgnored                       atomic.Uint64
	noCluster, noRoute, upstreamReset            atomic.Uint64
	upstreamTimeout, idleTimeout                 atomic.Uint64
	rateLimitOK, rateLimitError                  atomic.Uint64
	rateLimitOverLimit                           atomic.Uint64
	rateLimitFailureModeAllowed                  atomic.Uint64
	upstreamRqRetry, upstreamRqRetryLimitExceed  atomic.Uint64
	upstreamPerTryTimeout, outlierEjections      atomic.Uint64
}

// Stats is a snapshot of the stand-in's counters. Field names follow Envoy's statistics
// (http.<stat_prefix>.ext_proc.* and the router's).
type Stats struct {
	StreamsStarted, StreamsClosed, StreamsFailed                       uint64
	StreamMsgsSent, StreamMsgsReceived, SpuriousMsgsReceived           uint64
	MessageTimeouts, FailureModeAllowed                                uint64
	RejectedHeaderMutations                                            uint64
	ClearRouteCacheIgnored, ClearRouteCacheDisabled                    uint64
	OverrideMessageTimeoutReceived, OverrideMessageTimeoutIgnored      uint64
	NoCluster, NoRoute, UpstreamResets, UpstreamTimeouts, IdleTimeouts uint64
	// The ratelimit filter's cluster.<route target cluster>.ratelimit.* counters.
	RateLimitOK, RateLimitError, RateLimitOverLimit, RateLimitFailureModeAllowed uint64
	// The router's retry counters and outlier detection's ejections
	// (cluster.<name>.upstream_rq_retry, upstream_rq_retry_limit_exceeded,
	// upstream_rq_per_try_timeout; outlier_detection.ejections_enforced_total).
	UpstreamRqRetry, UpstreamRqRetryLimitExceeded, UpstreamRqPerTryTimeout, OutlierEjections uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		StreamsStarted:                 c.streamsStarted.Load(),
		StreamsClosed:                  c.streamsClosed.Load(),
		StreamsFailed:                  c.streamsFailed.Load(),
		StreamMsgsSent:                 c.msgsSent.Load(),
		StreamMsgsReceived:             c.msgsReceived.Load(),
		SpuriousMsgsReceived:           c.spuriousMsgs.Load(),
		MessageTimeouts:                c.messageTimeouts.Load(),
		FailureModeAllowed:             c.failureModeAllowed.Load(),
		RejectedHeaderMutations:        c.rejectedHeaderMutations.Load(),
		ClearRouteCacheIgnored:         c.clearRouteCacheIgnored.Load(),
		ClearRouteCacheDisabled:        c.clearRouteCacheOff.Load(),
		OverrideMessageTimeoutReceived: c.overrideTimeoutReceived.Load(),
		OverrideMessageTimeoutIgnored:  c.overrideTimeoutIgnored.Load(),
		NoCluster:                      c.noCluster.Load(),
		NoRoute:                        c.noRoute.Load(),
		UpstreamResets:                 c.upstreamReset.Load(),
		UpstreamTimeouts:               c.upstreamTimeout.Load(),
		IdleTimeouts:                   c.idleTimeout.Load(),
		RateLimitOK:                    c.rateLimitOK.Load(),
		RateLimitError:                 c.rateLimitError.Load(),
		RateLimitOverLimit:             c.rateLimitOverLimit.Load(),
		RateLimitFailureModeAllowed:    c.rateLimitFailureModeAllowed.Load(),
		UpstreamRqRetry:                c.upstreamRqRetry.Load(),
		UpstreamRqRetryLimitExceeded:   c.upstreamRqRetryLimitExceed.Load(),
		UpstreamRqPerTryTimeout:        c.upstreamPerTryTimeout.Load(),
		OutlierEjections:               c.outlierEjections.Load(),
	}
}
