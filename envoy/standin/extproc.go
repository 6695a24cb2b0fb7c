package standin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// callbackState is what a direction waits for from the processor.
//
// Envoy: source/extensions/filters/http/ext_proc/processor_state.h CallbackState.
type callbackState int

const (
	stateIdle callbackState = iota
	stateHeaders
	stateBufferedBody
	stateStreamedBody
)

// direction is one side of ext_proc's state (request: decoding, response: encoding).
//
// Envoy: processor_state.h ProcessorState, DecodingProcessorState, EncodingProcessorState.
type direction struct {
	request      bool
	sendHeaders  bool
	sendTrailers bool
	bodyMode     extprocv3.ProcessingMode_BodySendMode
	state        callbackState

	// Each direction has its own message timer, restarted on every message sent and stopped
	// on every reply (processor_state.cc onStartProcessorCall, onFinishProcessorCall).
	timer              *time.Timer
	timerOn            bool
	newTimeoutReceived bool

	headers *headerMap // held headers; nil once released downstream
	noBody  bool

	bodyReplaced bool   // CONTINUE_AND_REPLACE with a body_mutation
	replacement  []byte // the body it set

	buffered []byte        // BUFFERED: the body sent, then the body to forward
	queue    []queuedChunk // STREAMED: chunks sent and not yet answered, in order
}

type queuedChunk struct {
	data []byte
	eos  bool
}

func newDirection(request bool, mode *extprocv3.ProcessingMode) direction {
	t := time.NewTimer(time.Hour)
	t.Stop()
	d := direction{request: request, timer: t}
	d.setMode(mode)
	return d
}

// setMode is ProcessorState::setProcessingMode: headers are sent unless SKIP, trailers only
// if SEND.
func (d *direction) setMode(m *extprocv3.ProcessingMode) {
	if d.request {
		d.sendHeaders = m.GetRequestHeaderMode() != extprocv3.ProcessingMode_SKIP
		d.sendTrailers = m.GetRequestTrailerMode() == extprocv3.ProcessingMode_SEND
		d.bodyMode = m.GetRequestBodyMode()
		return
	}
	d.sendHeaders = m.GetResponseHeaderMode() != extprocv3.ProcessingMode_SKIP
	d.sendTrailers = m.GetResponseTrailerMode() == extprocv3.ProcessingMode_SEND
	d.bodyMode = m.GetResponseBodyMode()
}

// shouldRemoveContentLength is ProcessorState::shouldRemoveContentLength: in these modes
// Envoy cannot keep content-length right if the processor changes the body.
func (d *direction) shouldRemoveContentLength() bool {
	switch d.bodyMode {
	case extprocv3.ProcessingMode_STREAMED, extprocv3.ProcessingMode_BUFFERED_PARTIAL, extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED:
		return true
	case extprocv3.ProcessingMode_BUFFERED:
		return !d.sendHeaders
	}
	return false
}

func (d *direction) startCall(state callbackState, timeout time.Duration) {
	d.state = state
	d.timer.Reset(timeout)
	d.timerOn = true
	d.newTimeoutReceived = false
}

func (d *direction) finishCall(next callbackState) {
	d.timer.Stop()
	d.timerOn = false
	d.newTimeoutReceived = false
	d.state = next
}

// restartTimer is ProcessorState::restartMessageTimer: once per call, only while the timer
// runs.
func (d *direction) restartTimer(timeout time.Duration) bool {
	if !d.timerOn || d.newTimeoutReceived {
		return false
	}
	d.timer.Reset(timeout)
	d.newTimeoutReceived = true
	return true
}

func (d *direction) timerC() <-chan time.Time {
	if d == nil || !d.timerOn {
		return nil
	}
	return d.timer.C
}

// processor is one request's ext_proc filter instance: its gRPC stream and both
// directions' state. It is owned by the stream goroutine; only the receive goroutine it
// starts touches replies and recvErr, and it exits when the gRPC stream ends.
type processor struct {
	cfg    *extProcConfig
	client extprocsvc.ExternalProcessorClient
	log    *slog.Logger
	stats  *counters

	dec, enc direction
	// complete is processing_complete_: the processor is no longer consulted.
	complete           bool
	protocolConfigSent bool
	attributesSent     bool // the request direction's attributes went out

	stream  extprocsvc.ExternalProcessor_ProcessClient
	cancel  context.CancelFunc
	replies chan *extprocsvc.ProcessingResponse
	recvErr error // set by the receive goroutine before it closes replies
}

func newProcessor(cfg *extProcConfig, client extprocsvc.ExternalProcessorClient, log *slog.Logger, stats *counters) *processor {
	return &processor{
		cfg:    cfg,
		client: client,
		log:    log,
		stats:  stats,
		dec:    newDirection(true, cfg.mode),
		enc:    newDirection(false, cfg.mode),
	}
}

// open starts the gRPC stream on first use (Filter::openStream) and its receive goroutine.
func (p *processor) open(ctx context.Context) error {
	if p.stream != nil {
		return nil
	}
	sctx, cancel := context.WithCancel(withInitialMetadata(ctx, p.cfg.initialMetadata))
	st, err := p.client.Process(sctx)
	if err != nil {
		cancel()
		return err
	}
	p.stats.streamsStarted.Add(1)
	p.stream, p.cancel = st, cancel
	p.replies = make(chan *extprocsvc.ProcessingResponse, 4)
	go func(replies chan<- *extprocsvc.ProcessingResponse) {
		defer close(replies)
		for {
			r, err := st.Recv()
			if err != nil {
				p.recvErr = err
				return
			}
			select {
			case replies <- r:
			case <-sctx.Done():
				return
			}
		}
	}(p.replies)
	return nil
}

// close half-closes and resets the gRPC stream, as Envoy does (ext_proc_graceful_grpc_close
// is off by default, so the processor sees a cancellation), and waits for the receive
// goroutine to exit.
//
// Envoy: ext_proc.cc Filter::closeStream; client_impl.cc ExternalProcessorStreamImpl::close.
func (p *processor) close() {
	if p == nil || p.stream == nil {
		return
	}
	_ = p.stream.CloseSend()
	p.cancel()
	for range p.replies {
	}
	p.stream = nil
	p.stats.streamsClosed.Add(1)
}

// send sends one message. io.EOF means the stream already ended; its status arrives through
// the receive goroutine, so it is not an error here.
func (p *processor) send(req *extprocsvc.ProcessingRequest) error {
	p.stats.msgsSent.Add(1)
	if err := p.stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func (p *processor) repliesC() <-chan *extprocsvc.ProcessingResponse {
	if p == nil || p.complete || p.stream == nil {
		return nil
	}
	return p.replies
}

// inHeaderProcessState is Filter::inHeaderProcessState: either direction waits for a
// headers reply.
func (p *processor) inHeaderProcessState() bool {
	return p.dec.state == stateHeaders || p.enc.state == stateHeaders
}

// finishCalls stops both timers (Filter::onFinishProcessorCalls).
func (p *processor) finishCalls() {
	p.dec.finishCall(stateIdle)
	p.enc.finishCall(stateIdle)
}

// request completes a ProcessingRequest: metadata_context from the forwarding namespaces,
// protocol_config on the first message of the stream, and the request_attributes (request.id
// from the request headers h) on the first message of the request direction.
//
// Envoy: ext_proc.cc addDynamicMetadata, encodeProtocolConfig; the attributes, keyed by
// expression under "envoy.filters.http.ext_proc", are evaluated once per direction
// (ProcessorState sentAttributes) by matching_utils.cc ExpressionManager::evaluateAttributes.
func (p *processor) request(req *extprocsvc.ProcessingRequest, md *dynamicMetadata, h *headerMap) *extprocsvc.ProcessingRequest {
	req.MetadataContext = md.forward(p.cfg.forwardingNamespaces)
	if p.cfg.requestID && !p.attributesSent && isRequestDirection(req) {
		req.Attributes = map[string]*structpb.Struct{extProcAttributesKey: {
			Fields: map[string]*structpb.Value{requestIDAttribute: requestIDValue(h)},
		}}
		p.attributesSent = true
	}
	if !p.protocolConfigSent {
		req.ProtocolConfig = &extprocsvc.ProtocolConfiguration{
			RequestBodyMode:  p.dec.bodyMode,
			ResponseBodyMode: p.enc.bodyMode,
		}
		p.protocolConfigSent = true
	}
	return req
}

func isRequestDirection(req *extprocsvc.ProcessingRequest) bool {
	switch req.GetRequest().(type) {
	case *extprocsvc.ProcessingRequest_RequestHeaders, *extprocsvc.ProcessingRequest_RequestBody, *extprocsvc.ProcessingRequest_RequestTrailers:
		return true
	}
	return false
}

// withInitialMetadata adds a GrpcService's initial_metadata to the outgoing context of a
// stream or call.
func withInitialMetadata(ctx context.Context, md metadata.MD) context.Context {
	if len(md) == 0 {
		return ctx
	}
	return metadata.NewOutgoingContext(ctx, md)
}

func headersRequest(d *direction, h *headerMap, eos bool) *extprocsvc.ProcessingRequest {
	hh := &extprocsvc.HttpHeaders{Headers: h.toProto(), EndOfStream: eos}
	if d.request {
		return &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_RequestHeaders{RequestHeaders: hh}}
	}
	return &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_ResponseHeaders{ResponseHeaders: hh}}
}

func bodyRequest(d *direction, body []byte, eos bool) *extprocsvc.ProcessingRequest {
	hb := &extprocsvc.HttpBody{Body: body, EndOfStream: eos}
	if d.request {
		return &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_RequestBody{RequestBody: hb}}
	}
	return &extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_ResponseBody{ResponseBody: hb}}
}

// onNewTimeout is Filter::onNewTimeout: a reply carrying override_message_timeout restarts
// the running timer once, if the value is within [1ms, max_message_timeout]; the rest of
// that reply is ignored.
func (p *processor) onNewTimeout(d *durationpb.Duration) {
	t := d.AsDuration()
	if !d.IsValid() || t < time.Millisecond || t > p.cfg.maxMessageTimeout {
		p.stats.overrideTimeoutIgnored.Add(1)
		return
	}
	dec := p.dec.restartTimer(t)
	enc := p.enc.restartTimer(t)
	if !dec && !enc {
		p.stats.overrideTimeoutIgnored.Add(1)
		return
	}
	p.stats.overrideTimeoutReceived.Add(1)
}

// effectiveModeOverride: DEFAULT header and trailer modes mean "unchanged"; body modes are
// always copied. The base is the configured mode, not the current one.
//
// Envoy: ext_proc.cc effectiveModeOverride.
func effectiveModeOverride(target, configured *extprocv3.ProcessingMode) *extprocv3.ProcessingMode {
	m := &extprocv3.ProcessingMode{
		RequestHeaderMode:   configured.GetRequestHeaderMode(),
		ResponseHeaderMode:  configured.GetResponseHeaderMode(),
		RequestTrailerMode:  configured.GetRequestTrailerMode(),
		ResponseTrailerMode: configured.GetResponseTrailerMode(),
	}
	if v := target.GetRequestHeaderMode(); v != extprocv3.ProcessingMode_DEFAULT {
		m.RequestHeaderMode = v
	}
	if v := target.GetResponseHeaderMode(); v != extprocv3.ProcessingMode_DEFAULT {
		m.ResponseHeaderMode = v
	}
	if v := target.GetRequestTrailerMode(); v != extprocv3.ProcessingMode_DEFAULT {
		m.RequestTrailerMode = v
	}
	if v := target.GetResponseTrailerMode(); v != extprocv3.ProcessingMode_DEFAULT {
		m.ResponseTrailerMode = v
	}
	m.RequestBodyMode = target.GetRequestBodyMode()
	m.ResponseBodyMode = target.GetResponseBodyMode()
	return m
}

// overrideAllowed checks allowed_override_modes, ignoring request_header_mode.
func (p *processor) overrideAllowed(m *extprocv3.ProcessingMode) bool {
	if len(p.cfg.allowedOverrideModes) == 0 {
		return true
	}
	for _, o := range p.cfg.allowedOverrideModes {
		if m.GetRequestBodyMode() == o.GetRequestBodyMode() &&
			m.GetRequestTrailerMode() == o.GetRequestTrailerMode() &&
			m.GetResponseHeaderMode() == o.GetResponseHeaderMode() &&
			m.GetResponseBodyMode() == o.GetResponseBodyMode() &&
			m.GetResponseTrailerMode() == o.GetResponseTrailerMode() {
			return true
		}
	}
	return false
}
