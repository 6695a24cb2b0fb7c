package standin

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// StreamInfo is what the stand-in recorded about one finished request: the parts of Envoy's
// StreamInfo that filters after ext_proc, and access logs, read.
type StreamInfo struct {
	// ResponseCode is the status sent to the client (0 if none was sent).
	ResponseCode int
	// ResponseCodeDetails says who produced the response, in Envoy's vocabulary:
	// "via_upstream", "cluster_not_found", "ext_proc_error_per-message_timeout_exceeded", …
	ResponseCodeDetails string
	// DynamicMetadata is the request's dynamic metadata by namespace (what ext_proc accepted
	// from the processor's replies in its receiving namespaces).
	DynamicMetadata map[string]*structpb.Struct
	// Cluster and UpstreamHost (host:port) are where the router sent the request, if it did.
	Cluster      string
	UpstreamHost string
	// UpstreamHostMetadata is the chosen endpoint's metadata (filter_metadata.tollgate.backend).
	UpstreamHostMetadata *corev3.Metadata
	// Reset reports that the downstream stream was reset instead of completed.
	Reset bool
	// Attempts are the router's upstream attempts, in order (retries and fallback).
	Attempts []Attempt
}

// Attempt is one upstream attempt of the router.
type Attempt struct {
	UpstreamHost string // host:port
	Priority     int
	// Backend is the endpoint's filter_metadata.tollgate.backend.
	Backend string
	// Status is the upstream response status, 0 if the attempt failed before headers.
	Status int
	// Failure says why an attempt without a status failed ("reset", "connect_failure",
	// "per_try_timeout", ...), or why its response was not used.
	Failure string
}

// respState is how far the response has gone (FilterManager's responseHeaders() and
// non_100_response_headers_encoded_), which decides how a local reply is sent.
type respState int

const (
	respNone respState = iota // nothing yet: a local reply runs through the encoder filters
	respHeld                  // response headers exist but filters hold them: direct reply
	respSent                  // headers went to the client: only a reset is possible
)

var (
	errRouteTimeout = errors.New("route timeout")
	errIdleTimeout  = errors.New("stream idle timeout")
	errLocalReply   = errors.New("local reply replaced the upstream response")
	errBodyClosed   = errors.New("body ended without end of stream")
)

// stream is one downstream request, from headers to the end of the response. All its state
// is owned by the handler goroutine that runs serve; the goroutines it starts (upstream round
// trip, upstream body reader, ext_proc receiver) exit when the stream's contexts end, and
// finish waits for them.
type stream struct {
	p   *Proxy
	log *slog.Logger
	ctx context.Context // ends when the client goes away or the stream finishes
	w   http.ResponseWriter
	rc  *http.ResponseController
	r   *http.Request
	rng *rand.Rand // body splitting; used only by the upstream body reader

	reqHeaders   *headerMap
	route        *routeMatch
	routeCleared bool
	routeLocked  bool         // the router has used the route: clearing the cache no longer matters
	ep           *processor   // nil without an ext_proc filter
	rl           *rateLimiter // nil without a ratelimit filter
	md           dynamicMetadata
	head         bool

	respState respState
	ended     bool // the response is complete, replaced or abandoned
	aborted   bool // the downstream stream must be reset

	idle        *time.Timer
	idleOn      bool
	routeTimer  *routeTimer
	upCtx       context.Context
	upCancel    context.CancelCauseFunc
	upHeaders   bool // upstream response headers arrived (downstream_response_started_)
	bodyReaders sync.WaitGroup
	// attemptTimers are the current attempt's per-try timers (nil without a retry policy);
	// lbRng drives priority choice and back-off jitter, on the stream goroutine only.
	attemptTimers *attemptTimers
	lbRng         *rand.Rand

	info StreamInfo
}

func (s *stream) serve() {
	defer s.finish()
	s.reqHeaders = requestHeaderMap(s.r)
	s.p.cfg.listener.connManager.mutateRequestHeaders(s.reqHeaders, s.r)
	s.touch()
	// Envoy: ext_proc's decodeHeaders calls mergePerRouteConfig, which resolves the route, so
	// it is cached with the headers as they arrived until a reply clears the route cache
	// (source/extensions/filters/http/ext_proc/ext_proc.cc Filter::decodeHeaders).
	s.route = s.p.cfg.listener.routes.match(s.reqHeaders)
	hasBody := s.r.ContentLength != 0
	body, ok := s.decode(hasBody)
	if !ok || s.ended {
		return
	}
	s.forward(body)
}

// finish releases everything the stream holds and reports it.
func (s *stream) finish() {
	s.ep.close() // Envoy: Filter::onDestroy closes the gRPC stream
	if s.upCancel != nil {
		s.upCancel(context.Canceled)
	}
	if s.routeTimer != nil {
		s.routeTimer.stop()
	}
	s.attemptTimers.stop()
	s.bodyReaders.Wait()
	if s.idle != nil {
		s.idle.Stop()
	}
	// Envoy destroys the filters once the response and every filter's metadata are done;
	// the ratelimit filter's onDestroy then sends its apply_on_stream_done descriptors.
	s.rateLimitStreamDone()
	s.info.DynamicMetadata = s.md.snapshot()
	s.info.Reset = s.aborted
	s.log.Debug("stream done", "status", s.info.ResponseCode, "details", s.info.ResponseCodeDetails,
		"cluster", s.info.Cluster, "upstream_host", s.info.UpstreamHost, "reset", s.aborted)
	if f := s.p.opts.OnStreamComplete; f != nil {
		f(s.info)
	}
}

// touch restarts the stream idle timer: Envoy resets it on every headers and data frame in
// either direction (source/common/http/conn_manager_impl.cc ActiveStream::resetIdleTimer).
func (s *stream) touch() {
	d := s.p.cfg.listener.idleTimeout
	if d <= 0 {
		return
	}
	if s.idle == nil {
		s.idle = time.NewTimer(d)
	} else {
		s.idle.Reset(d)
	}
	s.idleOn = true
}

func (s *stream) idleC() <-chan time.Time {
	if !s.idleOn {
		return nil
	}
	return s.idle.C
}

func (s *stream) routeC() <-chan struct{} {
	if s.routeTimer == nil || !s.upHeaders {
		return nil
	}
	return s.routeTimer.firedC()
}

// step waits for one event and handles it, except a body chunk from chunks, which it returns
// with got set.
func (s *stream) step(chunks <-chan chunk) (c chunk, got bool) {
	p := s.ep
	var decC, encC <-chan time.Time
	if p != nil && !p.complete {
		decC, encC = p.dec.timerC(), p.enc.timerC()
	}
	select {
	case r, ok := <-p.repliesC():
		if !ok {
			s.onProcessorClosed()
			return chunk{}, false
		}
		s.onProcessorMessage(r)
	case <-decC:
		p.dec.timerOn = false
		s.onMessageTimeout()
	case <-encC:
		p.enc.timerOn = false
		s.onMessageTimeout()
	case <-s.ctx.Done():
		s.onClientGone()
	case <-s.idleC():
		s.idleOn = false
		s.onIdleTimeout()
	case <-s.routeC():
		s.onRouteTimeoutAfterHeaders()
	case c, ok := <-chunks:
		if !ok {
			return chunk{err: errBodyClosed}, true
		}
		s.touch()
		return c, true
	}
	return chunk{}, false
}

// await handles events until d's outstanding call is answered, the processor is no longer
// consulted, or the stream ended.
func (s *stream) await(d *direction) {
	for !s.ended && !s.ep.complete && d.state != stateIdle {
		s.step(nil)
	}
}

func (s *stream) onClientGone() {
	// Envoy: the downstream reset destroys the filter chain: the router resets the upstream
	// request and ext_proc closes its stream (both done by finish).
	s.ended = true
	if s.info.ResponseCodeDetails == "" {
		s.info.ResponseCodeDetails = "downstream_remote_disconnect"
	}
}

// onIdleTimeout is ActiveStream::onIdleTimeout: a 408 local reply, sent however the
// response state allows.
func (s *stream) onIdleTimeout() {
	s.p.stats.idleTimeout.Add(1)
	s.cancelUpstream(errIdleTimeout)
	s.sendLocalReply(http.StatusRequestTimeout, []byte("stream timeout"), nil, "stream_idle_timeout")
}

// onRouteTimeoutAfterHeaders: once upstream headers went into the filter chain, the router
// can only reset (source/common/router/router.cc Filter::onUpstreamAbort,
// downstream_response_started_).
func (s *stream) onRouteTimeoutAfterHeaders() {
	s.p.stats.upstreamTimeout.Add(1)
	s.info.ResponseCodeDetails = "upstream_response_timeout"
	s.reset()
}

func (s *stream) cancelUpstream(cause error) {
	if s.upCancel != nil {
		s.upCancel(cause)
	}
}

// reset abandons the response; the handler then resets the downstream stream.
func (s *stream) reset() {
	s.cancelUpstream(context.Canceled)
	s.ended = true
	s.aborted = true
}

// upstreamComplete stops the route and per-try timers: the upstream response is complete
// (router.cc onUpstreamComplete; the per-try timers die with the UpstreamRequest). It may be
// called from the upstream body reader.
func (s *stream) upstreamComplete() {
	if s.routeTimer != nil {
		s.routeTimer.stop()
	}
	s.attemptTimers.stop()
}

// routeTimer is the router's global timeout: armed when the downstream request is complete,
// stopped when the upstream response is (router.cc Filter::onRequestComplete,
// onUpstreamComplete). arm and stop may be called from the upstream goroutines.
type routeTimer struct {
	mu      sync.Mutex
	timeout time.Duration
	t       *time.Timer
	stopped bool
	fired   chan struct{}
	onFire  func()
}

func newRouteTimer(timeout time.Duration, onFire func()) *routeTimer {
	return &routeTimer{timeout: timeout, fired: make(chan struct{}), onFire: onFire}
}

func (rt *routeTimer) arm() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.t != nil || rt.stopped || rt.timeout <= 0 {
		return
	}
	rt.t = time.AfterFunc(rt.timeout, func() {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		if rt.stopped {
			return
		}
		rt.stopped = true
		rt.onFire()
		close(rt.fired)
	})
}

func (rt *routeTimer) stop() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.stopped = true
	if rt.t != nil {
		rt.t.Stop()
	}
}

func (rt *routeTimer) firedC() <-chan struct{} { return rt.fired }
