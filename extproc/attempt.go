package extproc

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/ledger"
)

// Retries and fallback: the router filter's exchange admits the request but never translates it;
// Envoy's router picks a backend for each attempt (priority levels, retries), and an ext_proc
// filter in the model cluster's upstream filter chain asks this server, once per attempt, to turn
// the original client request into the request of the backend the attempt reached.

// isAttempt reports whether req opens an upstream-filter stream: request headers that carry the
// upstream host's metadata, which only an upstream filter can see.
func isAttempt(req *extprocv3.ProcessingRequest) bool {
	h := req.GetRequestHeaders()
	if h == nil {
		return false
	}
	_, ok := attemptBackendKey(req)
	return ok
}

// attemptBackendKey finds the backend the attempt reached (the endpoint's
// filter_metadata.tollgate.backend) in the request's attributes: the upstream filter's
// contract.UpstreamBackendAttribute, a string.
func attemptBackendKey(req *extprocv3.ProcessingRequest) (string, bool) {
	b := req.GetAttributes()[contract.ExtProcAttributesKey].GetFields()[contract.UpstreamBackendAttribute].GetStringValue()
	return b, b != ""
}

// register makes x reachable by its attempts; finish unregisters it.
func (s *Server) register(x *exchange) {
	s.pendingMu.Lock()
	s.pending[x.requestID] = x
	s.pendingMu.Unlock()
}

func (s *Server) unregister(x *exchange) {
	s.pendingMu.Lock()
	delete(s.pending, x.requestID)
	s.pendingMu.Unlock()
}

func (s *Server) lookupPending(id string) *exchange {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	return s.pending[id]
}

// attemptRequestID is the gateway's id of the request an attempt belongs to. The router
// filter's reply wrote it into the request's dynamic metadata, which Envoy shares with the
// cluster's upstream filters and forwards to their ext_proc stream (metadata_options
// forwarding_namespaces): a client cannot set dynamic metadata, and nothing travels to the
// provider for it.
func attemptRequestID(req *extprocv3.ProcessingRequest) string {
	return req.GetMetadataContext().GetFilterMetadata()[contract.MetadataNamespace].GetFields()[contract.RequestIDKey].GetStringValue()
}

// envoyRequestID is Envoy's own id of the HTTP request (the request.id attribute, which both
// filters request), or "" when the message does not carry it. Envoy sends attributes only on
// the first message of each direction.
func envoyRequestID(req *extprocv3.ProcessingRequest) string {
	return req.GetAttributes()[contract.ExtProcAttributesKey].GetFields()[contract.RequestIDAttribute].GetStringValue()
}

// answerAttempt translates the original client request for the backend one attempt reached. The
// request is always rebuilt from the client's, never from a previous attempt's, and every header
// an attempt owns is reset: Envoy hands a retry the header map the previous attempt's filters left
// (router.cc doRetry), but a fresh copy of the buffered client body.
//
// An attempt is answered only for a request that the same authenticated peer opened, and, when
// Envoy names the HTTP request, only for that request: a caller that learnt a request id cannot
// replay it on a stream of its own to read the provider credential and the prompt.
//
// The returned done records the attempt's outcome (its status, 0 for none) once known.
func (s *Server) answerAttempt(ctx context.Context, req *extprocv3.ProcessingRequest) (resp *extprocv3.ProcessingResponse, done func(status int)) {
	done = func(int) {}
	x := s.lookupPending(attemptRequestID(req))
	if x == nil {
		return attemptFailure("the request this attempt belongs to is unknown to this extproc (is it a sidecar of this Envoy?)"), done
	}
	if peer := s.peerIdentity(ctx); peer != x.peer {
		x.log().Warn("attempt from another peer refused", "peer", peer, "want_peer", x.peer)
		return attemptFailure("the request this attempt belongs to is unknown to this extproc (is it a sidecar of this Envoy?)"), done
	}
	if id := envoyRequestID(req); id != "" && x.envoyID != "" && id != x.envoyID {
		x.log().Warn("attempt for another HTTP request refused", "envoy_request_id", id)
		return attemptFailure("the request this attempt belongs to is unknown to this extproc (is it a sidecar of this Envoy?)"), done
	}
	key, _ := attemptBackendKey(req)
	var backend *catalog.Backend
	for _, b := range x.route.Chain {
		if b.Key() == key {
			backend = b
			break
		}
	}
	if backend == nil {
		return attemptFailure("the attempt reached backend " + key + ", which the catalog does not route this request to"), done
	}
	var path string
	var body []byte
	var err error
	if x.req.count != nil {
		// A count is free: no hold. A backend without the endpoint gets no request at all.
		var forward bool
		path, body, forward, err = countUpstream(x.req, backend)
		estimated := !forward && err == nil
		x.attemptMu.Lock()
		x.countEstimated = estimated
		x.attemptMu.Unlock()
		if estimated {
			return countEstimateReply(x.req, backend), done
		}
	} else {
		if e := x.holdForAttempt(ctx); e != nil {
			return holdFailure(e), done
		}
		path, body, err = upstreamRequest(x.req, backend, backend.ModelRef())
	}
	if err != nil {
		x.log().Error("build upstream request", "err", err, "backend", key)
		return attemptFailure("the request cannot be translated for backend " + key), done
	}
	provider := backend.ProviderRef()
	var m mutation
	m.Set(":path", path)
	m.Set("content-type", "application/json")
	setUpstreamCredential(&m, provider)
	providerFor(backend).headers(&m, x.req)
	// Whatever else the client sent, the gateway's routing headers, and whatever a previous
	// attempt set for its provider go no further.
	removeUnforwarded(req.GetRequestHeaders().GetHeaders(), &m)
	done = x.attempted(backend)
	// Envoy drops content-length when a headers reply replaces the body; the cluster's
	// header_mutation filter sets it again from this metadata.
	return requestHeadersReply(&extprocv3.CommonResponse{
		Status:         extprocv3.CommonResponse_CONTINUE_AND_REPLACE,
		HeaderMutation: m.proto(),
		BodyMutation:   replaceBody(body),
	}, &structpb.Struct{Fields: map[string]*structpb.Value{contract.MetadataNamespace: structpb.NewStructValue(&structpb.Struct{
		Fields: map[string]*structpb.Value{contract.ContentLengthKey: structpb.NewStringValue(strconv.Itoa(len(body)))},
	})}}), done
}

// attemptFailure ends an attempt with a 502 that the router filter's exchange rewrites into the
// client's protocol on the way back.
func attemptFailure(msg string) *extprocv3.ProcessingResponse {
	e := apierror.New(http.StatusBadGateway, apierror.CodeNoProviderAvailable, "%s", msg)
	var m mutation
	m.Set("content-type", "application/json")
	return immediateReply(e.Status, &m, clientFor(protoOpenAI).errorBody(e), "", nil)
}

// holdForAttempt places the request's credit hold when its first attempt starts: only then has
// Envoy's ratelimit filter, which runs after the router filter's ext_proc, admitted the request,
// so a request over its quota never costs a hold. Later attempts (retries, fallbacks) reuse the
// first one's hold, or its failure. attemptMu is held across the ledger call: the router filter
// reads the hold only after taking it (syncAttempt, finish), and a request that is already over
// places none.
func (x *exchange) holdForAttempt(ctx context.Context) *apierror.Error {
	x.attemptMu.Lock()
	defer x.attemptMu.Unlock()
	switch {
	case x.finished:
		return apierror.New(http.StatusServiceUnavailable, apierror.CodeServiceUnavailable, "The request ended before it could be sent")
	case x.holdTried:
		return x.holdErr
	}
	x.holdTried = true
	x.holdErr = x.hold(ctx)
	return x.holdErr
}

// holdFailure ends an attempt whose request could not hold credit. Its status is one Envoy's
// retry policy never retries (402: not 5xx, not a retriable status code); the router filter's
// exchange answers the client with the hold's own error (exchange.errorFor), not this body.
func holdFailure(e *apierror.Error) *extprocv3.ProcessingResponse {
	var m mutation
	m.Set("content-type", "application/json")
	return immediateReply(http.StatusPaymentRequired, &m, clientFor(protoOpenAI).errorBody(e), "tollgate_hold_"+e.Code, nil)
}

// attempted records that an attempt went to b and returns the function that records its outcome.
// It runs on the attempt's stream, concurrently with the router filter's.
func (x *exchange) attempted(b *catalog.Backend) func(status int) {
	x.attemptMu.Lock()
	defer x.attemptMu.Unlock()
	x.lastAttempt = b
	x.attempts = append(x.attempts, ledger.Attempt{Backend: b.Key()})
	i, start := len(x.attempts)-1, x.s.now()
	recorded := false
	return func(status int) {
		x.attemptMu.Lock()
		defer x.attemptMu.Unlock()
		if recorded {
			return // the stream's end after its response headers changes nothing
		}
		recorded = true
		x.attempts[i].Status = status
		x.attempts[i].LatencyMs = x.s.now().Sub(start).Milliseconds()
	}
}

// syncAttempt adopts the backend of the last attempt, whose response is the one the router
// filter now sees (only the final attempt's response reaches it).
//
// Taking attemptMu also makes what the attempts wrote under it (the hold's fields, set by
// holdForAttempt) visible to the router filter's goroutine from here on.
func (x *exchange) syncAttempt() {
	x.attemptMu.Lock()
	defer x.attemptMu.Unlock()
	if x.lastAttempt != nil {
		x.backend, x.provider = x.lastAttempt, providerFor(x.lastAttempt)
	}
}

// serveAttempt serves one upstream-filter stream: the attempt's request headers, then, when the
// filter sends them, the attempt's response headers, whose status is recorded.
func (s *Server) serveAttempt(stream extprocv3.ExternalProcessor_ProcessServer, first *extprocv3.ProcessingRequest) error {
	resp, done := s.answerAttempt(stream.Context(), first)
	if err := stream.Send(resp); err != nil {
		done(0)
		return fmt.Errorf("send: %w", err)
	}
	if resp.GetImmediateResponse() != nil {
		return nil
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			done(0) // reset, timed out or closed before any response: no status
			return nil
		}
		rh := req.GetResponseHeaders()
		if rh == nil {
			done(0)
			return status.Errorf(codes.InvalidArgument, "unexpected ext_proc message %T on an upstream attempt", req.GetRequest())
		}
		code, _ := strconv.Atoi(header(rh.GetHeaders(), ":status"))
		done(code)
		if err := stream.Send(responseHeadersReply(&extprocv3.CommonResponse{HeaderMutation: providerAccountHeaders(rh.GetHeaders())}, nil)); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
}

// providerAccountHeaders removes, from an attempt's response, the headers that describe the
// operator's account with the provider: its rate limits (x-ratelimit-*, anthropic-ratelimit-*),
// organisation and project, and cookies. Here, before the downstream filters, they can be told
// apart from the gateway's own x-ratelimit-* headers, which Envoy's ratelimit filter adds later.
func providerAccountHeaders(hm *corev3.HeaderMap) *extprocv3.HeaderMutation {
	var m mutation
	for _, h := range hm.GetHeaders() {
		k := h.GetKey()
		switch {
		case strings.HasPrefix(k, "x-ratelimit-"), strings.HasPrefix(k, "anthropic-ratelimit-"),
			k == "openai-organization", k == "openai-project", k == "anthropic-organization-id", k == "set-cookie":
			if !slices.Contains(m.remove, k) {
				m.Remove(k)
			}
		}
	}
	return m.proto()
}
