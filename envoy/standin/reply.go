package standin

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/status"
)

// errSpurious is a reply that does not match what Envoy waits for (absl FailedPrecondition
// in ext_proc.cc).
type errSpurious struct{ msg string }

func (e *errSpurious) Error() string { return e.msg }

func spurious(msg string) error { return &errSpurious{msg} }

// onProcessorMessage applies one message from the processor.
//
// Envoy: source/extensions/filters/http/ext_proc/ext_proc.cc Filter::onReceiveMessage.
func (s *stream) onProcessorMessage(r *extprocsvc.ProcessingResponse) {
	p := s.ep
	if p.complete {
		return // messages after processing completed are ignored
	}
	if d := r.GetOverrideMessageTimeout(); d != nil {
		p.onNewTimeout(d) // the rest of such a reply is ignored
		return
	}
	// mode_override is honoured only with allow_mode_override, while a direction waits for
	// a headers reply (whatever this reply's kind), and never with FULL_DUPLEX_STREAMED
	// configured (the stand-in refuses that mode and send_body_without_waiting...).
	if m := r.GetModeOverride(); m != nil && p.cfg.allowModeOverride && p.inHeaderProcessState() {
		eff := effectiveModeOverride(m, p.cfg.mode)
		if p.overrideAllowed(eff) {
			p.dec.setMode(eff)
			p.enc.setMode(eff)
		} else {
			s.log.Debug("ext_proc mode_override not in allowed_override_modes", "mode", eff)
		}
	}

	var err error
	switch v := r.GetResponse().(type) {
	case *extprocsvc.ProcessingResponse_RequestHeaders:
		s.acceptMetadata(r)
		err = s.handleHeadersResponse(&p.dec, v.RequestHeaders)
	case *extprocsvc.ProcessingResponse_ResponseHeaders:
		s.acceptMetadata(r)
		err = s.handleHeadersResponse(&p.enc, v.ResponseHeaders)
	case *extprocsvc.ProcessingResponse_RequestBody:
		s.acceptMetadata(r)
		err = s.handleBodyResponse(&p.dec, v.RequestBody)
	case *extprocsvc.ProcessingResponse_ResponseBody:
		s.acceptMetadata(r)
		err = s.handleBodyResponse(&p.enc, v.ResponseBody)
	case *extprocsvc.ProcessingResponse_RequestTrailers, *extprocsvc.ProcessingResponse_ResponseTrailers:
		s.acceptMetadata(r)
		err = spurious("spurious message") // trailers are never sent: no TrailersCallback
	case *extprocsvc.ProcessingResponse_ImmediateResponse:
		if p.cfg.disableImmediateResponse {
			err = spurious("unhandled immediate response due to config disabled it")
			break
		}
		s.acceptMetadata(r)
		p.stats.msgsReceived.Add(1)
		p.complete = true
		p.finishCalls()
		p.close()
		s.sendImmediateResponse(v.ImmediateResponse)
		return
	default:
		err = spurious("unhandled message")
	}

	var sp *errSpurious
	switch {
	case err == nil:
		p.stats.msgsReceived.Add(1)
	case errors.As(err, &sp):
		p.stats.spuriousMsgs.Add(1)
		s.log.Warn("spurious ext_proc message", "kind", fmt.Sprintf("%T", r.GetResponse()), "reason", sp.msg)
		if p.cfg.failureModeAllow {
			// Ignore the processor for the rest of the request.
			p.stats.failureModeAllowed.Add(1)
			p.close()
			s.clearAsyncState()
			p.complete = true
		} else {
			s.handleErrorResponse(err)
		}
	default:
		p.stats.msgsReceived.Add(1)
		s.handleErrorResponse(err)
	}
}

// acceptMetadata applies a reply's dynamic_metadata for the receiving namespaces.
func (s *stream) acceptMetadata(r *extprocsvc.ProcessingResponse) {
	if r.GetDynamicMetadata() == nil {
		return
	}
	if dropped := s.md.accept(s.ep.cfg.receivingNamespaces, r.GetDynamicMetadata()); len(dropped) > 0 {
		s.log.Debug("ext_proc dynamic metadata dropped: namespace not in receiving_namespaces", "namespaces", dropped)
	}
}

// handleHeadersResponse is ProcessorState::handleHeadersResponse.
func (s *stream) handleHeadersResponse(d *direction, hr *extprocsvc.HeadersResponse) error {
	if d.state != stateHeaders {
		return spurious("spurious message")
	}
	p := s.ep
	cr := hr.GetResponse()
	replacing := cr.GetStatus() == extprocsvc.CommonResponse_CONTINUE_AND_REPLACE
	if hm := cr.GetHeaderMutation(); hm != nil {
		if err := applyHeaderMutation(hm, d.headers, replacing, p.cfg.rules, s.rejectedMutation, d.shouldRemoveContentLength()); err != nil {
			return err
		}
	}
	if d.request {
		s.clearRouteCache(cr)
	}
	d.finishCall(stateIdle)
	if replacing {
		// CONTINUE_AND_REPLACE: the body, if given, replaces (or creates) the whole body;
		// nothing more is sent in this direction.
		if bm := cr.GetBodyMutation(); bm != nil {
			d.headers.remove("content-length")
			d.bodyReplaced = true
			d.replacement = applyBodyMutation(bm, nil)
		}
		d.queue = nil
		d.bodyMode = extprocv3.ProcessingMode_NONE
		d.sendTrailers = false
	}
	return nil
}

// handleBodyResponse is ProcessorState::handleBodyResponse for BUFFERED and STREAMED.
func (s *stream) handleBodyResponse(d *direction, br *extprocsvc.BodyResponse) error {
	p := s.ep
	cr := br.GetResponse()
	switch d.state {
	case stateBufferedBody:
		// Header mutations apply while the headers are still held.
		if hm := cr.GetHeaderMutation(); hm != nil && d.headers != nil {
			if err := applyHeaderMutation(hm, d.headers, cr.GetStatus() == extprocsvc.CommonResponse_CONTINUE_AND_REPLACE,
				p.cfg.rules, s.rejectedMutation, d.shouldRemoveContentLength()); err != nil {
				return err
			}
		}
		if bm := cr.GetBodyMutation(); bm != nil {
			// processor_state.cc validateContentLength: a content-length left in the headers
			// (after this reply's header mutation) must equal the new body's length.
			if cl, ok := d.headers.contentLength(); ok && cl != int64(len(bm.GetBody())) {
				return errors.New("mismatch between content length and the length of the mutated body")
			}
			d.buffered = applyBodyMutation(bm, d.buffered)
		}
		d.finishCall(stateIdle)
	case stateStreamedBody:
		bm := cr.GetBodyMutation()
		if bm.GetStreamedResponse() != nil {
			return spurious("spurious message: streamed_response is received while body_mode_ is not FULL_DUPLEX_STREAMED")
		}
		// The reply answers the oldest chunk; header mutations are ignored.
		if len(d.queue) == 0 {
			return spurious("spurious message")
		}
		c := d.queue[0]
		d.queue = d.queue[1:]
		data := c.data
		if bm != nil {
			data = applyBodyMutation(bm, data)
		}
		// The timer stops on every reply, even with chunks still in flight, until the next
		// chunk is sent (processor_state.cc handleStreamedBodyResponse).
		if len(d.queue) == 0 {
			d.finishCall(stateIdle)
		} else {
			d.finishCall(stateStreamedBody)
		}
		s.inject(d, data, c.eos)
	default:
		return spurious("spurious message")
	}
	if d.request {
		s.clearRouteCache(cr)
	}
	d.headers = nil
	return nil
}

// rejectedMutation counts a refused header mutation (rejected_header_mutations).
func (s *stream) rejectedMutation() { s.p.stats.rejectedHeaderMutations.Add(1) }

// clearRouteCache is DecodingProcessorState::clearRouteCache: only with a header mutation in
// the same reply, then per route_cache_action.
func (s *stream) clearRouteCache(cr *extprocsvc.CommonResponse) {
	if cr.GetHeaderMutation() == nil {
		if cr.GetClearRouteCache() {
			s.p.stats.clearRouteCacheIgnored.Add(1)
		}
		return
	}
	switch s.ep.cfg.routeCacheAction {
	case extprocv3.ExternalProcessor_DEFAULT:
		if cr.GetClearRouteCache() {
			s.routeCleared = true
		}
	case extprocv3.ExternalProcessor_CLEAR:
		s.routeCleared = true
	case extprocv3.ExternalProcessor_RETAIN:
		if cr.GetClearRouteCache() {
			s.p.stats.clearRouteCacheOff.Add(1)
		}
	}
}

// inject passes processed data on in direction d (ProcessorState::injectDataToFilterChain).
// Only the response direction streams in the stand-in.
func (s *stream) inject(d *direction, data []byte, eos bool) {
	if d.request {
		return
	}
	s.writeBody(data)
	if eos {
		s.endResponse()
	}
}

// clearAsyncState is Filter::clearAsyncState: both directions stop waiting, and chunks the
// processor had not answered go on unmodified.
func (s *stream) clearAsyncState() {
	p := s.ep
	p.finishCalls()
	for _, d := range []*direction{&p.dec, &p.enc} {
		q := d.queue
		d.queue = nil
		for _, c := range q {
			s.inject(d, c.data, c.eos)
		}
	}
}

// onProcessorClosed handles the end of the gRPC stream: an OK close means Envoy continues
// without the processor (Filter::onGrpcClose), any other status is onGrpcError.
func (s *stream) onProcessorClosed() {
	err := s.ep.recvErr
	if err == nil || errors.Is(err, io.EOF) {
		s.onGrpcClose()
		return
	}
	s.onGrpcError(err)
}

func (s *stream) onGrpcClose() {
	p := s.ep
	if p.complete {
		return
	}
	p.complete = true
	p.close()
	s.clearAsyncState()
}

// onGrpcError is Filter::onGrpcError: fail open with failure_mode_allow, otherwise a local
// reply with status_on_error.
func (s *stream) onGrpcError(err error) {
	p := s.ep
	p.stats.streamsFailed.Add(1)
	if p.complete {
		return
	}
	st := status.Convert(err)
	s.log.Warn("ext_proc stream failed", "code", st.Code(), "message", st.Message())
	if p.cfg.failureModeAllow {
		s.onGrpcClose()
		p.stats.failureModeAllowed.Add(1)
		return
	}
	p.complete = true
	p.finishCalls()
	p.close()
	s.sendImmediateResponse(&extprocsvc.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(p.cfg.statusOnError)},
		Details: fmt.Sprintf("ext_proc_error_gRPC_error_%d{%s}", st.Code(), st.Message()),
	})
}

// onMessageTimeout is Filter::onMessageTimeout: 504 unless failure_mode_allow.
func (s *stream) onMessageTimeout() {
	p := s.ep
	p.stats.messageTimeouts.Add(1)
	s.log.Warn("ext_proc message timeout", "timeout", p.cfg.messageTimeout)
	if p.cfg.failureModeAllow {
		p.complete = true
		p.close()
		p.stats.failureModeAllowed.Add(1)
		s.clearAsyncState()
		return
	}
	p.complete = true
	p.close()
	p.finishCalls()
	s.sendImmediateResponse(&extprocsvc.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode_GatewayTimeout},
		Details: "ext_proc_error_per-message_timeout_exceeded",
	})
}

// handleErrorResponse is Filter::handleErrorResponse: a failed reply (refused mutation,
// content-length mismatch, fail-closed spurious message) ends processing with a local reply
// carrying status_on_error.
func (s *stream) handleErrorResponse(err error) {
	p := s.ep
	s.log.Warn("ext_proc reply rejected", "error", err)
	p.complete = true
	p.finishCalls()
	p.close()
	s.sendImmediateResponse(&extprocsvc.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(p.cfg.statusOnError)},
		Details: err.Error(),
	})
}

// notImplemented ends processing for a mode a reply switched on that the stand-in does not
// implement: it refuses loudly rather than behave differently from Envoy.
func (s *stream) notImplemented(what string) {
	s.log.Error("stand-in: not implemented; failing the request", "what", what)
	p := s.ep
	p.complete = true
	p.finishCalls()
	p.close()
	s.sendLocalReply(500, nil, nil, "standin_not_implemented{"+strings.ReplaceAll(what, " ", "_")+"}")
}

// sendImmediateResponse is Filter::sendImmediateResponse: a missing or < 200 status becomes
// 200; header mutations are checked against the filter's mutation rules and failures only
// logged; whitespace in details becomes '_'.
func (s *stream) sendImmediateResponse(ir *extprocsvc.ImmediateResponse) {
	s.sendImmediateResponseWith(ir, s.ep.cfg.rules)
}

// sendImmediateResponseWith is sendImmediateResponse for the ext_proc filter whose mutation
// rules are rules (an upstream filter's replies are checked against its own).
func (s *stream) sendImmediateResponseWith(ir *extprocsvc.ImmediateResponse, rules *mutationRules) {
	code := 200
	if ir.GetStatus() != nil {
		code = int(ir.GetStatus().GetCode())
	}
	if code < 200 {
		code = 200
	}
	mutate := func(h *headerMap) {
		if hm := ir.GetHeaders(); hm != nil {
			if err := applyHeaderMutation(hm, h, false, rules, s.rejectedMutation, false); err != nil {
				s.log.Error("immediate response mutations failed", "error", err)
			}
		}
	}
	details := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return '_'
		}
		return r
	}, ir.GetDetails())
	s.sendLocalReply(code, ir.GetBody(), mutate, details)
}
