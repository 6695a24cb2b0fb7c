package standin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"time"

	"github.com/tollgate/tollgate/envoy/contract"
)

var (
	errPerTryTimeout     = errors.New("per-try timeout")
	errPerTryIdleTimeout = errors.New("per-try idle timeout")
)

// outcome is how one attempt ended before its response went to the encoder filters.
type outcome struct {
	done    bool           // the stream was answered or abandoned: nothing more to do
	resp    *http.Response // response headers arrived
	headers *headerMap     // resp's headers as the upstream filters left them
	failure failure        // otherwise: why it failed
	err     error
	start   time.Time
}

// forwardAttempts is the router for a route with a retry policy or a cluster with upstream
// filters or outlier detection: attempts go to the host the priority load picks, each
// through the cluster's upstream filters with a fresh copy of the router's buffered body,
// until one's response is not retriable or retries run out. Only that response goes
// through the downstream encoder filters; a retried response is discarded at its headers,
// before anything reached the client, so a response whose body has started is never retried.
//
// Envoy: source/common/router/router.cc Filter::decodeHeaders/decodeData (buffering for
// retries), onUpstreamHeaders (retry decision at response headers, before
// downstream_response_started_), onUpstreamReset, onPerTryTimeout, onPerTryIdleTimeout,
// doRetry (a new UpstreamRequest; headers from the same downstream_headers_, the body a copy
// of callbacks_->decodingBuffer()), onResponseTimeout (the global timeout is never retried).
func (s *stream) forwardAttempts(rm *routeMatch, c *cluster, body *requestBody) {
	rt := rm.route
	rs := newRetryState(rt.retry, s.lbRng)
	data, err := s.routerBuffer(body, rs)
	if err != nil {
		s.log.Debug("reading request body failed", "error", err)
		s.onClientGone()
		return
	}
	reqCtx, reqCancel := context.WithCancelCause(s.ctx)
	defer reqCancel(context.Canceled)
	s.routeTimer = newRouteTimer(rt.timeout, func() { reqCancel(errRouteTimeout) })
	s.routeTimer.arm() // the downstream request is complete
	for {
		ep := c.choose(rs, s.lbRng, time.Now())
		rs.onHostAttempted(ep.priority)
		out := s.attempt(reqCtx, rt, c, ep, data)
		if out.done {
			return
		}
		retriable := false
		if out.resp != nil {
			retriable = rs.policy.wouldRetryStatus(headerStatus(out.headers, out.resp.StatusCode), out.headers)
		} else {
			retriable = rs.policy.wouldRetryFailure(out.failure)
		}
		if !retriable || !rs.take() {
			if retriable {
				s.p.stats.upstreamRqRetryLimitExceed.Add(1)
			}
			s.finishAttempt(out)
			return
		}
		s.p.stats.upstreamRqRetry.Add(1)
		if out.resp != nil {
			s.info.Attempts[len(s.info.Attempts)-1].Failure = "retried"
			out.resp.Body.Close() // the upstream request is reset; nothing went downstream
		}
		if !s.waitBackOff(rs.backOff()) {
			return
		}
	}
}

// routerBuffer is the router's copy of the request body, kept for retries. A body the
// router had to read itself beyond the buffer limit can no longer be retried (Envoy
// abandons retries, retry_or_shadow_abandoned); it is still sent whole.
func (s *stream) routerBuffer(body *requestBody, rs *retryState) ([]byte, error) {
	if body.stream == nil {
		return body.data, nil
	}
	data, err := io.ReadAll(body.stream)
	if int64(len(data)) > s.p.cfg.listener.bufferLimit {
		rs.remaining = 0
	}
	s.touch()
	return data, err
}

// attempt runs one upstream attempt up to its response headers.
func (s *stream) attempt(reqCtx context.Context, rt *route, c *cluster, ep *endpoint, data []byte) outcome {
	s.info.UpstreamHost = ep.addr
	s.info.UpstreamHostMetadata = ep.cfg.metadata
	s.info.Attempts = append(s.info.Attempts, Attempt{
		UpstreamHost: ep.addr,
		Priority:     ep.priority,
		Backend:      ep.cfg.metadata.GetFilterMetadata()[contract.MetadataNamespace].GetFields()[contract.BackendMetadataKey].GetStringValue(),
	})
	last := func() *Attempt { return &s.info.Attempts[len(s.info.Attempts)-1] }

	actx, acancel := context.WithCancelCause(reqCtx)
	s.upCtx, s.upCancel = actx, acancel
	s.attemptTimers.stop()
	s.attemptTimers = newAttemptTimers(rt.retry, acancel)

	// A fresh copy of the router's buffer: whatever the previous attempt's filters replaced is
	// gone; the header map is the one they left.
	body, open, ok := s.runUpstreamFilters(actx, c.filters, ep, bytes.Clone(data))
	if !ok {
		return outcome{done: true}
	}
	defer func() {
		for _, ps := range open {
			s.closeUpstreamProc(ps) // the attempt's filters are destroyed with it
		}
	}()
	req, err := s.upstreamRequest(actx, rt, ep, &requestBody{data: body})
	if err != nil {
		s.log.Warn("building upstream request failed", "error", err)
		s.sendLocalReply(http.StatusBadRequest, nil, nil, "invalid_upstream_request")
		return outcome{done: true}
	}
	// The per-try timers start once the connection is ready and the request complete
	// (UpstreamRequest::onPoolReady → setupPerTryTimeout).
	timers := s.attemptTimers
	req = req.WithContext(httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { timers.start() },
	}))

	start := time.Now()
	done := make(chan roundTripResult, 1)
	go func() {
		resp, err := ep.transport.RoundTrip(req)
		done <- roundTripResult{resp, err}
	}()
	var res roundTripResult
	select {
	case res = <-done:
	case <-s.ctx.Done():
		acancel(context.Canceled)
		closeBody(<-done)
		s.onClientGone()
		return outcome{done: true}
	case <-s.idleC():
		s.idleOn = false
		acancel(errIdleTimeout)
		closeBody(<-done)
		s.p.stats.idleTimeout.Add(1)
		s.sendLocalReply(http.StatusRequestTimeout, []byte("stream timeout"), nil, "stream_idle_timeout")
		return outcome{done: true}
	}
	now := time.Now()
	switch cause := context.Cause(actx); {
	case errors.Is(cause, errRouteTimeout):
		closeBody(res)
		last().Failure = "route_timeout"
		s.p.stats.upstreamTimeout.Add(1)
		s.sendLocalReply(http.StatusGatewayTimeout, []byte("upstream request timeout"), nil, "upstream_response_timeout")
		return outcome{done: true}
	case errors.Is(cause, errPerTryTimeout), errors.Is(cause, errPerTryIdleTimeout):
		closeBody(res)
		s.p.stats.upstreamPerTryTimeout.Add(1)
		s.outlierResult(c, ep, true, now)
		f := failPerTryTimeout
		if errors.Is(cause, errPerTryIdleTimeout) {
			f = failPerTryIdleTimeout
		}
		last().Failure = perTryDetails(cause)
		return outcome{failure: f, err: cause, start: start}
	case res.err != nil:
		s.outlierResult(c, ep, true, now)
		var ce *connectError
		if errors.As(res.err, &ce) {
			last().Failure = "connect_failure"
			return outcome{failure: failConnect, err: res.err, start: start}
		}
		last().Failure = "reset"
		return outcome{failure: failReset, err: res.err, start: start}
	}
	timers.progress()
	last().Status = res.resp.StatusCode
	s.outlierResult(c, ep, res.resp.StatusCode >= 500, now)
	h := responseHeaderMap(res.resp.StatusCode, res.resp.Header)
	if len(open) > 0 {
		eos := res.resp.Body == http.NoBody || res.resp.ContentLength == 0 || s.head
		if !s.upstreamResponseFilters(open, h, eos) {
			res.resp.Body.Close()
			return outcome{done: true}
		}
	}
	return outcome{resp: res.resp, headers: h, start: start}
}

// headerStatus is the :status of h, or def when it is missing or malformed.
func headerStatus(h *headerMap, def int) int {
	if v, ok := h.get(":status"); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// outlierResult reports an attempt's result to the cluster's outlier detector: a 5xx, or a
// local-origin failure counted as one.
func (s *stream) outlierResult(c *cluster, ep *endpoint, failed bool, now time.Time) {
	if c.outlier.putResult(ep, failed, now) {
		s.p.stats.outlierEjections.Add(1)
		s.log.Info("outlier detection ejected a host", "cluster", c.name, "host", ep.addr)
	}
}

// finishAttempt answers with the last attempt: its response, or the local reply for its
// failure.
func (s *stream) finishAttempt(out outcome) {
	switch {
	case out.resp != nil:
		s.deliverResponseHeaders(out.resp, out.headers, out.start)
	case out.failure == failPerTryTimeout || out.failure == failPerTryIdleTimeout:
		s.sendLocalReply(http.StatusGatewayTimeout, []byte("upstream request timeout"), nil, perTryDetails(out.err))
	default:
		s.upstreamResetBeforeHeaders(out.err)
	}
}

func perTryDetails(err error) string {
	if errors.Is(err, errPerTryIdleTimeout) {
		return "upstream_per_try_idle_timeout"
	}
	return "upstream_per_try_timeout"
}

// waitBackOff waits d before the next attempt (the retry timer). The global timeout, the
// stream idle timeout and the client leaving still apply. It reports false when the stream
// ended.
func (s *stream) waitBackOff(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		s.onClientGone()
	case <-s.idleC():
		s.idleOn = false
		s.onIdleTimeout()
	case <-s.routeTimer.firedC():
		s.p.stats.upstreamTimeout.Add(1)
		s.sendLocalReply(http.StatusGatewayTimeout, []byte("upstream request timeout"), nil, "upstream_response_timeout")
	}
	return false
}

// attemptTimers are one attempt's per_try_timeout and per_try_idle_timeout. Both start when
// the connection is ready; the idle one restarts on response headers and data; both end with
// the attempt's response. Firing cancels the attempt with its cause. Safe for concurrent use:
// the transport, the body reader and the stream goroutine all touch them.
type attemptTimers struct {
	mu             sync.Mutex
	perTry, idle   time.Duration
	cancel         context.CancelCauseFunc
	perTryT, idleT *time.Timer
	started        bool
	stopped        bool
}

func newAttemptTimers(rp *retryPolicy, cancel context.CancelCauseFunc) *attemptTimers {
	if rp == nil {
		return nil
	}
	return &attemptTimers{perTry: rp.perTryTimeout, idle: rp.perTryIdleTimeout, cancel: cancel}
}

func (a *attemptTimers) start() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started || a.stopped {
		return
	}
	a.started = true
	if a.perTry > 0 {
		a.perTryT = time.AfterFunc(a.perTry, func() { a.fire(errPerTryTimeout) })
	}
	if a.idle > 0 {
		a.idleT = time.AfterFunc(a.idle, func() { a.fire(errPerTryIdleTimeout) })
	}
}

func (a *attemptTimers) fire(cause error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.stopped {
		a.stopped = true
		a.cancel(cause)
	}
}

// progress restarts the idle timer (UpstreamRequest::resetPerTryIdleTimer).
func (a *attemptTimers) progress() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.idleT != nil && !a.stopped {
		a.idleT.Reset(a.idle)
	}
}

func (a *attemptTimers) stop() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	if a.perTryT != nil {
		a.perTryT.Stop()
	}
	if a.idleT != nil {
		a.idleT.Stop()
	}
}
