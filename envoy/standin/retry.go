package standin

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previouspriov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
)

// Envoy's retry defaults (api/envoy/config/route/v3/route_components.proto RetryPolicy;
// source/common/router/retry_state_impl.cc): one retry, a 25 ms base back-off and a cap of ten
// times the base.
const (
	defaultNumRetries    = 1
	defaultBackOffBase   = 25 * time.Millisecond
	previousPrioritiesID = "envoy.retry_priorities.previous_priorities"
)

// retryOn flags (source/common/router/retry_state_impl.cc parseRetryOn). Only these are
// implemented; others are refused at start-up.
const (
	retryOn5xx = 1 << iota
	retryOnGatewayError
	retryOnReset
	retryOnConnectFailure
	retryOnRefusedStream
	retryOnRetriableStatusCodes
)

var retryOnTokens = map[string]int{
	"5xx":                    retryOn5xx,
	"gateway-error":          retryOnGatewayError,
	"reset":                  retryOnReset,
	"connect-failure":        retryOnConnectFailure,
	"refused-stream":         retryOnRefusedStream,
	"retriable-status-codes": retryOnRetriableStatusCodes,
}

// retryPolicy is a route's retry_policy.
type retryPolicy struct {
	on                 int
	numRetries         uint32
	perTryTimeout      time.Duration // 0: none
	perTryIdleTimeout  time.Duration // 0: none
	retriableCodes     []int
	backOffBase        time.Duration
	backOffMax         time.Duration
	priorityUpdateFreq int // previous_priorities update_frequency; 0: no retry priority
}

func parseRetryPolicy(rp *routev3.RetryPolicy) (*retryPolicy, error) {
	if rp == nil {
		return nil, nil
	}
	var errs []error
	out := &retryPolicy{numRetries: defaultNumRetries, backOffBase: defaultBackOffBase}
	for tok := range strings.SplitSeq(rp.GetRetryOn(), ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		f, ok := retryOnTokens[tok]
		if !ok {
			errs = append(errs, fmt.Errorf("retry_on %q: not implemented by the stand-in", tok))
			continue
		}
		out.on |= f
	}
	if n := rp.GetNumRetries(); n != nil {
		out.numRetries = n.GetValue()
	}
	out.perTryTimeout = rp.GetPerTryTimeout().AsDuration()
	out.perTryIdleTimeout = rp.GetPerTryIdleTimeout().AsDuration()
	for _, c := range rp.GetRetriableStatusCodes() {
		out.retriableCodes = append(out.retriableCodes, int(c))
	}
	if b := rp.GetRetryBackOff(); b != nil {
		out.backOffBase = b.GetBaseInterval().AsDuration()
		if b.GetMaxInterval() != nil {
			out.backOffMax = b.GetMaxInterval().AsDuration()
		}
	}
	if out.backOffMax == 0 {
		out.backOffMax = 10 * out.backOffBase
	}
	if out.backOffMax < out.backOffBase {
		errs = append(errs, fmt.Errorf("retry_back_off.max_interval %s: below base_interval %s", out.backOffMax, out.backOffBase))
	}
	if p := rp.GetRetryPriority(); p != nil {
		cfg := &previouspriov3.PreviousPrioritiesConfig{}
		if p.GetName() != previousPrioritiesID || p.GetTypedConfig().UnmarshalTo(cfg) != nil {
			errs = append(errs, fmt.Errorf("retry_priority %q: only %s is implemented by the stand-in", p.GetName(), previousPrioritiesID))
		} else {
			out.priorityUpdateFreq = int(cfg.GetUpdateFrequency())
		}
	}
	return out, errors.Join(errs...)
}

// failure is why an attempt failed before its response headers.
type failure int

const (
	failReset failure = iota
	failConnect
	failRefusedStream
	failPerTryTimeout
	failPerTryIdleTimeout
)

// wouldRetryStatus is RetryStateImpl::wouldRetryFromHeaders for the implemented flags: a
// response carrying x-envoy-overloaded or x-envoy-ratelimited is never retried.
func (rp *retryPolicy) wouldRetryStatus(status int, h *headerMap) bool {
	if h.has("x-envoy-overloaded") || h.has("x-envoy-ratelimited") {
		return false
	}
	switch {
	case rp.on&retryOn5xx != 0 && status >= 500 && status < 600:
		return true
	case rp.on&retryOnGatewayError != 0 && status >= 502 && status <= 504:
		return true
	case rp.on&retryOnRetriableStatusCodes != 0 && slices.Contains(rp.retriableCodes, status):
		return true
	}
	return false
}

// wouldRetryFailure is RetryStateImpl::wouldRetryFromReset: 5xx, gateway-error and reset cover
// every reset, per-try timeouts included (router.cc onPerTryTimeout retries as a reset with
// TimeoutRetry::Yes); connect-failure and refused-stream cover their own reason only.
func (rp *retryPolicy) wouldRetryFailure(f failure) bool {
	if rp.on&(retryOn5xx|retryOnGatewayError|retryOnReset) != 0 {
		return true
	}
	switch f {
	case failConnect:
		return rp.on&retryOnConnectFailure != 0
	case failRefusedStream:
		return rp.on&retryOnRefusedStream != 0
	}
	return false
}

// retryState is one request's RetryStateImpl: retries left, the jittered back-off and the
// previous_priorities state. Owned by the stream goroutine.
//
// Envoy: source/common/router/retry_state_impl.cc; source/common/common/backoff_strategy.cc;
// source/extensions/retry/priority/previous_priorities/previous_priorities.cc.
type retryState struct {
	policy    *retryPolicy
	remaining uint32
	rng       *rand.Rand

	nextBackOff time.Duration // JitteredExponentialBackOffStrategy next_interval_

	attempted []int  // priority of every host attempted, the first attempt included
	excluded  []bool // previous_priorities excluded_priorities_
	adjusted  []int  // previous_priorities per_priority_load_
}

func newRetryState(p *retryPolicy, rng *rand.Rand) *retryState {
	if p == nil {
		p = &retryPolicy{} // no retry policy: never retries, priority load untouched
	}
	return &retryState{policy: p, remaining: p.numRetries, rng: rng, nextBackOff: p.backOffBase}
}

// onHostAttempted is RetryState::onHostAttempted, which the router calls for every host an
// attempt is sent to, the first one included (router.cc Filter::onUpstreamHostSelected).
func (rs *retryState) onHostAttempted(priority int) {
	rs.attempted = append(rs.attempted, priority)
}

// take consumes a retry if one is left (RetryStateImpl::shouldRetry: NoRetryLimitExceeded
// once retries_remaining_ is 0).
func (rs *retryState) take() bool {
	if rs.remaining == 0 {
		return false
	}
	rs.remaining--
	return true
}

// backOff is JitteredExponentialBackOffStrategy::nextBackOffMs: uniform in [0, next), next
// starting at the base and doubling up to the cap.
func (rs *retryState) backOff() time.Duration {
	cur := rs.nextBackOff
	if cur <= 0 {
		return 0
	}
	if cur < rs.policy.backOffMax/2 {
		rs.nextBackOff = cur * 2
	} else {
		rs.nextBackOff = rs.policy.backOffMax
	}
	ms := cur.Milliseconds()
	if ms <= 0 {
		return 0
	}
	return time.Duration(rs.rng.Int64N(ms)) * time.Millisecond
}

// priorityLoad is PreviousPrioritiesRetryPriority::determinePriorityLoad: until
// update_frequency hosts were attempted the original load applies; each time the count is a
// multiple of it, the priorities of every attempted host are excluded and the load is
// redistributed over the others by health. If none is left, attempts start over (attempted
// hosts cleared) and the original load applies.
func (rs *retryState) priorityLoad(health, original []int) []int {
	freq := rs.policy.priorityUpdateFreq
	n := len(rs.attempted)
	if freq <= 0 || n < freq {
		return original
	}
	if n%freq == 0 {
		if len(rs.excluded) < len(health) {
			rs.excluded = append(rs.excluded, make([]bool, len(health)-len(rs.excluded))...)
		}
		for _, p := range rs.attempted {
			rs.excluded[p] = true
		}
		adjusted := make([]int, len(health))
		total := 0
		for i, h := range health {
			if !rs.excluded[i] {
				adjusted[i] = h
				total += h
			}
		}
		if total == 0 {
			// The source's comment says the excluded priorities are reset here; either way
			// the original load applies next.
			clear(rs.excluded)
			rs.attempted = rs.attempted[:0]
			return original
		}
		rs.adjusted = distributeLoad(adjusted, min(total, 100))
	}
	if rs.adjusted == nil {
		return original
	}
	return rs.adjusted
}

// distributeLoad assigns 100% of the load to priorities in order, each taking its share of
// the total availability; rounding leftovers go to the first available priority.
//
// Envoy: source/common/upstream/load_balancer_impl.cc distributeLoad; previous_priorities.cc.
func distributeLoad(health []int, total int) []int {
	load := make([]int, len(health))
	if total == 0 {
		load[0] = 100 // nothing healthy: all load on priority 0 (panic)
		return load
	}
	remaining := 100
	for remaining > 0 {
		assigned := false
		for i, h := range health {
			d := min(remaining, h*100/total)
			if d > 0 {
				assigned = true
			}
			load[i] += d
			remaining -= d
		}
		if !assigned {
			for i, h := range health {
				if h > 0 {
					load[i] += remaining
					break
				}
			}
			remaining = 0
		}
	}
	return load
}
