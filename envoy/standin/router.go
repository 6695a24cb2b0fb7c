package standin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// resolveRoute re-matches the route if ext_proc cleared the route cache.
func (s *stream) resolveRoute() {
	if s.routeCleared && !s.routeLocked {
		s.route = s.p.cfg.listener.routes.match(s.reqHeaders)
		s.routeCleared = false
	}
}

type roundTripResult struct {
	resp *http.Response
	err  error
}

// forward is the router filter: route, cluster, endpoint, upstream request, and the
// response into the encode path. Failures before upstream headers are local replies
// through the filter chain.
//
// Envoy: source/common/router/router.cc Filter::decodeHeaders, onUpstreamReset,
// onResponseTimeout, onUpstreamHeaders.
func (s *stream) forward(body *requestBody) {
	s.resolveRoute()
	rm := s.route
	if rm == nil {
		s.p.stats.noRoute.Add(1)
		s.sendLocalReply(http.StatusNotFound, nil, nil, "route_not_found")
		return
	}
	// A missing cluster_header gives an empty name, which no cluster has.
	c := s.p.clusters[rm.cluster]
	if c == nil {
		s.p.stats.noCluster.Add(1)
		s.log.Debug("unknown cluster", "cluster", rm.cluster)
		s.sendLocalReply(rm.route.notFoundCode, nil, nil, "cluster_not_found")
		return
	}
	s.info.Cluster = c.name
	if rm.route.retry != nil || c.filters != nil || c.outlier != nil {
		s.forwardAttempts(rm, c, body) // attempt.go
		return
	}
	ep := c.pick()
	s.info.UpstreamHost = ep.addr
	s.info.UpstreamHostMetadata = ep.cfg.metadata

	s.upCtx, s.upCancel = context.WithCancelCause(s.ctx)
	s.routeTimer = newRouteTimer(rm.route.timeout, func() { s.upCancel(errRouteTimeout) })
	req, err := s.upstreamRequest(s.upCtx, rm.route, ep, body)
	if err != nil {
		s.log.Warn("building upstream request failed", "error", err)
		s.sendLocalReply(http.StatusBadRequest, nil, nil, "invalid_upstream_request")
		return
	}
	if body.stream == nil {
		s.routeTimer.arm() // the downstream request is complete
	}

	start := time.Now()
	done := make(chan roundTripResult, 1)
	go func() {
		resp, err := ep.transport.RoundTrip(req)
		done <- roundTripResult{resp, err}
	}()
	var res roundTripResult
	waiting := true
	for waiting {
		select {
		case res = <-done:
			waiting = false
		case <-s.ctx.Done():
			s.upCancel(context.Canceled)
			closeBody(<-done)
			s.onClientGone()
			return
		case <-s.idleC():
			s.idleOn = false
			s.upCancel(errIdleTimeout)
			closeBody(<-done)
			s.p.stats.idleTimeout.Add(1)
			s.sendLocalReply(http.StatusRequestTimeout, []byte("stream timeout"), nil, "stream_idle_timeout")
			return
		case <-s.routeTimer.firedC():
			res = <-done
			waiting = false
		}
	}
	// The timer cancels the request before it signals, so the round trip may report the
	// cancellation first: the cause tells a timeout from a reset.
	if errors.Is(context.Cause(s.upCtx), errRouteTimeout) {
		closeBody(res)
		s.p.stats.upstreamTimeout.Add(1)
		s.sendLocalReply(http.StatusGatewayTimeout, []byte("upstream request timeout"), nil, "upstream_response_timeout")
		return
	}
	if res.err != nil {
		s.upstreamResetBeforeHeaders(res.err)
		return
	}

	s.deliverResponse(res.resp, start)
}

// deliverResponse hands the upstream response to the encoder filters.
func (s *stream) deliverResponse(resp *http.Response, start time.Time) {
	s.deliverResponseHeaders(resp, nil, start)
}

// deliverResponseHeaders is deliverResponse with the response header map as the upstream
// filters left it (nil: built from resp).
func (s *stream) deliverResponseHeaders(resp *http.Response, h *headerMap, start time.Time) {
	s.upHeaders = true
	s.touch()
	if h == nil {
		h = responseHeaderMap(resp.StatusCode, resp.Header)
	}
	if !s.p.cfg.listener.router.suppressEnvoyHeaders {
		// Envoy: router.cc Filter::onUpstreamHeaders adds x-envoy-upstream-service-time
		// before the encoder filters run, so ext_proc sees it.
		h.add("x-envoy-upstream-service-time", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
	}
	s.info.ResponseCodeDetails = "via_upstream"
	var chunks <-chan chunk
	if resp.Body != http.NoBody && resp.ContentLength != 0 && !s.head {
		chunks = s.readBody(resp.Body, resp.ContentLength)
	} else {
		resp.Body.Close()
		s.upstreamComplete()
	}
	s.encode(&response{headers: h, body: chunks})
}

func closeBody(r roundTripResult) {
	if r.resp != nil {
		r.resp.Body.Close()
	}
}

// upstreamResetBeforeHeaders is Filter::onUpstreamReset before any response: 503 with
// Envoy's body, naming the reset reason and the transport failure reason.
func (s *stream) upstreamResetBeforeHeaders(err error) {
	if s.ctx.Err() != nil {
		s.onClientGone()
		return
	}
	s.p.stats.upstreamReset.Add(1)
	reason, transport := "connection termination", ""
	var ce *connectError
	if errors.As(err, &ce) {
		reason, transport = ce.reason, ce.err.Error()
	}
	s.log.Warn("upstream request failed", "cluster", s.info.Cluster, "host", s.info.UpstreamHost, "error", err)
	body := "upstream connect error or disconnect/reset before headers. reset reason: " + reason
	details := "upstream_reset_before_response_started{" + strings.ReplaceAll(reason, " ", "_")
	if transport != "" {
		body += ", transport failure reason: " + transport
		details += "|" + strings.ReplaceAll(transport, " ", "_")
	}
	s.sendLocalReply(http.StatusServiceUnavailable, []byte(body), nil, details+"}")
}

// upstreamRequest builds the request to ep from the request headers as the filters left
// them. auto_host_rewrite puts the endpoint's hostname in Host; hop-by-hop headers stay
// behind; the router adds x-envoy-expected-rq-timeout-ms.
func (s *stream) upstreamRequest(ctx context.Context, rt *route, ep *endpoint, body *requestBody) (*http.Request, error) {
	h := s.reqHeaders
	method, _ := h.get(":method")
	path, _ := h.get(":path")
	authority, _ := h.get(":authority")
	if rt.autoHostRewrite && ep.cfg.hostname != "" {
		authority = ep.cfg.hostname
	}
	scheme := "http"
	if ep.cfg.tls != nil {
		scheme = "https"
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, fmt.Errorf("parse :path %q: %w", path, err)
	}
	u.Scheme, u.Host = scheme, ep.addr

	req := &http.Request{
		Method:     method,
		URL:        u,
		Host:       authority,
		Header:     http.Header{},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
	}
	for _, e := range h.entries {
		if strings.HasPrefix(e.key, ":") || hopByHop[e.key] || e.key == "host" {
			continue
		}
		req.Header.Add(e.key, e.value)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // net/http would add its own
	}
	if t := expectedTimeout(rt); !s.p.cfg.listener.router.suppressEnvoyHeaders && t > 0 {
		req.Header.Set("x-envoy-expected-rq-timeout-ms", strconv.FormatInt(t.Milliseconds(), 10))
	}
	cl, hasCL := h.contentLength()
	switch {
	case body.stream != nil:
		req.Body = io.NopCloser(&eofNotifier{r: body.stream, onEOF: s.routeTimer.arm})
		req.ContentLength = -1
		if hasCL {
			req.ContentLength = cl
		}
	case len(body.data) > 0:
		req.Body = io.NopCloser(bytes.NewReader(body.data))
		req.ContentLength = -1 // no content-length: chunked, as Envoy's HTTP/1 codec does
		if hasCL {
			req.ContentLength = cl
		}
	default:
		req.Body = http.NoBody
		if hasCL && cl > 0 {
			req.ContentLength = cl // declared but empty: the upstream sees the mismatch
		}
	}
	return req.WithContext(ctx), nil
}

// expectedTimeout is what the router tells the upstream it has: the per-try timeout when it
// is shorter than the route's (router.cc FilterUtility::finalTimeout).
func expectedTimeout(rt *route) time.Duration {
	if rt.retry != nil && rt.retry.perTryTimeout > 0 && (rt.timeout == 0 || rt.retry.perTryTimeout < rt.timeout) {
		return rt.retry.perTryTimeout
	}
	return rt.timeout
}

// eofNotifier calls onEOF when the client's body has been read: the downstream request is
// then complete and the route timeout starts.
type eofNotifier struct {
	r     io.Reader
	onEOF func()
}

func (e *eofNotifier) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) {
		e.onEOF()
	}
	return n, err
}
