package standin

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// rateLimiter is one request's HTTP ratelimit filter instance. It is owned by the stream
// goroutine.
//
// Envoy: source/extensions/filters/http/ratelimit/ratelimit.cc Filter.
type rateLimiter struct {
	cfg    *rateLimitConfig
	client rlsv3.RateLimitServiceClient

	// decoded is set once decodeHeaders ran (Envoy's request_headers_): only then does
	// onDestroy evaluate the apply_on_stream_done entries.
	decoded bool
	// routed records that decodeHeaders found a route and its cluster (route_ and
	// cluster_, saved for onDestroy); policy is the route's RateLimitPerRoute.
	routed bool
	policy *rateLimitPolicy
	// cancelled: the stream ended while the RLS call was in flight (state_ Calling), so
	// onDestroy cancels it and sends nothing on stream done.
	cancelled bool
	// respHeaders is response_headers_to_add_: the RLS's response headers, the
	// x-envoy-ratelimited and x-ratelimit-* headers, added to the response by encodeHeaders
	// (or by the 429 local reply) and then dropped.
	respHeaders *headerMap
}

type limitStatus int

const (
	limitOK limitStatus = iota
	limitError
	limitOverLimit
)

// rateLimitDecode is Filter::decodeHeaders, run when ext_proc releases the request headers
// (after its request_body reply with BUFFERED bodies), so the descriptors see extproc's
// header mutations and dynamic metadata. It reports false when the stream ended (429 or
// 500 local reply, or the client left).
//
// Envoy: ratelimit.cc Filter::decodeHeaders, initiateCall, populateRateLimitDescriptors.
func (s *stream) rateLimitDecode() bool {
	rl := s.rl
	if s.ended {
		return false
	}
	if rl == nil || rl.decoded {
		return true
	}
	rl.decoded = true
	// callbacks_->route() re-resolves a cleared route cache; without a route or a known
	// cluster (callbacks_->clusterInfo()) the filter does nothing, and the router answers.
	s.resolveRoute()
	if s.route == nil || s.p.clusters[s.route.cluster] == nil {
		return true
	}
	rl.routed = true
	rl.policy = s.route.route.rateLimit
	descs := rl.descriptors(s.reqHeaders, &s.md, false)
	if len(descs) == 0 {
		return true
	}
	req := &rlsv3.RateLimitRequest{Domain: rl.domain(), Descriptors: descs}
	// The call's deadline is the filter's timeout (ratelimit_impl.cc GrpcClientImpl::limit,
	// RequestOptions().setTimeout(timeout_)); a client that leaves cancels it (onDestroy).
	ctx, cancel := context.WithTimeout(withInitialMetadata(s.ctx, rl.cfg.initialMetadata), rl.cfg.timeout)
	resp, err := rl.client.ShouldRateLimit(ctx, req)
	cancel()
	if s.ctx.Err() != nil {
		rl.cancelled = true
		s.onClientGone()
		return false
	}
	return s.rateLimitComplete(resp, err)
}

// rateLimitComplete is Filter::complete with GrpcClientImpl::onSuccess/onFailure's mapping:
// a gRPC error or timeout is Error; OVER_LIMIT is OverLimit; anything else OK (Envoy only
// asserts against UNKNOWN in debug builds).
//
// Envoy: filters/common/ratelimit/ratelimit_impl.cc; http/ratelimit/ratelimit.cc.
func (s *stream) rateLimitComplete(resp *rlsv3.RateLimitResponse, err error) bool {
	rl := s.rl
	st := limitOK
	switch {
	case err != nil:
		st = limitError
		s.log.Debug("rate limit service call failed", "code", status.Code(err), "error", err)
	case resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT:
		st = limitOverLimit
	case resp.GetOverallCode() == rlsv3.RateLimitResponse_UNKNOWN:
		s.log.Warn("rate limit service answered overall_code UNKNOWN; Envoy treats it as OK")
	}
	// Header values come from HeaderValue.value; raw_value is not read
	// (ratelimit_impl.cc onSuccess addCopy(h.key(), h.value())).
	rl.respHeaders = headersFrom(resp.GetResponseHeadersToAdd())
	reqAdd := headersFrom(resp.GetRequestHeadersToAdd())
	if md := resp.GetDynamicMetadata(); len(md.GetFields()) > 0 {
		s.md.merge(rateLimitMetadataNamespace, md)
	}
	switch st {
	case limitOK:
		s.p.stats.rateLimitOK.Add(1)
	case limitError:
		s.p.stats.rateLimitError.Add(1)
	case limitOverLimit:
		s.p.stats.rateLimitOverLimit.Add(1)
		if rl.cfg.xEnvoyRateLimited {
			if rl.respHeaders == nil {
				rl.respHeaders = &headerMap{}
			}
			rl.respHeaders.set("x-envoy-ratelimited", "true")
		}
	}
	if rl.cfg.xRateLimitHeaders {
		if rl.respHeaders == nil {
			rl.respHeaders = &headerMap{}
		}
		rl.respHeaders.entries = append(rl.respHeaders.entries, xRateLimitHeaders(resp.GetStatuses()).entries...)
	}

	switch st {
	case limitOverLimit:
		// The 429 is a local reply through the whole encoder chain (filter_manager.cc
		// sendLocalReplyViaFilterChain → encodeHeaders(nullptr, …) → commonEncodePrefix
		// starts at encoder_filters_.begin()): this filter's encodeHeaders, then ext_proc's,
		// whose processor gets response_headers with :status 429 and the body.
		s.sendLocalReply(rl.cfg.rateLimitedStatus, resp.GetRawBody(), func(h *headerMap) {
			rl.populateResponseHeaders(h, true)
		}, "request_rate_limited")
		return false
	case limitError:
		if !rl.cfg.failureModeDeny {
			s.p.stats.rateLimitFailureModeAllowed.Add(1)
			return true // request_headers_to_add is empty on error
		}
		s.sendLocalReply(rl.cfg.statusOnError, nil, nil, "rate_limiter_error")
		return false
	}
	if reqAdd != nil {
		for _, e := range reqAdd.entries {
			s.reqHeaders.add(e.key, e.value) // appendRequestHeaders: HeaderMapImpl::copyFrom adds
		}
	}
	return true
}

// rateLimitEncode is Filter::encodeHeaders: it runs before ext_proc's encodeHeaders (encoder
// filters run in reverse order), so the processor sees the headers it adds.
func (s *stream) rateLimitEncode(h *headerMap) {
	if s.rl != nil {
		s.rl.populateResponseHeaders(h, false)
	}
}

// populateResponseHeaders is Filter::populateResponseHeaders: for the 429 local reply an
// RLS-supplied content-type replaces the text/plain sendLocalReply would set; the headers
// are added once, then forgotten.
func (rl *rateLimiter) populateResponseHeaders(h *headerMap, fromLocalReply bool) {
	if rl.respHeaders == nil {
		return
	}
	if ct, _ := rl.respHeaders.get("content-type"); fromLocalReply && ct != "" {
		h.remove("content-type")
	}
	for _, e := range rl.respHeaders.entries {
		h.add(e.key, e.value)
	}
	rl.respHeaders = nil
}

// rateLimitStreamDone is the on-stream-done half of Filter::onDestroy: once the response
// and every filter's dynamic metadata are done, the apply_on_stream_done entries are
// evaluated with the route saved by decodeHeaders and the request headers as they are now,
// and sent without waiting; the answer is ignored (OnStreamDoneCallBack::complete).
func (s *stream) rateLimitStreamDone() {
	rl := s.rl
	if rl == nil || !rl.decoded || rl.cancelled || !rl.routed {
		return
	}
	descs := rl.descriptors(s.reqHeaders, &s.md, true)
	if len(descs) == 0 {
		return
	}
	s.p.sendStreamDone(&rlsv3.RateLimitRequest{Domain: rl.domain(), Descriptors: descs}, rl.cfg)
}

// sendStreamDone makes a fire-and-forget RLS call. The proxy owns the goroutine and waits
// for it at shutdown; the filter's timeout bounds it, and it outlives the request, as
// Envoy keeps the client alive past the filter (ratelimit.cc onDestroy).
func (p *Proxy) sendStreamDone(req *rlsv3.RateLimitRequest, cfg *rateLimitConfig) {
	p.bgMu.Lock()
	defer p.bgMu.Unlock()
	if p.bgClosed {
		p.log.Warn("stand-in shutting down: stream-done rate limit call dropped")
		return
	}
	p.background.Add(1)
	go func() {
		defer p.background.Done()
		ctx, cancel := context.WithTimeout(withInitialMetadata(p.bgCtx, cfg.initialMetadata), cfg.timeout)
		defer cancel()
		if _, err := p.rls.ShouldRateLimit(ctx, req); err != nil {
			p.log.Debug("stream-done rate limit call failed (ignored, as Envoy does)", "error", err)
		}
	}()
}

func (rl *rateLimiter) domain() string {
	if rl.policy != nil && rl.policy.domain != "" {
		return rl.policy.domain // ratelimit.cc Filter::getDomain
	}
	return rl.cfg.domain
}

// descriptors evaluates the route's entries for one phase. A descriptor is dropped when an
// action yields nothing (unless skip_if_absent, which only omits that entry), or when a
// formatted hits_addend is missing, not a number (or numeric string), negative or over
// 1e9. A hits_addend number, 0 included, is sent as given.
//
// Envoy: filters/common/ratelimit_config/ratelimit_config.cc RateLimitPolicy::
// populateDescriptors and RateLimitConfig::populateDescriptors; ratelimit_impl.cc
// createRequest (hits_addend only when set).
func (rl *rateLimiter) descriptors(h *headerMap, md *dynamicMetadata, onStreamDone bool) []*ratelimitcommonv3.RateLimitDescriptor {
	if rl.policy == nil {
		return nil
	}
	var out []*ratelimitcommonv3.RateLimitDescriptor
	for _, e := range rl.policy.limits {
		if e.onStreamDone != onStreamDone {
			continue
		}
		d := &ratelimitcommonv3.RateLimitDescriptor{}
		ok := true
		for _, a := range e.actions {
			key, value, produced := a.populate(h, md)
			if !produced {
				ok = false
				break
			}
			if key != "" {
				d.Entries = append(d.Entries, &ratelimitcommonv3.RateLimitDescriptor_Entry{Key: key, Value: value})
			}
		}
		if !ok {
			continue
		}
		switch {
		case e.hitsFormat != nil:
			n, valid := hitsAddendFrom(md.value(*e.hitsFormat))
			if !valid {
				continue
			}
			d.HitsAddend = wrapperspb.UInt64(n)
		case e.hitsNumber != nil:
			d.HitsAddend = wrapperspb.UInt64(*e.hitsNumber)
		}
		out = append(out, d)
	}
	return out
}

// hitsAddendFrom reads a formatted hits_addend: a number, or a string holding one.
func hitsAddendFrom(v *structpb.Value) (uint64, bool) {
	var f float64
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		f = k.NumberValue
	case *structpb.Value_StringValue:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(k.StringValue), 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if math.IsNaN(f) || f < 0 || f > maxHitsAddend {
		return 0, false
	}
	return uint64(f), true
}

// populate is DescriptorProducer::populateDescriptor for the implemented actions: the
// entry, or produced=false to drop the descriptor. skip_if_absent yields produced=true
// with no key, so the descriptor goes on without this entry.
//
// Envoy: source/common/router/router_ratelimit.cc RequestHeadersAction, GenericKeyAction,
// MetaDataAction (string values only; default_value when empty).
func (a rateLimitAction) populate(h *headerMap, md *dynamicMetadata) (key, value string, produced bool) {
	switch a.kind {
	case actionRequestHeaders:
		v, ok := h.get(a.header) // the first value
		if !ok {
			return "", "", a.skipIfAbsent
		}
		return a.key, v, true
	case actionGenericKey:
		return a.key, a.value, true
	case actionMetadata:
		if v := md.value(a.md).GetStringValue(); v != "" {
			return a.key, v, true
		}
		if a.defaultValue != "" {
			return a.key, a.defaultValue, true
		}
		return "", "", a.skipIfAbsent
	}
	return "", "", false
}

// value is Config::Metadata::metadataValue: the value at path in namespace, nil if absent.
func (m *dynamicMetadata) value(p metadataPath) *structpb.Value {
	s := m.ns[p.namespace]
	var v *structpb.Value
	for i, key := range p.path {
		if s == nil {
			return nil
		}
		v = s.GetFields()[key]
		if i < len(p.path)-1 {
			s = v.GetStructValue()
		}
	}
	return v
}

// headersFrom builds a header map from RLS header values (keys lower-cased, values from
// value), nil when there are none.
func headersFrom(hv []*corev3.HeaderValue) *headerMap {
	if len(hv) == 0 {
		return nil
	}
	h := &headerMap{}
	for _, v := range hv {
		h.add(strings.ToLower(v.GetKey()), v.GetValue())
	}
	return h
}

// xRateLimitHeaders builds the DRAFT_VERSION_03 headers from the status with the lowest
// limit_remaining among those with a current_limit: x-ratelimit-limit is its
// requests_per_unit followed by ", <limit>;w=<window seconds>[;name="<name>"]" for every
// status with a known unit; x-ratelimit-remaining and x-ratelimit-reset (whole seconds)
// are its own.
//
// Envoy: source/extensions/filters/http/ratelimit/ratelimit_headers.cc
// XRateLimitHeaderUtils::create.
func xRateLimitHeaders(statuses []*rlsv3.RateLimitResponse_DescriptorStatus) *headerMap {
	h := &headerMap{}
	var minStatus *rlsv3.RateLimitResponse_DescriptorStatus
	var policy strings.Builder
	for _, st := range statuses {
		lim := st.GetCurrentLimit()
		if lim == nil {
			continue
		}
		if minStatus == nil || st.GetLimitRemaining() < minStatus.GetLimitRemaining() {
			minStatus = st
		}
		if w := unitSeconds(lim.GetUnit()); w != 0 {
			fmt.Fprintf(&policy, ", %d;w=%d", lim.GetRequestsPerUnit(), w)
			if lim.GetName() != "" {
				policy.WriteString(`;name="` + lim.GetName() + `"`)
			}
		}
	}
	if minStatus == nil {
		return h
	}
	h.add("x-ratelimit-limit", strconv.FormatUint(uint64(minStatus.GetCurrentLimit().GetRequestsPerUnit()), 10)+policy.String())
	h.add("x-ratelimit-remaining", strconv.FormatUint(uint64(minStatus.GetLimitRemaining()), 10))
	h.add("x-ratelimit-reset", strconv.FormatInt(minStatus.GetDurationUntilReset().GetSeconds(), 10))
	return h
}

// unitSeconds is XRateLimitHeaderUtils::convertRateLimitUnit. WEEK is not in the version of
// ratelimit_headers.cc this follows, so, as UNKNOWN, it contributes no quota policy.
func unitSeconds(u rlsv3.RateLimitResponse_RateLimit_Unit) int {
	switch u {
	case rlsv3.RateLimitResponse_RateLimit_SECOND:
		return 1
	case rlsv3.RateLimitResponse_RateLimit_MINUTE:
		return 60
	case rlsv3.RateLimitResponse_RateLimit_HOUR:
		return 60 * 60
	case rlsv3.RateLimitResponse_RateLimit_DAY:
		return 24 * 60 * 60
	case rlsv3.RateLimitResponse_RateLimit_MONTH:
		return 30 * 24 * 60 * 60
	case rlsv3.RateLimitResponse_RateLimit_YEAR:
		return 365 * 24 * 60 * 60
	}
	return 0
}
