package standin

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// response is what runs through the encoder filters: an upstream response or a local reply.
type response struct {
	headers *headerMap
	body    <-chan chunk // nil: the headers end the stream
}

// encode runs a response through the encoder filters (the ratelimit filter's
// encodeHeaders, then ext_proc's encode path) and writes it to the client.
//
// Envoy: source/extensions/filters/http/ext_proc/ext_proc.cc Filter::encodeHeaders,
// encodeData (onData), and processor_state.cc for the replies.
func (s *stream) encode(resp *response) {
	s.respState = respHeld
	s.rateLimitEncode(resp.headers) // encoder filters run in reverse: ratelimit before ext_proc
	p := s.ep
	eos := resp.body == nil
	if p == nil || p.complete {
		s.passThrough(resp)
		return
	}
	d := &p.enc
	if d.sendHeaders {
		if !s.processHeaders(d, resp.headers, eos) {
			return
		}
	} else if d.shouldRemoveContentLength() {
		resp.headers.remove("content-length")
	}
	if s.ended {
		return
	}
	switch {
	case d.bodyReplaced:
		// CONTINUE_AND_REPLACE with a body: the replacement goes out; the upstream body is
		// drained as it arrives (Filter::onData, bodyReplaced).
		s.writeHeaders(resp.headers)
		s.writeBody(d.replacement)
		s.drain(resp.body)
		s.endResponse()
	case eos || p.complete || d.bodyMode == extprocv3.ProcessingMode_NONE:
		s.passThrough(resp)
	case d.bodyMode == extprocv3.ProcessingMode_BUFFERED:
		s.encodeBuffered(d, resp)
	case d.bodyMode == extprocv3.ProcessingMode_STREAMED:
		s.writeHeaders(resp.headers)
		s.encodeStreamed(d, resp.body)
	default:
		s.notImplemented(fmt.Sprintf("response_body_mode %s (set by mode_override)", d.bodyMode))
	}
}

// processHeaders sends a direction's headers and waits for the reply (Filter::onHeaders).
// It reports false when the stream ended. After sending, content-length is removed if the
// body mode in force at that moment calls for it; a later mode_override does not change
// that decision (ext_proc.cc decodeHeaders/encodeHeaders, shouldRemoveContentLength).
func (s *stream) processHeaders(d *direction, h *headerMap, eos bool) bool {
	p := s.ep
	d.headers = h
	d.noBody = eos
	if !s.call(d, stateHeaders, headersRequest(d, h, eos)) {
		return !s.ended
	}
	if !p.complete && d.shouldRemoveContentLength() {
		h.remove("content-length")
	}
	s.await(d)
	return !s.ended
}

// call sends req for direction d, which then waits in state, with the message timer
// running. It reports false if the message could not be sent (the stream is then either
// ended or processing is complete).
func (s *stream) call(d *direction, state callbackState, req *extprocsvc.ProcessingRequest) bool {
	p := s.ep
	if !s.openProcessor() {
		return false
	}
	req = p.request(req, &s.md, s.reqHeaders)
	d.startCall(state, p.cfg.messageTimeout)
	if err := p.send(req); err != nil {
		s.onGrpcError(err)
		return false
	}
	return true
}

// openProcessor opens the gRPC stream if needed. A failure is a gRPC error: a local reply
// when failing closed, processing skipped when failure_mode_allow.
func (s *stream) openProcessor() bool {
	p := s.ep
	if p.complete {
		return false
	}
	if err := p.open(s.ctx); err != nil {
		s.onGrpcError(err)
		return false
	}
	return true
}

// passThrough writes headers and forwards the body chunk by chunk, flushing each.
func (s *stream) passThrough(resp *response) {
	s.writeHeaders(resp.headers)
	if resp.body == nil {
		s.endResponse()
		return
	}
	for !s.ended {
		c, got := s.step(resp.body)
		if !got {
			continue
		}
		if c.err != nil {
			s.upstreamBodyFailed(c.err)
			return
		}
		s.writeBody(c.data)
		if c.eos {
			s.endResponse()
		}
	}
}

// drain consumes a body nobody will see.
func (s *stream) drain(body <-chan chunk) {
	for body != nil && !s.ended {
		c, got := s.step(body)
		if got && (c.eos || c.err != nil) {
			return
		}
	}
}

// encodeBuffered buffers the whole response body, sends it in one response_body message and
// holds the headers until the reply. A body over the buffer limit fails the response with
// 500, sent directly since the headers already entered the filter chain.
//
// Envoy: ext_proc.cc handleDataBufferedMode; filter_manager.cc
// ActiveStreamEncoderFilter::responseDataTooLarge.
func (s *stream) encodeBuffered(d *direction, resp *response) {
	p := s.ep
	if !d.sendHeaders {
		s.writeHeaders(resp.headers) // headers were not held: they went on at once
	}
	var buf bytes.Buffer
	for !s.ended {
		c, got := s.step(resp.body)
		if !got {
			continue
		}
		if c.err != nil {
			s.upstreamBodyFailed(c.err)
			return
		}
		buf.Write(c.data)
		if int64(buf.Len()) > s.p.cfg.listener.bufferLimit {
			s.sendLocalReply(http.StatusInternalServerError, []byte("Internal Server Error"), nil, "response_payload_too_large")
			return
		}
		if c.eos {
			break
		}
	}
	if s.ended {
		return
	}
	d.buffered = buf.Bytes()
	if !p.complete {
		if d.sendHeaders {
			d.headers = resp.headers
		}
		if s.call(d, stateBufferedBody, bodyRequest(d, d.buffered, true)) {
			s.await(d)
		}
		if s.ended {
			return
		}
	}
	s.writeHeaders(resp.headers)
	s.writeBody(d.buffered)
	s.endResponse()
}

// encodeStreamed sends each chunk to the processor as it arrives, without waiting for the
// previous reply, and forwards the replies in order. Headers are already on their way.
// Reading stops while the unanswered chunks exceed the buffer limit (Envoy raises the
// watermark).
//
// Envoy: ext_proc.cc handleDataStreamedMode; processor_state.cc handleStreamedBodyResponse.
func (s *stream) encodeStreamed(d *direction, body <-chan chunk) {
	p := s.ep
	queued := func() (n int64) {
		for _, c := range d.queue {
			n += int64(len(c.data))
		}
		return n
	}
	for !s.ended {
		src := body
		if !p.complete && queued() > s.p.cfg.listener.bufferLimit {
			src = nil
		}
		c, got := s.step(src)
		if !got {
			continue
		}
		if c.err != nil {
			s.upstreamBodyFailed(c.err)
			return
		}
		if c.eos {
			body = nil
		}
		if p.complete {
			s.inject(d, c.data, c.eos)
			continue
		}
		d.queue = append(d.queue, queuedChunk{data: c.data, eos: c.eos})
		if !s.call(d, stateStreamedBody, bodyRequest(d, c.data, c.eos)) && !s.ended {
			s.clearAsyncState() // the processor is gone: what was queued goes on
		}
	}
}

// upstreamBodyFailed handles an upstream body that ended badly after its headers went into
// the filter chain: the router resets the downstream stream.
func (s *stream) upstreamBodyFailed(err error) {
	if s.ended {
		return
	}
	if errors.Is(err, errRouteTimeout) {
		s.onRouteTimeoutAfterHeaders() // the reader saw the timeout before the stream did
		return
	}
	if errors.Is(err, errPerTryTimeout) || errors.Is(err, errPerTryIdleTimeout) {
		// Once the response started, a per-try timeout can only reset the stream
		// (router.cc onPerTryTimeout → onUpstreamTimeoutAbort, downstream_response_started_).
		s.p.stats.upstreamPerTryTimeout.Add(1)
		s.info.ResponseCodeDetails = perTryDetails(err)
		s.reset()
		return
	}
	s.log.Warn("upstream response body failed", "error", err)
	s.p.stats.upstreamReset.Add(1)
	if s.info.ResponseCodeDetails == "" || s.info.ResponseCodeDetails == "via_upstream" {
		s.info.ResponseCodeDetails = "upstream_reset_after_response_started"
	}
	s.reset()
}
