package anthropic

import (
	"encoding/json"
	"net/http"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/sse"
)

// StatusOverloaded is Anthropic's "API temporarily overloaded" status (overloaded_error).
const StatusOverloaded = 529

// Anthropic error types (https://docs.claude.com/en/api/errors).
const (
	errInvalidRequest  = "invalid_request_error"
	errAuthentication  = "authentication_error"
	errBilling         = "billing_error"
	errPermission      = "permission_error"
	errNotFound        = "not_found_error"
	errRequestTooLarge = "request_too_large"
	errRateLimit       = "rate_limit_error"
	errAPI             = "api_error"
	errTimeout         = "timeout_error"
	errOverloaded      = "overloaded_error"
)

type errorBody struct {
	Type  string      `json:"type"` // "error"
	Error errorObject `json:"error"`
}

type errorObject struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// ErrorBody renders e in Anthropic's error shape, {"type":"error","error":{"type","message"}},
// with the type Anthropic's reference gives for e's status. The stable code is not part of the
// shape; the status and type carry the meaning SDKs act on.
func ErrorBody(e *apierror.Error) []byte {
	b, _ := json.Marshal(errorBody{Type: "error", Error: errorObject{Type: errorType(e), Message: e.Message}})
	return b
}

// StreamErrorEvent appends e as an `event: error` frame, the way Anthropic reports a failure
// after a stream has started.
func StreamErrorEvent(dst []byte, e *apierror.Error) []byte {
	return sse.AppendEvent(dst, sse.Event{Name: evError, Data: ErrorBody(e)})
}

// errorType maps a gateway error onto Anthropic's error types. 502 and 503 are api_error unless
// no provider could serve at all (no_provider_available, service_unavailable), which is what
// overloaded_error tells an Anthropic client: temporary, retry later.
func errorType(e *apierror.Error) string {
	switch e.Status {
	case http.StatusBadRequest:
		return errInvalidRequest
	case http.StatusUnauthorized:
		return errAuthentication
	case http.StatusPaymentRequired:
		return errBilling
	case http.StatusForbidden:
		return errPermission
	case http.StatusNotFound:
		return errNotFound
	case http.StatusRequestEntityTooLarge:
		return errRequestTooLarge
	case http.StatusTooManyRequests:
		return errRateLimit
	case http.StatusGatewayTimeout, apierror.StatusProviderTimeout:
		return errTimeout
	case http.StatusServiceUnavailable, StatusOverloaded:
		return errOverloaded
	}
	switch {
	case e.Code == apierror.CodeNoProviderAvailable:
		return errOverloaded
	case e.Status >= 500:
		return errAPI
	default:
		return errInvalidRequest // the reference: used for other 4xx too
	}
}

// ProviderError turns an error response from an Anthropic-kind provider into the gateway's
// error. A body in Anthropic's shape is the provider's own answer; apierror.FromProvider decides
// what of it the client may see: the redacted message of a 400, 404 or 422, the gateway's own
// words for everything else. 401, 402 and 403 concern the operator's key and account, not the
// client's, and become 502 provider_error; 5xx become 502 provider_error, and 529 (overloaded)
// 503 service_unavailable, which Anthropic clients see again as overloaded_error and every SDK
// retries. Anything else is Envoy's local reply and is reported by status.
func ProviderError(status int, body []byte) *apierror.Error {
	var b errorBody
	if json.Unmarshal(body, &b) != nil || b.Type != "error" || b.Error.Type == "" {
		if status == StatusOverloaded {
			return overloaded()
		}
		return apierror.FromStatus(status)
	}
	return providerError(status, b.Error.Type, b.Error.Message)
}

// providerError maps an Anthropic error of typ and message; status is the response's, or 0 for an
// error event inside a stream that began with 200, where the type alone tells what failed.
func providerError(status int, typ, message string) *apierror.Error {
	switch {
	case status == StatusOverloaded || typ == errOverloaded:
		return overloaded()
	case status == http.StatusPaymentRequired || typ == errBilling:
		return apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider refused the gateway's account")
	case status == http.StatusUnauthorized, status == http.StatusForbidden, typ == errAuthentication, typ == errPermission:
		return apierror.FromStatus(http.StatusUnauthorized) // the provider refused the gateway's credentials
	case status == http.StatusTooManyRequests || typ == errRateLimit:
		return apierror.FromStatus(http.StatusTooManyRequests)
	case status == http.StatusGatewayTimeout || typ == errTimeout:
		return apierror.FromStatus(http.StatusGatewayTimeout)
	case status >= 500 || status < 400 || typ == errAPI:
		return apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider failed")
	}
	return apierror.FromProvider(status, message, "")
}

func overloaded() *apierror.Error {
	return apierror.New(http.StatusServiceUnavailable, apierror.CodeServiceUnavailable, "The upstream provider is overloaded; retry later")
}
