// Package apierror holds the gateway's client-visible errors: an HTTP status, a stable code
// programs can rely on (docs/design.md section 4), and a message safe to show. Only the boundary that
// answers the client turns one into the client's protocol shape.
package apierror

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Stable codes (docs/design.md section 4).
const (
	CodeInvalidParams        = "invalid_params"
	CodeAuthInvalid          = "auth_invalid"
	CodeSubscriptionRequired = "subscription_required"
	CodeInsufficientQuota    = "insufficient_quota"
	CodeGatewayDisabled      = "gateway_disabled"
	CodeAccessDenied         = "access_denied"
	CodeInvalidModel         = "invalid_model"
	CodeModelNotAvailable    = "model_not_available"
	CodeModelNotSupported    = "model_not_supported"
	CodeNotFound             = "not_found"
	CodeRequestTooLarge      = "request_too_large"
	CodeRateLimit            = "rate_limit"
	CodeSafetyCheckFailed    = "safety_check_failed"
	CodeUnprocessable        = "provider_unprocessable"
	CodeProviderError        = "provider_error"
	CodeNoProviderAvailable  = "no_provider_available"
	CodeServiceUnavailable   = "service_unavailable"
	CodeProviderTimeout      = "provider_timeout"
	CodeInternal             = "internal_server_error"
)

// categories maps a stable code to seed 003's error category, sent as the OpenAI-shape "type".
var categories = map[string]string{
	CodeSubscriptionRequired: "insufficient_credit",
	CodeInsufficientQuota:    "reject_no_credit",
	CodeGatewayDisabled:      "access_denied",
	CodeRequestTooLarge:      "prompt_too_long",
}

// Error is a client-visible failure.
type Error struct {
	Status  int
	Code    string
	Message string
	// Param names the offending request parameter, if any.
	Param string
	// Headers are added to the error response (retry-after, deprecation, …).
	Headers map[string]string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Type is the error's category in seed 003's taxonomy.
func (e *Error) Type() string {
	if c, ok := categories[e.Code]; ok {
		return c
	}
	return e.Code
}

// New builds an Error.
func New(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidParam is a 400 naming the parameter at fault.
func InvalidParam(param, format string, args ...any) *Error {
	e := New(http.StatusBadRequest, CodeInvalidParams, format, args...)
	e.Param = param
	return e
}

// As returns err as an *Error, or a 500 that reveals nothing of err.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return New(http.StatusInternalServerError, CodeInternal, "internal error")
}

// FromStatus builds the error the gateway reports for an upstream or proxy status that came
// without a usable body. Its messages are the gateway's own: nothing of the provider's reply.
func FromStatus(status int) *Error {
	switch {
	case status == http.StatusTooManyRequests:
		return New(status, CodeRateLimit, "The upstream provider is rate limiting requests; retry later")
	case status == http.StatusRequestEntityTooLarge:
		return New(status, CodeRequestTooLarge, "Request body is larger than the gateway accepts")
	case status == http.StatusGatewayTimeout, status == StatusProviderTimeout, status == http.StatusRequestTimeout:
		// A provider's own 408 is its timeout too, not a fault of the client's request.
		return New(StatusProviderTimeout, CodeProviderTimeout, "The upstream provider timed out")
	case status >= 500:
		return New(http.StatusBadGateway, CodeProviderError, "The upstream provider failed (status %d)", status)
	case status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusPaymentRequired:
		// The provider refused the operator's credentials or account: the client's key is fine,
		// so this is the gateway's failure, not the client's.
		return New(http.StatusBadGateway, CodeProviderError, "The upstream provider refused the gateway's credentials")
	case status == http.StatusUnprocessableEntity:
		return New(status, CodeUnprocessable, "The upstream provider could not process the request")
	default:
		return New(status, CodeInvalidParams, "The upstream provider rejected the request (status %d)", status)
	}
}

// StatusProviderTimeout is the status of provider_timeout (seed 003's error table): 524, the
// status CDNs use for an origin that accepted the connection but did not answer in time, kept
// apart from 504 so a client can tell a slow provider from a broken gateway.
const StatusProviderTimeout = 524

// FromLocalReply is the client's error for a reply Envoy made itself, before or instead of any
// provider's answer: its status says what went wrong, its plain-text body nothing the client
// needs. The router (source/common/router/router.cc) answers 503 when no upstream could be
// reached through every retry ("no healthy upstream", "upstream connect error or
// disconnect/reset before headers"), 504 "upstream request timeout" when the route timeout or
// the last try's timeout fired, and 500 when a filter failed closed (the ratelimit filter's
// failure_mode_deny); the connection manager answers 408 "stream timeout" when the stream sat
// idle, and 413 while buffering an oversized body.
func FromLocalReply(status int) *Error {
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return New(http.StatusBadGateway, CodeNoProviderAvailable, "No upstream provider could be reached for this request; retry later")
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return New(StatusProviderTimeout, CodeProviderTimeout, "The upstream provider did not answer in time")
	case http.StatusInternalServerError:
		return New(http.StatusServiceUnavailable, CodeServiceUnavailable, "The gateway cannot serve this request right now; retry shortly")
	}
	return FromStatus(status)
}

// FromProvider is the client's error for a provider's error response of status, whose body the
// provider kind's package read as message and param. Only validation failures (400, 404, 422)
// keep the provider's words, which tell the client what to fix, and even those pass through
// Redact; for 429, 5xx and everything else the gateway writes its own message (FromStatus), since
// those texts name the operator's account, hosts and internals rather than the client's request.
func FromProvider(status int, message, param string) *Error {
	e := FromStatus(status)
	switch status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusUnprocessableEntity:
		if msg := Redact(message); msg != "" {
			e.Message = "Upstream provider: " + msg
			e.Param = Redact(param)
		}
	}
	return e
}

// SafetyRefusal is the client's error for a provider that refused the request's content (a
// content-policy or safety filter). The provider's reason, redacted, is kept: it tells the client
// what to change.
func SafetyRefusal(message string) *Error {
	e := New(http.StatusForbidden, CodeSafetyCheckFailed, "The upstream provider refused the request's content")
	if msg := Redact(message); msg != "" {
		e.Message += ": " + msg
	}
	return e
}

// JSONProblem describes why a request body failed to decode, for a client-facing message, without
// echoing request content back.
func JSONProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("%s: expected %s, got %s", typ.Field, typ.Type, typ.Value)
		}
		return fmt.Sprintf("expected %s, got %s", typ.Type, typ.Value)
	default:
		return "malformed JSON"
	}
}

// DecodeObject decodes a request body that must be a JSON object into its top-level fields, or
// returns the 400 that says why it is not one.
func DecodeObject(body []byte) (map[string]json.RawMessage, *Error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, InvalidParam("", "Request body is not valid JSON: %s", JSONProblem(err))
	}
	if fields == nil {
		return nil, InvalidParam("", "Request body must be a JSON object")
	}
	return fields, nil
}
