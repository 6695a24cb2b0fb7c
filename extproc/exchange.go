package extproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/auth"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/params"
)

// exchange is the state of one HTTP request across its ext_proc messages. It is owned by the
// stream's goroutine.
type exchange struct {
	s         *Server
	requestID string
	// envoyID is Envoy's id of the HTTP request (the request.id attribute) and peer the
	// authenticated caller of the router filter's stream: an attempt must match both.
	envoyID   string
	peer      string
	start     time.Time
	ep        endpoint
	principal ledger.Principal
	// anthropicHeaders are the client's anthropic-version and anthropic-beta, which an attempt
	// that reaches an Anthropic provider restores (an earlier attempt may have removed them).
	anthropicHeaders map[string]string

	// Set once the request is admitted and sent upstream.
	req      *clientRequest
	route    catalog.Route
	backend  *catalog.Backend
	provider providerCodec
	// The attempt streams record the backends they reached here.
	attemptMu   sync.Mutex
	lastAttempt *catalog.Backend
	attempts    []ledger.Attempt
	// The first attempt places the hold (holdForAttempt), under
	// attemptMu; holdTried says it did, holdErr is its failure, which the router filter answers
	// with, and finished stops an attempt from holding for a request that is already over.
	holdTried bool
	holdErr   *apierror.Error
	finished  bool
	// countEstimated is set when a token count's last attempt was answered with the gateway's
	// estimate rather than forwarded (counttokens.go).
	countEstimated bool
	// held is set while the request holds credit that neither settlement nor release has
	// returned; holdPlaced and heldMicros say that a hold was placed and for how much, which
	// caps the settlement.
	held       bool
	holdPlaced bool
	heldMicros int64

	status    int
	streaming bool
	proc      streamProcessor
	// passthrough is set for responses relayed unchanged (the management API's).
	passthrough bool
	// gatewayLimited is set when the response is the ratelimit filter's 429: the gateway's own
	// quota, not a provider's.
	gatewayLimited bool
	// streamFailed is set once the provider's stream proved malformed and the client's was ended.
	streamFailed bool
	firstByte    time.Time
	settled      bool
	// unansweredStatus is set when the request is charged without a response: why it had none
	// (see chargeUnanswered).
	unansweredStatus int
	// runningMD is the streamed chunks' token metadata, reused (runningTotal).
	runningMD          *structpb.Struct
	runningTotalTokens *structpb.Value_NumberValue
	// closed is set once an ImmediateResponse has ended the exchange.
	closed bool
}

func newExchange(s *Server) *exchange {
	return &exchange{s: s, start: s.now(), requestID: newRequestID()}
}

// served is the model that serves the request: the requested one, or the fallback whose backend
// was chosen when the requested model has none in the region.
func (x *exchange) served() *catalog.Model { return x.backend.ModelRef() }

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

func (x *exchange) log() *slog.Logger { return x.s.log.With("request_id", x.requestID) }

// handle answers one message. It returns nil only for a message it cannot answer.
func (x *exchange) handle(ctx context.Context, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return x.onRequestHeaders(ctx, r.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return x.onRequestBody(r.RequestBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return x.onResponseHeaders(r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return x.onResponseBody(r.ResponseBody)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return nil
}

func (x *exchange) onRequestHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	hm := h.GetHeaders()
	method, path := header(hm, ":method"), header(hm, ":path")
	x.ep = classifyListing(classify(path), header(hm, "anthropic-version") != "")

	var m mutation
	m.Remove(clientInternalHeaders(hm)...)
	for _, name := range []string{"anthropic-version", "anthropic-beta"} {
		v := header(hm, name)
		if name == "anthropic-beta" {
			// Repeated headers are one list (RFC 9110 5.3): every value is checked, not the first.
			v = headerValues(hm, name)
		}
		if v != "" {
			if x.anthropicHeaders == nil {
				x.anthropicHeaders = map[string]string{}
			}
			x.anthropicHeaders[name] = v
		}
	}

	if x.ep.kind == routeUnknown {
		return x.reject(apierror.New(http.StatusNotFound, apierror.CodeNotFound, "No route for %s %s", method, strings.SplitN(path, "?", 2)[0]))
	}
	if method != x.ep.method {
		if x.ep.kind == routeModel && strings.Contains(x.ep.modelID, ":") {
			// A Gemini method this gateway does not serve (models/x:embedContent), not a
			// model retrieval sent with the wrong method: only Gemini posts to a model path.
			x.ep.proto = protoGemini
			return x.reject(apierror.New(http.StatusNotFound, apierror.CodeNotFound, "No route for %s %s", method, strings.SplitN(path, "?", 2)[0]))
		}
		return x.reject(apierror.New(http.StatusMethodNotAllowed, apierror.CodeInvalidParams, "Method %s is not allowed here; use %s", method, x.ep.method))
	}
	p, err := x.s.auth.Authenticate(ctx, credential(hm))
	switch {
	case errors.Is(err, auth.ErrUnknownKey):
		return x.reject(apierror.New(http.StatusUnauthorized, apierror.CodeAuthInvalid, "Invalid API key provided"))
	case err != nil:
		x.log().Error("authenticate", "err", err)
		return x.reject(apierror.New(http.StatusServiceUnavailable, apierror.CodeServiceUnavailable, "The gateway cannot verify API keys right now; retry shortly"))
	}
	x.principal = p
	if !p.GatewayEnabled {
		// Seed 000: an organisation without gateway access gets 403 on every request, model
		// listings and the management API included.
		return x.reject(apierror.New(http.StatusForbidden, apierror.CodeGatewayDisabled, "API Gateway access is not enabled for your organization"))
	}

	if x.ep.kind == routeManagement {
		return x.routeManagement(&m)
	}
	if p.Kind == ledger.KeyManagement {
		// Management keys read balances, usage and request logs; they are not meant for scripts
		// that spend credit, and listing models is part of the model API.
		return x.reject(apierror.New(http.StatusForbidden, apierror.CodeAccessDenied, "This is a management key; the model API needs a standard key"))
	}
	if x.ep.kind == routeModels || x.ep.kind == routeModel {
		return x.answerModels()
	}
	if h.GetEndOfStream() {
		return x.reject(apierror.InvalidParam("", "Request body is required"))
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: m.proto()}},
	}}
}

func (x *exchange) onRequestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	body := b.GetBody()
	if len(body) > x.s.cfg.MaxBodyBytes {
		return x.reject(apierror.New(http.StatusRequestEntityTooLarge, apierror.CodeRequestTooLarge, "Request body is larger than %d bytes", x.s.cfg.MaxBodyBytes))
	}
	req, perr := parseClient(x.ep, body)
	if perr != nil {
		return x.reject(perr)
	}
	if err := x.checkOrg(); err != nil {
		return x.reject(err)
	}
	route, rerr := x.resolve(req.model, clientFor(req.proto).endpoint())
	if rerr != nil {
		return x.reject(rerr)
	}
	if err := x.checkParams(req, route); err != nil {
		return x.reject(err)
	}
	backend := route.Backends[0]
	x.req, x.route, x.backend, x.provider = req, route, backend, providerFor(backend)
	// The router filter only routes; each attempt's upstream filter translates the request for
	// the backend it reached (attempt.go). The hold waits for the first attempt
	// (holdForAttempt): Envoy's ratelimit filter, which runs after this one, must turn away a
	// request over its quota before it costs a hold.
	return x.routeForAttempts()
}

// checkOrg refuses organisations that may not spend right now; seed 000 checks the subscription
// on every model request. (Gateway access was checked with the key.)
func (x *exchange) checkOrg() *apierror.Error {
	if !x.principal.SubscriptionActive {
		return apierror.New(http.StatusPaymentRequired, apierror.CodeSubscriptionRequired, "Your organization has no active subscription")
	}
	return nil
}

// checkParams refuses the governed parameters (package params) and anthropic-beta values that
// some model able to serve the route does not allow: a fallback receives the same request, so
// it must allow them too. The anthropic-beta value kept for the attempts is the checked one.
func (x *exchange) checkParams(req *clientRequest, route catalog.Route) *apierror.Error {
	beta := x.anthropicHeaders["anthropic-beta"]
	var seen []*catalog.Model
	for _, m := range append([]*catalog.Model{route.Model}, chainModels(route)...) {
		if slices.Contains(seen, m) {
			continue
		}
		seen = append(seen, m)
		name := req.model
		if m != route.Model {
			name += " (through its fallback " + m.ID + ")"
		}
		if err := params.Check(req.governed, m.AllowedParams, name); err != nil {
			return err
		}
		if beta != "" {
			checked, err := anthropic.AllowedBetas(beta, m.AllowedParams, name)
			if err != nil {
				return err
			}
			x.anthropicHeaders["anthropic-beta"] = checked
		}
	}
	return nil
}

func chainModels(route catalog.Route) []*catalog.Model {
	out := make([]*catalog.Model, 0, len(route.Chain))
	for _, b := range route.Chain {
		if m := b.ModelRef(); m != nil {
			out = append(out, m)
		}
	}
	return out
}

// resolve finds the route for a requested model and refuses models the caller cannot use
// through this endpoint.
func (x *exchange) resolve(requested, endpoint string) (catalog.Route, *apierror.Error) {
	route, err := x.s.catalog.Load().Resolve(requested)
	switch {
	case errors.Is(err, catalog.ErrUnknownModel):
		e := apierror.New(http.StatusNotFound, apierror.CodeInvalidModel, "Model %s is not valid", requested)
		e.Param = "model"
		return route, e
	case errors.Is(err, catalog.ErrNotAvailable):
		e := apierror.New(http.StatusNotFound, apierror.CodeModelNotAvailable, "Model %s is not available: no backend in the requested region can serve it", requested)
		e.Param = "model"
		return route, e
	case err != nil:
		return route, apierror.As(err)
	}
	switch route.Model.Lifecycle {
	case catalog.LifecycleSunset, catalog.LifecycleUnavailable:
		msg := "Model " + requested + " is no longer available"
		if r := route.Model.Replacement; r != "" {
			msg += "; use " + r + " instead"
		}
		e := apierror.New(http.StatusNotFound, apierror.CodeModelNotAvailable, "%s", msg)
		e.Param = "model"
		return route, e
	}
	if !x.principal.Allows(route.Model.ID) {
		// Seed 000: models outside the org's plan are "not found or disabled".
		e := apierror.New(http.StatusNotFound, apierror.CodeModelNotAvailable, "Model %s is not available in your organization's plan", requested)
		e.Param = "model"
		return route, e
	}
	if !route.Model.Supports(endpoint) {
		e := apierror.New(http.StatusNotFound, apierror.CodeModelNotSupported, "Model %s does not support this endpoint", requested)
		e.Param = "model"
		return route, e
	}
	return route, nil
}

func (x *exchange) onResponseHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	x.syncAttempt()
	hm := h.GetHeaders()
	x.status, _ = strconv.Atoi(header(hm, ":status"))
	var m mutation
	m.Set("x-request-id", x.requestID)
	m.Set("request-id", x.requestID)
	m.Set(headerRequestID, x.requestID)
	// Headers that identify the operator's upstream account, or set its cookies, stay here.
	m.Remove("openai-organization", "openai-project", "anthropic-organization-id", "set-cookie")
	x.gatewayLimited = header(hm, "x-envoy-ratelimited") == "true"
	preferLastRateLimitHeaders(hm, &m)
	if x.req != nil {
		m.Set("x-tollgate-served-model", x.served().ID)
	}
	if x.req != nil && x.req.count != nil {
		// Only the gateway says a count is estimated; a provider's header of that name is not.
		x.attemptMu.Lock()
		estimated := x.countEstimated
		x.attemptMu.Unlock()
		if estimated {
			m.Set(headerEstimated, "true")
		} else {
			m.Remove(headerEstimated)
		}
	}
	if x.req != nil && x.route.Model.Lifecycle == catalog.LifecycleDeprecated {
		m.Set("deprecation", "true")
		if x.route.Model.Sunset != "" {
			m.Set("sunset", x.route.Model.Sunset)
		}
	}
	resp := &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{}}
	if x.ep.kind == routeManagement && !strings.HasPrefix(header(hm, "content-type"), "text/plain") {
		// The management API's own answer (JSON or CSV) passes unchanged, streamed so that
		// exports need not fit in a buffer. Envoy's plain-text local replies are rewritten below.
		x.passthrough = true
		resp.Response.HeaderMutation = m.proto()
		return streamResponseBody(resp)
	}

	ok := x.status >= 200 && x.status < 300 && x.req != nil
	switch {
	case ok && x.req.stream && strings.HasPrefix(header(hm, "content-type"), "text/event-stream"):
		// Envoy decides whether to drop content-length when it sends these headers, with the mode
		// then in force (BUFFERED), so switching to STREAMED must remove it here.
		x.streaming = true
		x.proc = newStreamProcessor(x.req, x.provider, x.served().ID)
		m.Remove("content-length")
		resp.Response.HeaderMutation = m.proto()
		return streamResponseBody(resp)
	case !ok && h.GetEndOfStream():
		// An error without a body: create one in the client's shape.
		e := x.errorFor(nil)
		x.endUnsettled(e)
		x.errorHeaders(&m, e, len(x.errorBody(e)))
		resp.Response.HeaderMutation = m.proto()
		resp.Response.Status = extprocv3.CommonResponse_CONTINUE_AND_REPLACE
		resp.Response.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: x.errorBody(e)}}
		return &extprocv3.ProcessingResponse{
			Response:        &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: resp},
			DynamicMetadata: x.tokenMetadata(0, 0),
		}
	}
	resp.Response.HeaderMutation = m.proto()
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: resp}}
}

func (x *exchange) onResponseBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if x.passthrough {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	}
	if x.streaming {
		return x.onStreamChunk(b)
	}
	body := b.GetBody()
	var m mutation
	var out []byte
	var inTokens, outTokens int64
	if x.status >= 200 && x.status < 300 && x.req != nil && x.req.count != nil {
		// A count (the provider's own, or the estimate) goes back as it came: same protocol,
		// nothing to settle, no tokens for the quotas.
		out = body
		m.SetContentLength(len(out))
	} else if x.status >= 200 && x.status < 300 && x.req != nil {
		translated, usage, finish, err := translateResponse(x.req, x.provider, body, x.served().ID)
		if err == nil {
			out = translated
			m.SetContentLength(len(out))
			x.firstByte = x.s.now()
			if promptTokens(usage)+completionTokens(usage) == 0 || negative(usage) {
				// No usage (no chat prompt is zero tokens), or none usable: estimated as a cut
				// stream is, from the response's bytes, never free.
				x.log().Warn("provider usage anomaly", "anomalies", []string{"response without usable usage"}, "provider", x.backend.Provider)
				usage = estimate(billing.Usage{}, false, int64(len(body)), requestBounds(x.served(), x.req.pivot))
			}
			usage = x.settle(usage, finish, false)
			inTokens, outTokens = promptTokens(usage), completionTokens(usage)
		} else {
			x.log().Warn("provider sent a malformed response", "err", err, "provider", x.backend.Provider)
			e := apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider sent a malformed response")
			out = x.errorBody(e)
			x.errorHeaders(&m, e, len(out))
			x.release()
		}
	} else {
		e := x.errorFor(body)
		out = x.errorBody(e)
		x.errorHeaders(&m, e, len(out))
		if x.req != nil {
			x.log().Info("upstream error", "status", x.status, "code", e.Code, "provider", x.backend.Provider)
		}
		x.endUnsettled(e)
	}
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation: m.proto(),
			BodyMutation:   &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}},
		}}},
		DynamicMetadata: x.tokenMetadata(inTokens, outTokens),
	}
}

func (x *exchange) onStreamChunk(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	eos := b.GetEndOfStream()
	var out []byte
	if !x.streamFailed {
		var err error
		out, err = x.proc.Feed(b.GetBody(), eos)
		if err != nil {
			// A broken or failed provider stream cannot be resumed: end the client's stream with
			// an error event in its protocol, drop whatever the provider sends after it, and
			// charge what was delivered.
			e, isAPI := err.(*apierror.Error)
			if !isAPI {
				x.log().Warn("provider stream is malformed", "err", err, "provider", x.backend.Provider)
				e = apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider sent a malformed stream")
			}
			out = clientFor(x.req.proto).streamError(out, e)
			x.streamFailed = true
		}
	}
	if len(out) > 0 && x.firstByte.IsZero() {
		x.firstByte = x.s.now()
	}
	resp := &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}},
		}}},
	}
	// Every reply carries the running token total: Envoy's ratelimit filter charges token quotas
	// (apply_on_stream_done) with the last value it saw, so a stream the client abandons counts.
	if eos || x.streamFailed {
		u := x.settleStream()
		resp.DynamicMetadata = x.tokenMetadata(promptTokens(u), completionTokens(u))
	} else {
		u := x.runningUsage()
		resp.DynamicMetadata = x.runningTotal(promptTokens(u) + completionTokens(u))
	}
	return resp
}

// errorFor turns an error response (from the provider, or Envoy's own local reply) into the
// gateway's error.
func (x *exchange) errorFor(body []byte) *apierror.Error {
	if x.gatewayLimited {
		return quotaError(body)
	}
	if x.holdErr != nil {
		// The first attempt could not hold credit; its local reply only carried the news.
		return x.holdErr
	}
	if x.req == nil || !x.providerAnswered() {
		// No provider's response reached Envoy's router: this is Envoy's local reply (413 while
		// buffering, 500 from a filter failing closed, 503 when no upstream could be reached
		// through every retry, 504 when the request ran out of time).
		return apierror.FromLocalReply(x.status)
	}
	return x.provider.providerError(x.status, body)
}

// providerAnswered reports whether the response the router filter sees is a provider's: the
// last attempt recorded this very status. An attempt records its response's status on its own
// stream before answering it, so before Envoy's router (and so this filter) can see it; an
// attempt that was reset, timed out or never connected records none, and then the response is
// Envoy's own reply, not the provider's.
func (x *exchange) providerAnswered() bool {
	x.attemptMu.Lock()
	defer x.attemptMu.Unlock()
	n := len(x.attempts)
	return n > 0 && x.attempts[n-1].Status == x.status
}

// errorBody renders e in the client's protocol (OpenAI's until the body told which).
func (x *exchange) errorBody(e *apierror.Error) []byte { return clientFor(x.ep.proto).errorBody(e) }

func (x *exchange) errorHeaders(m *mutation, e *apierror.Error, n int) {
	m.Set(":status", strconv.Itoa(e.Status))
	m.Set("content-type", "application/json")
	m.SetContentLength(n)
	for k, v := range e.Headers {
		m.Set(k, v)
	}
}

// reject ends the exchange with an ImmediateResponse in the client's protocol shape.
func (x *exchange) reject(e *apierror.Error) *extprocv3.ProcessingResponse {
	x.closed = true
	body := x.errorBody(e)
	var m mutation
	m.Set("content-type", "application/json")
	m.Set("x-request-id", x.requestID)
	m.Set("request-id", x.requestID)
	m.Set(headerRequestID, x.requestID)
	for k, v := range e.Headers {
		m.Set(k, v)
	}
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(e.Status)},
			Headers: m.proto(),
			Body:    body,
			Details: "tollgate_" + e.Code,
		}},
		DynamicMetadata: x.tokenMetadata(0, 0),
	}
}

// tokenMetadata is what Envoy's ratelimit filter reads after the response to charge token quotas.
// It is always set, zero on errors: a missing value would make hits_addend invalid (ai-gateway
// #1786).
func (x *exchange) tokenMetadata(in, out int64) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{contract.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{
		Fields: map[string]*structpb.Value{
			contract.InputTokensKey:  structpb.NewNumberValue(float64(in)),
			contract.OutputTokensKey: structpb.NewNumberValue(float64(out)),
			contract.TotalTokensKey:  structpb.NewNumberValue(float64(in + out)),
		},
	})}}
}

// runningTotal is the token metadata of a streamed chunk before the end: only total_tokens,
// the one value the ratelimit filter reads (hits_addend). It goes out with every chunk, so one
// message is built per stream and its number updated in place: the reply that carried it has
// been marshalled (stream.Send) before the next chunk is handled.
func (x *exchange) runningTotal(total int64) *structpb.Struct {
	if x.runningMD == nil {
		x.runningTotalTokens = &structpb.Value_NumberValue{}
		x.runningMD = &structpb.Struct{Fields: map[string]*structpb.Value{contract.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{
			Fields: map[string]*structpb.Value{contract.TotalTokensKey: {Kind: x.runningTotalTokens}},
		})}}
	}
	x.runningTotalTokens.NumberValue = float64(total)
	return x.runningMD
}

func (x *exchange) metadata(fields map[string]any) *structpb.Struct {
	inner, err := structpb.NewStruct(fields)
	if err != nil {
		x.log().Error("build dynamic metadata", "err", err)
		return nil
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{contract.MetadataNamespace: structpb.NewStructValue(inner)}}
}

// finish runs when the stream ends, however it ends. A stream the client abandoned is charged
// for what was delivered; a request that reached a provider and got no response is charged its
// input; only one that never left the gateway is released for free.
func (x *exchange) finish() {
	x.s.unregister(x)
	// An attempt may have placed the hold without the response ever coming back here.
	x.attemptMu.Lock()
	x.finished = true
	x.attemptMu.Unlock()
	switch {
	case x.streaming && !x.settled:
		x.settleStream()
	case x.held && !x.settled && x.reachedProvider():
		x.chargeInput()
	case x.held && !x.settled:
		x.release()
	}
}

// routeForAttempts answers the request body: the router filter only routes (the cluster header, which each attempt removes again, and the dynamic
// metadata that carries the rate-limit descriptors and the request id the attempts look the
// request up by) and keeps the client's body, of which Envoy gives every attempt a fresh copy.
func (x *exchange) routeForAttempts() *extprocv3.ProcessingResponse {
	x.s.register(x)
	var m mutation
	m.Set(contract.ClusterHeader, x.route.Cluster)
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation:  m.proto(),
			ClearRouteCache: true,
		}}},
		DynamicMetadata: x.metadata(map[string]any{
			contract.RequestIDKey: x.requestID,
			contract.OrgIDKey:     x.principal.OrgID,
			contract.KeyIDKey:     x.principal.KeyID,
			contract.ModelKey:     x.route.Model.ID,
		}),
	}
}

// streamResponseBody answers response headers and switches the response body to STREAMED.
// mode_override always copies both body modes (research/envoy.md 1.4); the request body is long
// gone, so its mode is restated unchanged.
func streamResponseBody(resp *extprocv3.HeadersResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: resp},
		ModeOverride: &filterv3.ProcessingMode{
			RequestBodyMode:  filterv3.ProcessingMode_BUFFERED,
			ResponseBodyMode: filterv3.ProcessingMode_STREAMED,
		},
	}
}
