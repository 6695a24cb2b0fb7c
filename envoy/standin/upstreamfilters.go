package standin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// extProcAttributesKey is where Envoy puts the evaluated request_attributes in
// ProcessingRequest.attributes.
const extProcAttributesKey = "envoy.filters.http.ext_proc"

// requestIDAttribute is the CEL attribute request.id: the request's x-request-id header as a
// string, "" when the header is absent (the request headers exist in both filters).
//
// Envoy: source/extensions/filters/common/expr/context.cc RequestWrapper::operator[],
// RequestToken ID: ExprValueUtil::stringValue(headers->getRequestIdValue()).
const requestIDAttribute = "request.id"

// requestIDValue is request.id for h.
func requestIDValue(h *headerMap) *structpb.Value {
	v, _ := h.get("x-request-id")
	return structpb.NewStringValue(v)
}

// upstreamFilterChain is a cluster's upstream HTTP filters (HttpProtocolOptions.http_filters)
// before the terminal upstream_codec. Envoy builds a new instance of the chain for every
// attempt (source/common/router/upstream_request.cc: the UpstreamRequest constructor creates
// the cluster's filter chain), so each attempt opens its own ext_proc stream.
type upstreamFilterChain struct {
	filters []upstreamFilter
}

type upstreamFilter struct {
	name           string
	extProc        *upstreamExtProcConfig
	headerMutation *headerMutationFilter
}

// upstreamExtProcConfig is an ext_proc filter in upstream mode: the stand-in implements the
// modes Tollgate uses, request headers (answered with CONTINUE or CONTINUE_AND_REPLACE) and
// optionally response headers (answered with CONTINUE and header mutations), no bodies.
type upstreamExtProcConfig struct {
	*extProcConfig
	attributes          []hostAttribute // besides request.id (extProcConfig.requestID)
	sendResponseHeaders bool            // response_header_mode SEND (or DEFAULT, which is SEND)
}

// hostAttribute is a request_attributes CEL expression reading the chosen host's metadata,
// xds.upstream_host_metadata.filter_metadata['ns']['key'] (source/extensions/filters/common/
// expr/context.cc XDSWrapper upstream_host_metadata: the upstream host's Metadata).
type hostAttribute struct {
	expr, ns, key string
}

var hostAttributeRE = regexp.MustCompile(`^xds\.upstream_host_metadata\.filter_metadata\[(?:'([^']+)'|"([^"]+)")\]\[(?:'([^']+)'|"([^"]+)")\]$`)

func (c *upstreamFilterChain) extProc() *upstreamExtProcConfig {
	if c == nil {
		return nil
	}
	for _, f := range c.filters {
		if f.extProc != nil {
			return f.extProc
		}
	}
	return nil
}

// parseUpstreamFilters parses http_filters: ext_proc and header_mutation filters, ending with
// upstream_codec, as Envoy requires the codec filter last. None configured is the default
// chain (the codec only).
func parseUpstreamFilters(filters []*hcmv3.HttpFilter, clusters map[string]*clusterConfig) (*upstreamFilterChain, error) {
	if len(filters) == 0 {
		return nil, nil
	}
	var errs []error
	chain := &upstreamFilterChain{}
	for i, f := range filters {
		where := fmt.Sprintf("[%d] (%s)", i, f.GetName())
		tc := f.GetTypedConfig()
		last := i == len(filters)-1
		switch {
		case tc.MessageIs(&upstreamcodecv3.UpstreamCodec{}):
			if !last {
				errs = append(errs, fmt.Errorf("%s: upstream_codec must be the last filter", where))
			}
		case last:
			errs = append(errs, fmt.Errorf("%s: the last upstream filter must be envoy.filters.http.upstream_codec", where))
		case tc.MessageIs(&extprocv3.ExternalProcessor{}):
			ep := &extprocv3.ExternalProcessor{}
			if err := tc.UnmarshalTo(ep); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
				continue
			}
			cfg, err := parseUpstreamExtProc(ep, clusters)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
			chain.filters = append(chain.filters, upstreamFilter{name: f.GetName(), extProc: cfg})
		case tc.MessageIs(&headermutationv3.HeaderMutation{}):
			hm := &headermutationv3.HeaderMutation{}
			if err := tc.UnmarshalTo(hm); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
				continue
			}
			cfg, err := parseHeaderMutation(hm)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
			chain.filters = append(chain.filters, upstreamFilter{name: f.GetName(), headerMutation: cfg})
		default:
			errs = append(errs, fmt.Errorf("%s: upstream filter type %s is not implemented by the stand-in", where, tc.GetTypeUrl()))
		}
	}
	return chain, errors.Join(errs...)
}

func parseUpstreamExtProc(ep *extprocv3.ExternalProcessor, clusters map[string]*clusterConfig) (*upstreamExtProcConfig, error) {
	base, err := parseExtProc(ep, clusters)
	errs := []error{err}
	m := ep.GetProcessingMode()
	if m.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE ||
		m.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE || m.GetRequestHeaderMode() == extprocv3.ProcessingMode_SKIP {
		errs = append(errs, errors.New("processing_mode: as an upstream filter the stand-in implements request headers SEND, request body NONE, response headers SEND or SKIP and response body NONE"))
	}
	if ep.GetAllowModeOverride() {
		errs = append(errs, errors.New("allow_mode_override: not implemented by the stand-in for an upstream filter"))
	}
	cfg := &upstreamExtProcConfig{extProcConfig: base, sendResponseHeaders: m.GetResponseHeaderMode() != extprocv3.ProcessingMode_SKIP}
	for i, expr := range ep.GetRequestAttributes() {
		if expr == requestIDAttribute {
			cfg.requestID = true
			continue
		}
		m := hostAttributeRE.FindStringSubmatch(expr)
		if m == nil {
			errs = append(errs, fmt.Errorf("request_attributes[%d] %q: only request.id and xds.upstream_host_metadata.filter_metadata['ns']['key'] are implemented by the stand-in", i, expr))
			continue
		}
		cfg.attributes = append(cfg.attributes, hostAttribute{expr: expr, ns: m[1] + m[2], key: m[3] + m[4]})
	}
	return cfg, errors.Join(errs...)
}

// runUpstreamFilters runs one attempt's upstream filters in order on the router's header map
// (one map for all attempts, mutated in place: upstream_request.cc acceptHeadersFromRouter
// hands the filter manager parent_.downstreamHeaders()) and on this attempt's copy of the
// body. Dynamic metadata is the request's own (UpstreamFilterManager::streamInfo returns the
// downstream stream info), so what one attempt's filters write is there for the next. It
// returns the body to send, and false when the stream ended (a local reply, which goes
// through the downstream filter manager as UpstreamFilterManager::sendLocalReply does, or
// the client left).
//
// It also returns, in chain order, the ext_proc streams left open for the response headers;
// the caller closes them (closeUpstreamProc) whatever happens to the attempt.
func (s *stream) runUpstreamFilters(ctx context.Context, chain *upstreamFilterChain, ep *endpoint, body []byte) ([]byte, []*upstreamProcStream, bool) {
	if chain == nil {
		return body, nil, true
	}
	hasBody := len(body) > 0
	var open []*upstreamProcStream
	for _, f := range chain.filters {
		switch {
		case f.extProc != nil:
			var ok bool
			var ps *upstreamProcStream
			if body, ps, ok = s.upstreamExtProc(ctx, f.extProc, ep, body, hasBody); !ok {
				for _, o := range open {
					s.closeUpstreamProc(o)
				}
				return nil, nil, false
			}
			if ps != nil {
				open = append(open, ps)
			}
		case f.headerMutation != nil:
			f.headerMutation.apply(s.reqHeaders, &s.md)
		}
	}
	return body, open, true
}

// upstreamResponseFilters runs the response headers through the attempt's open ext_proc
// streams in reverse chain order, as encoder filters run. It reports false when the stream
// ended.
func (s *stream) upstreamResponseFilters(open []*upstreamProcStream, h *headerMap, eos bool) bool {
	for i := len(open) - 1; i >= 0; i-- {
		if !s.upstreamExtProcResponse(open[i], h, eos) {
			return false
		}
	}
	return true
}

// hostAttributes evaluates the filter's request_attributes for the chosen host and the shared
// request headers: strings, numbers and bools keep their type, keyed by the expression; a
// missing key is an evaluation error and is left out (ext_proc matching_utils.cc
// ExpressionManager::evaluateAttributes).
func (cfg *upstreamExtProcConfig) hostAttributes(ep *endpoint, h *headerMap) map[string]*structpb.Struct {
	if len(cfg.attributes) == 0 && !cfg.requestID {
		return nil
	}
	out := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	if cfg.requestID {
		out.Fields[requestIDAttribute] = requestIDValue(h)
	}
	for _, a := range cfg.attributes {
		v, ok := ep.cfg.metadata.GetFilterMetadata()[a.ns].GetFields()[a.key]
		if !ok {
			continue
		}
		switch v.GetKind().(type) {
		case *structpb.Value_StringValue, *structpb.Value_NumberValue, *structpb.Value_BoolValue:
			out.Fields[a.expr] = v
		}
	}
	return map[string]*structpb.Struct{extProcAttributesKey: out}
}

// upstreamProcStream is one attempt's ext_proc gRPC stream. It stays open from the
// request_headers message to the response_headers one when response_header_mode is SEND, and
// is closed when the filter is done with it or the attempt ends (the filter is destroyed with
// its UpstreamRequest: ext_proc.cc Filter::onDestroy closes the stream).
type upstreamProcStream struct {
	cfg      *upstreamExtProcConfig
	st       extprocsvc.ExternalProcessor_ProcessClient
	cancel   context.CancelFunc
	replies  chan *extprocsvc.ProcessingResponse
	recvDone chan struct{}
	recvErr  error
	closed   bool
}

func (s *stream) openUpstreamProc(ctx context.Context, cfg *upstreamExtProcConfig) (*upstreamProcStream, error) {
	sctx, cancel := context.WithCancel(withInitialMetadata(ctx, cfg.initialMetadata))
	st, err := s.p.extproc.Process(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	s.p.stats.streamsStarted.Add(1)
	ps := &upstreamProcStream{cfg: cfg, st: st, cancel: cancel,
		replies: make(chan *extprocsvc.ProcessingResponse, 1), recvDone: make(chan struct{})}
	go func() {
		defer close(ps.recvDone)
		for {
			r, err := st.Recv()
			if err != nil {
				ps.recvErr = err
				return
			}
			select {
			case ps.replies <- r:
			case <-sctx.Done():
				return
			}
		}
	}()
	return ps, nil
}

// close half-closes and cancels the stream, as Envoy does without graceful close.
func (s *stream) closeUpstreamProc(ps *upstreamProcStream) {
	if ps == nil || ps.closed {
		return
	}
	ps.closed = true
	_ = ps.st.CloseSend()
	ps.cancel()
	<-ps.recvDone
	s.p.stats.streamsClosed.Add(1)
}

// exchange sends req on ps and waits for its reply under the message timeout (restarted once
// by override_message_timeout, Filter::onNewTimeout). It returns the reply; or nil and a
// failure reply; or nil, nil when the processor closed the stream with OK (Envoy continues
// without it). alive is false when the client left.
func (s *stream) exchange(ps *upstreamProcStream, req *extprocsvc.ProcessingRequest) (r *extprocsvc.ProcessingResponse, fail *extprocsvc.ImmediateResponse, alive bool) {
	cfg := ps.cfg
	s.p.stats.msgsSent.Add(1)
	if err := ps.st.Send(req); err != nil && !errors.Is(err, io.EOF) {
		return nil, grpcErrorReply(cfg, err), true
	}
	timer := time.NewTimer(cfg.messageTimeout)
	defer timer.Stop()
	timeoutRestarted := false
	for {
		select {
		case r := <-ps.replies:
			if d := r.GetOverrideMessageTimeout(); d != nil {
				t := d.AsDuration()
				if !timeoutRestarted && d.IsValid() && t >= time.Millisecond && t <= cfg.maxMessageTimeout {
					timer.Reset(t)
					timeoutRestarted = true
					s.p.stats.overrideTimeoutReceived.Add(1)
				} else {
					s.p.stats.overrideTimeoutIgnored.Add(1)
				}
				continue
			}
			return r, nil, true
		case <-ps.recvDone:
			select {
			case r := <-ps.replies:
				return r, nil, true
			default:
			}
			if ps.recvErr == nil || errors.Is(ps.recvErr, io.EOF) {
				return nil, nil, true
			}
			s.p.stats.streamsFailed.Add(1)
			return nil, grpcErrorReply(cfg, ps.recvErr), true
		case <-timer.C:
			s.p.stats.messageTimeouts.Add(1)
			return nil, &extprocsvc.ImmediateResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode_GatewayTimeout},
				Details: "ext_proc_error_per-message_timeout_exceeded",
			}, true
		case <-s.ctx.Done():
			s.onClientGone()
			return nil, nil, false
		}
	}
}

// upstreamExtProc is one attempt's ext_proc filter in upstream mode, request side: a new
// gRPC stream, one request_headers message (the shared header map, the host attributes, the
// forwarded metadata), one reply. The reply's header mutation changes the shared header map,
// its dynamic metadata the request's, and CONTINUE_AND_REPLACE with a body_mutation replaces
// this attempt's body and removes content-length (processor_state.cc handleHeadersResponse).
// clear_route_cache has no effect: an upstream filter has no route to clear (the decoder
// callbacks of UpstreamFilterManager carry no downstream callbacks). Failures follow
// ext_proc.cc as downstream: 504 on message timeout, status_on_error on a gRPC error or a
// spurious or rejected reply, or continuing without the processor with failure_mode_allow.
// With response_header_mode SEND the stream is returned open, for the response headers
// (upstreamExtProcResponse); otherwise it is closed here.
func (s *stream) upstreamExtProc(ctx context.Context, cfg *upstreamExtProcConfig, ep *endpoint, body []byte, hasBody bool) ([]byte, *upstreamProcStream, bool) {
	ps, err := s.openUpstreamProc(ctx, cfg)
	if err != nil {
		body, ok := s.upstreamExtProcFailed(cfg, body, grpcErrorReply(cfg, err))
		return body, nil, ok
	}
	keep := false
	defer func() {
		if !keep {
			s.closeUpstreamProc(ps)
		}
	}()
	req := &extprocsvc.ProcessingRequest{
		Request: &extprocsvc.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocsvc.HttpHeaders{
			Headers: s.reqHeaders.toProto(), EndOfStream: !hasBody,
		}},
		MetadataContext: s.md.forward(cfg.forwardingNamespaces),
		Attributes:      cfg.hostAttributes(ep, s.reqHeaders),
		ProtocolConfig: &extprocsvc.ProtocolConfiguration{
			RequestBodyMode: extprocv3.ProcessingMode_NONE, ResponseBodyMode: extprocv3.ProcessingMode_NONE,
		},
	}
	r, fail, alive := s.exchange(ps, req)
	switch {
	case !alive:
		return nil, nil, false
	case fail != nil:
		body, ok := s.upstreamExtProcFailed(cfg, body, fail)
		return body, nil, ok
	case r == nil:
		return body, nil, true // an OK close: Envoy continues without the processor
	}
	body, ok := s.onUpstreamExtProcReply(cfg, r, body)
	if ok && cfg.sendResponseHeaders {
		keep = true
		return body, ps, true
	}
	return body, nil, ok
}

// upstreamExtProcResponse is the response side of one attempt's upstream ext_proc filter
// (response_header_mode SEND): response_headers with the attempt's :status on the attempt's
// own stream, after the request_headers reply; the reply's header mutation changes this
// attempt's response headers, which the router then sees. The upstream filters' encodeHeaders
// run before the router's onUpstreamHeaders (source/common/router/upstream_request.cc
// UpstreamRequestFilterManagerCallbacks::encodeHeaders → UpstreamRequest::decodeHeaders →
// Filter::onUpstreamHeaders), so the retry decision and the downstream filters see the
// mutated headers. mode_override is ignored (allow_mode_override is false). It reports false
// when the stream ended (a local reply or the client left). The stream is closed: with the
// response body NONE the filter has nothing more to send.
func (s *stream) upstreamExtProcResponse(ps *upstreamProcStream, h *headerMap, eos bool) bool {
	defer s.closeUpstreamProc(ps)
	cfg := ps.cfg
	req := &extprocsvc.ProcessingRequest{
		Request:         &extprocsvc.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocsvc.HttpHeaders{Headers: h.toProto(), EndOfStream: eos}},
		MetadataContext: s.md.forward(cfg.forwardingNamespaces),
	}
	r, fail, alive := s.exchange(ps, req)
	switch {
	case !alive:
		return false
	case fail != nil:
		_, ok := s.upstreamExtProcFailed(cfg, nil, fail)
		return ok
	case r == nil:
		return true
	}
	if dm := r.GetDynamicMetadata(); dm != nil {
		if dropped := s.md.accept(cfg.receivingNamespaces, dm); len(dropped) > 0 {
			s.log.Debug("upstream ext_proc dynamic metadata dropped: namespace not in receiving_namespaces", "namespaces", dropped)
		}
	}
	failWith := func(details string) bool {
		_, ok := s.upstreamExtProcFailed(cfg, nil, &extprocsvc.ImmediateResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode(cfg.statusOnError)}, Details: details,
		})
		return ok
	}
	switch v := r.GetResponse().(type) {
	case *extprocsvc.ProcessingResponse_ResponseHeaders:
		s.p.stats.msgsReceived.Add(1)
		cr := v.ResponseHeaders.GetResponse()
		replacing := cr.GetStatus() == extprocsvc.CommonResponse_CONTINUE_AND_REPLACE
		if replacing || cr.GetBodyMutation() != nil {
			s.log.Error("upstream ext_proc: replacing the response in response_headers is not implemented by the stand-in")
			s.sendLocalReply(http.StatusInternalServerError, nil, nil, "standin_unimplemented_upstream_response_replace")
			return false
		}
		if hm := cr.GetHeaderMutation(); hm != nil {
			if err := applyHeaderMutation(hm, h, false, cfg.rules, s.rejectedMutation, false); err != nil {
				return failWith(err.Error())
			}
		}
		return true
	case *extprocsvc.ProcessingResponse_ImmediateResponse:
		if cfg.disableImmediateResponse {
			break
		}
		s.p.stats.msgsReceived.Add(1)
		s.sendImmediateResponseWith(v.ImmediateResponse, cfg.rules)
		return false
	}
	s.p.stats.spuriousMsgs.Add(1)
	return failWith("spurious message")
}

func (s *stream) onUpstreamExtProcReply(cfg *upstreamExtProcConfig, r *extprocsvc.ProcessingResponse, body []byte) ([]byte, bool) {
	if dm := r.GetDynamicMetadata(); dm != nil {
		if dropped := s.md.accept(cfg.receivingNamespaces, dm); len(dropped) > 0 {
			s.log.Debug("upstream ext_proc dynamic metadata dropped: namespace not in receiving_namespaces", "namespaces", dropped)
		}
	}
	switch v := r.GetResponse().(type) {
	case *extprocsvc.ProcessingResponse_RequestHeaders:
		s.p.stats.msgsReceived.Add(1)
		cr := v.RequestHeaders.GetResponse()
		replacing := cr.GetStatus() == extprocsvc.CommonResponse_CONTINUE_AND_REPLACE
		if hm := cr.GetHeaderMutation(); hm != nil {
			if err := applyHeaderMutation(hm, s.reqHeaders, replacing, cfg.rules, s.rejectedMutation, false); err != nil {
				return s.upstreamExtProcFailed(cfg, body, &extprocsvc.ImmediateResponse{
					Status: &typev3.HttpStatus{Code: typev3.StatusCode(cfg.statusOnError)}, Details: err.Error(),
				})
			}
		}
		if cr.GetClearRouteCache() {
			s.p.stats.clearRouteCacheIgnored.Add(1)
		}
		if bm := cr.GetBodyMutation(); replacing && bm != nil {
			s.reqHeaders.remove("content-length")
			body = applyBodyMutation(bm, nil)
		}
		return body, true
	case *extprocsvc.ProcessingResponse_ImmediateResponse:
		if cfg.disableImmediateResponse {
			break
		}
		s.p.stats.msgsReceived.Add(1)
		s.sendImmediateResponseWith(v.ImmediateResponse, cfg.rules)
		return nil, false
	}
	s.p.stats.spuriousMsgs.Add(1)
	return s.upstreamExtProcFailed(cfg, body, &extprocsvc.ImmediateResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(cfg.statusOnError)}, Details: "spurious message",
	})
}

// upstreamExtProcFailed continues without the processor under failure_mode_allow, or ends
// the request with the local reply ir.
func (s *stream) upstreamExtProcFailed(cfg *upstreamExtProcConfig, body []byte, ir *extprocsvc.ImmediateResponse) ([]byte, bool) {
	s.log.Warn("upstream ext_proc failed", "details", ir.GetDetails(), "failure_mode_allow", cfg.failureModeAllow)
	if cfg.failureModeAllow {
		s.p.stats.failureModeAllowed.Add(1)
		return body, true
	}
	s.sendImmediateResponseWith(ir, cfg.rules)
	return nil, false
}

func grpcErrorReply(cfg *upstreamExtProcConfig, err error) *extprocsvc.ImmediateResponse {
	st := status.Convert(err)
	return &extprocsvc.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(cfg.statusOnError)},
		Details: fmt.Sprintf("ext_proc_error_gRPC_error_%d{%s}", st.Code(), st.Message()),
	}
}
