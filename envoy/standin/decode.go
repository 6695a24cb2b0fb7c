package standin

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
)

// requestBody is the request body the router forwards: whole (buffered or replaced) or
// streamed from the client.
type requestBody struct {
	data   []byte
	stream io.Reader // non-nil: stream from the client (body mode NONE)
}

// decode runs the request through ext_proc's decode path: request_headers, then the body as
// the request body mode says. It returns the body to forward, or false when the stream
// ended (a local reply went out, or the client left).
//
// Envoy: ext_proc.cc Filter::decodeHeaders, decodeData (onData); processor_state.cc.
func (s *stream) decode(hasBody bool) (*requestBody, bool) {
	p := s.ep
	if p == nil {
		if !s.rateLimitDecode() {
			return nil, false
		}
		return s.clientBody(hasBody), true
	}
	d := &p.dec
	if !p.complete && d.sendHeaders {
		if !s.processHeaders(d, s.reqHeaders, !hasBody) {
			return nil, false
		}
	} else if !p.complete && d.shouldRemoveContentLength() {
		s.reqHeaders.remove("content-length")
	}
	if s.ended {
		return nil, false
	}
	// ext_proc lets the headers go on to the next filter (ratelimit) when it is done with
	// them: now, unless it holds them for a BUFFERED body (decodeBuffered).
	holds := hasBody && !d.bodyReplaced && !p.complete && d.bodyMode == extprocv3.ProcessingMode_BUFFERED && d.sendHeaders
	if !holds && !s.rateLimitDecode() {
		return nil, false
	}
	switch {
	case d.bodyReplaced:
		// CONTINUE_AND_REPLACE: the client's body is drained, the replacement forwarded.
		if hasBody {
			_, _ = io.Copy(io.Discard, s.r.Body)
		}
		return &requestBody{data: d.replacement}, true
	case !hasBody:
		return &requestBody{}, true
	case p.complete || d.bodyMode == extprocv3.ProcessingMode_NONE:
		return s.clientBody(true), true
	case d.bodyMode == extprocv3.ProcessingMode_BUFFERED:
		return s.decodeBuffered(d)
	default:
		s.notImplemented(fmt.Sprintf("request_body_mode %s (set by mode_override)", d.bodyMode))
		return nil, false
	}
}

func (s *stream) clientBody(hasBody bool) *requestBody {
	if !hasBody {
		return &requestBody{}
	}
	return &requestBody{stream: s.r.Body}
}

// decodeBuffered reads the whole request body, one byte over the buffer limit being 413
// (sent through the filter chain: ext_proc sees it as response_headers), then sends it in
// one request_body message and waits for the reply. The request headers stay held until
// then, so the reply may still change them.
//
// Envoy: ext_proc.cc handleDataBufferedMode; filter_manager.cc
// ActiveStreamDecoderFilter::requestDataTooLarge.
func (s *stream) decodeBuffered(d *direction) (*requestBody, bool) {
	p := s.ep
	limit := s.p.cfg.listener.bufferLimit
	data, err := io.ReadAll(io.LimitReader(s.r.Body, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.sendLocalReply(http.StatusRequestEntityTooLarge, []byte("Payload Too Large"), nil, "request_payload_too_large")
			return nil, false
		}
		s.log.Debug("reading request body failed", "error", err)
		s.onClientGone()
		return nil, false
	}
	s.touch()
	if int64(len(data)) > limit {
		s.sendLocalReply(http.StatusRequestEntityTooLarge, []byte("Payload Too Large"), nil, "request_payload_too_large")
		return nil, false
	}
	d.buffered = data
	if !p.complete {
		if d.sendHeaders {
			d.headers = s.reqHeaders // held until this reply
		} else {
			// Headers not sent were not held: the router already has its route, so this
			// reply can no longer re-route the request.
			s.resolveRoute()
			s.routeLocked = true
		}
		if s.call(d, stateBufferedBody, bodyRequest(d, data, true)) {
			s.await(d)
		}
		if s.ended {
			return nil, false
		}
	}
	// The body reply released the held headers: the ratelimit filter's decodeHeaders runs
	// now, with extproc's header mutations and metadata (ext_proc.cc continueDecoding after
	// handleDataBufferedMode's reply).
	if !s.rateLimitDecode() {
		return nil, false
	}
	return &requestBody{data: d.buffered}, true
}
