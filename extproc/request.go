package extproc

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/auth"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/params"
)

// The request phases of the router filter's stream: request headers (route, authenticate,
// answer what needs no upstream) and the buffered request body (parse, validate, resolve,
// check, route for the attempts).

func (x *exchange) onRequestHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	hm := h.GetHeaders()
	method, path := header(hm, ":method"), header(hm, ":path")
	x.ep = classifyListing(classify(path), header(hm, "anthropic-version") != "")

	var m mutation
	m.Remove(clientInternalHeaders(hm)...)
	for _, name := range []string{"anthropic-version", "anthropic-beta"} {
		// Repeated headers are one list (RFC 9110 5.3): every value is checked, not the first.
		if v := headerValues(hm, name); v != "" {
			if x.clientHeaders == nil {
				x.clientHeaders = map[string]string{}
			}
			x.clientHeaders[name] = v
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
	return requestHeadersReply(&extprocv3.CommonResponse{HeaderMutation: m.proto()}, nil)
}

func (x *exchange) onRequestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	body := b.GetBody()
	if len(body) > x.s.cfg.MaxBodyBytes {
		return x.reject(apierror.New(http.StatusRequestEntityTooLarge, apierror.CodeRequestTooLarge, "Request body is larger than %d bytes", x.s.cfg.MaxBodyBytes))
	}
	req, perr := parseClient(x.ep, body, x.clientHeaders)
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

// routeForAttempts answers the request body: the router filter only routes (the cluster header,
// which each attempt removes again, and the dynamic metadata that carries the rate-limit
// descriptors and the request id the attempts look the request up by) and keeps the client's
// body, of which Envoy gives every attempt a fresh copy.
func (x *exchange) routeForAttempts() *extprocv3.ProcessingResponse {
	x.s.register(x)
	var m mutation
	m.Set(contract.ClusterHeader, x.route.Cluster)
	return requestBodyReply(&extprocv3.CommonResponse{HeaderMutation: m.proto(), ClearRouteCache: true},
		x.metadata(map[string]any{
			contract.RequestIDKey: x.requestID,
			contract.OrgIDKey:     x.principal.OrgID,
			contract.KeyIDKey:     x.principal.KeyID,
			contract.ModelKey:     x.route.Model.ID,
		}))
}
