package extproc

import (
	"net/http"
	"strconv"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/catalog"
)

// The response phases of the router filter's stream: the final attempt's (or Envoy's own)
// response headers pick how the body is answered, then each body message is answered.

func (x *exchange) onResponseHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	x.syncAttempt()
	hm := h.GetHeaders()
	x.status, _ = strconv.Atoi(header(hm, ":status"))
	var m mutation
	setRequestIDHeaders(&m, x.requestID)
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
	ctype := header(hm, "content-type")
	ok := x.status >= 200 && x.status < 300 && x.req != nil
	switch {
	case x.ep.kind == routeManagement && !strings.HasPrefix(ctype, "text/plain"):
		// The management API's own answer (JSON or CSV) passes unchanged, streamed so that
		// exports need not fit in a buffer. Envoy's plain-text local replies are rewritten.
		x.respond = x.relay
		return streamResponseBody(&extprocv3.CommonResponse{HeaderMutation: m.proto()})
	case ok && x.req.stream && strings.HasPrefix(ctype, "text/event-stream"):
		// Envoy decides whether to drop content-length when it sends these headers, with the mode
		// then in force (BUFFERED), so switching to STREAMED must remove it here.
		x.respond = x.answerStream
		x.proc = newStreamProcessor(x.req, x.provider, x.served().ID)
		m.Remove("content-length")
		return streamResponseBody(&extprocv3.CommonResponse{HeaderMutation: m.proto()})
	case !ok && h.GetEndOfStream():
		// An error without a body: create one in the client's shape.
		e := x.errorFor(nil)
		x.endUnsettled(e)
		body := x.errorBody(e)
		x.errorHeaders(&m, e, len(body))
		return responseHeadersReply(&extprocv3.CommonResponse{
			Status:         extprocv3.CommonResponse_CONTINUE_AND_REPLACE,
			HeaderMutation: m.proto(),
			BodyMutation:   replaceBody(body),
		}, x.tokenMetadata(0, 0))
	case ok && x.req.count != nil:
		// A count (the provider's own, or the estimate) goes back as it came: same protocol,
		// nothing to settle, no tokens for the quotas.
		x.respond = x.relayCount
	case ok:
		x.respond = x.answerBuffered
	default:
		x.respond = x.answerError
	}
	return responseHeadersReply(&extprocv3.CommonResponse{HeaderMutation: m.proto()}, nil)
}

func (x *exchange) onResponseBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if x.respond == nil {
		// Envoy sends the body only after the headers; a body without them is relayed untouched.
		return x.relay(b)
	}
	return x.respond(b)
}

// relay passes a response body through unchanged.
func (x *exchange) relay(*extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	return responseBodyReply(nil, nil)
}

// relayCount passes a token count through, with its length restated.
func (x *exchange) relayCount(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	var m mutation
	m.SetContentLength(len(b.GetBody()))
	return x.bufferedReply(&m, b.GetBody(), 0, 0)
}

// answerBuffered translates a provider's whole successful answer, meters and settles it.
func (x *exchange) answerBuffered(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	body := b.GetBody()
	var m mutation
	translated, usage, finish, err := translateResponse(x.req, x.provider, body, x.served().ID)
	if err != nil {
		x.log().Warn("provider sent a malformed response", "err", err, "provider", x.backend.Provider)
		e := apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider sent a malformed response")
		out := x.errorBody(e)
		x.errorHeaders(&m, e, len(out))
		x.release()
		return x.bufferedReply(&m, out, 0, 0)
	}
	m.SetContentLength(len(translated))
	x.firstByte = x.s.now()
	if promptTokens(usage)+completionTokens(usage) == 0 || negative(usage) {
		// No usage (no chat prompt is zero tokens), or none usable: estimated as a cut stream
		// is, from the response's bytes, never free.
		x.log().Warn("provider usage anomaly", "anomalies", []string{"response without usable usage"}, "provider", x.backend.Provider)
		usage = estimate(billing.Usage{}, false, int64(len(body)), requestBounds(x.served(), x.req.pivot))
	}
	usage = x.settle(usage, finish, false)
	return x.bufferedReply(&m, translated, promptTokens(usage), completionTokens(usage))
}

// answerError rewrites an error answer (a provider's, or Envoy's own local reply) into the
// client's protocol.
func (x *exchange) answerError(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	var m mutation
	e := x.errorFor(b.GetBody())
	out := x.errorBody(e)
	x.errorHeaders(&m, e, len(out))
	if x.req != nil {
		x.log().Info("upstream error", "status", x.status, "code", e.Code, "provider", x.backend.Provider)
	}
	x.endUnsettled(e)
	return x.bufferedReply(&m, out, 0, 0)
}

// bufferedReply replaces a buffered response body with out, its headers mutated by m (Envoy
// still holds them), with the token counts for the ratelimit filter.
func (x *exchange) bufferedReply(m *mutation, out []byte, in, outTokens int64) *extprocv3.ProcessingResponse {
	return responseBodyReply(&extprocv3.CommonResponse{HeaderMutation: m.proto(), BodyMutation: replaceBody(out)},
		x.tokenMetadata(in, outTokens))
}

// answerStream translates one chunk of a provider's stream, carrying the running token total.
func (x *exchange) answerStream(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
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
	// Every reply carries the running token total: Envoy's ratelimit filter charges token quotas
	// (apply_on_stream_done) with the last value it saw, so a stream the client abandons counts.
	var md *structpb.Struct
	if eos || x.streamFailed {
		u := x.settleStream()
		md = x.tokenMetadata(promptTokens(u), completionTokens(u))
	} else {
		u := x.runningUsage()
		md = x.runningTotal(promptTokens(u) + completionTokens(u))
	}
	return responseBodyReply(&extprocv3.CommonResponse{BodyMutation: replaceBody(out)}, md)
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
