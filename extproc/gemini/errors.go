package gemini

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/sse"
)

// Google's canonical status names (google.rpc.Code) for the HTTP statuses the gateway answers
// with. The ones Gemini itself documents (https://ai.google.dev/gemini-api/docs/troubleshooting):
// 400 INVALID_ARGUMENT, 403 PERMISSION_DENIED, 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED, 500
// INTERNAL, 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED. The rest follow google.rpc.Code's HTTP
// mapping: 401 is UNAUTHENTICATED; 402 (no credit, no subscription) is FAILED_PRECONDITION, the
// status Gemini uses when billing must be set up first; 413 is INVALID_ARGUMENT, as Gemini reports
// an oversized payload; 502 is UNAVAILABLE (the upstream failed; a retry may succeed).
var statusNames = map[int]string{
	http.StatusBadRequest:            "INVALID_ARGUMENT",
	http.StatusUnauthorized:          "UNAUTHENTICATED",
	http.StatusPaymentRequired:       "FAILED_PRECONDITION",
	http.StatusForbidden:             "PERMISSION_DENIED",
	http.StatusNotFound:              "NOT_FOUND",
	http.StatusConflict:              "ABORTED",
	http.StatusRequestEntityTooLarge: "INVALID_ARGUMENT",
	// A provider could not process a valid request (provider_unprocessable): the nearest of
	// Google's codes is the argument one, as the request is what it refused.
	http.StatusUnprocessableEntity: "INVALID_ARGUMENT",
	http.StatusTooManyRequests:     "RESOURCE_EXHAUSTED",
	499:                            "CANCELLED",
	http.StatusInternalServerError: "INTERNAL",
	http.StatusNotImplemented:      "UNIMPLEMENTED",
	http.StatusBadGateway:          "UNAVAILABLE",
	http.StatusServiceUnavailable:  "UNAVAILABLE",
	http.StatusGatewayTimeout:      "DEADLINE_EXCEEDED",
	// provider_timeout's 524 means what Google's 504 means.
	apierror.StatusProviderTimeout: "DEADLINE_EXCEEDED",
}

// StatusName is Google's status name for an HTTP status.
func StatusName(status int) string {
	if s, ok := statusNames[status]; ok {
		return s
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Code    int           `json:"code"`
	Message string        `json:"message"`
	Status  string        `json:"status"`
	Details []errorDetail `json:"details,omitempty"`
}

// errorDetail is a google.rpc.ErrorInfo: the one place in Google's shape for a machine-readable
// reason, so the gateway's stable code goes there.
type errorDetail struct {
	Type     string            `json:"@type"`
	Reason   string            `json:"reason"`
	Domain   string            `json:"domain"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// ErrorBody renders e in Gemini's error shape:
// {"error":{"code":<HTTP status>,"message","status":<google status>,"details":[ErrorInfo]}},
// with the stable code (upper-cased, as ErrorInfo reasons are) and the parameter at fault in an
// ErrorInfo detail.
func ErrorBody(e *apierror.Error) []byte {
	info := errorDetail{
		Type:   "type.googleapis.com/google.rpc.ErrorInfo",
		Reason: strings.ToUpper(e.Code),
		Domain: "tollgate",
	}
	if e.Param != "" {
		info.Metadata = map[string]string{"param": e.Param}
	}
	b, _ := json.Marshal(errorBody{Error: errorObject{
		Code:    e.Status,
		Message: e.Message,
		Status:  StatusName(e.Status),
		Details: []errorDetail{info},
	}})
	return b
}

// StreamErrorFrame appends e as one SSE frame. @google/genai throws an ApiError for a frame
// holding an "error" object, which is how Gemini itself fails a stream.
func StreamErrorFrame(dst []byte, e *apierror.Error) []byte {
	return sse.AppendData(dst, ErrorBody(e))
}

// googleError is the error object of a Gemini error body.
type googleError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Status  string `json:"status"`
	Details []struct {
		Reason string `json:"reason"`
	} `json:"details"`
}

// parseGoogleError reads {"error":{…}}, or the one-element array a non-SSE stream fails with.
func parseGoogleError(body []byte) *googleError {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		var arr []json.RawMessage
		if json.Unmarshal(body, &arr) != nil || len(arr) == 0 {
			return nil
		}
		body = arr[0]
	}
	var b struct {
		Error *googleError `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil {
		return nil
	}
	return b.Error
}

// ProviderError turns an error response from a Gemini provider into the gateway's error. A body
// in Google's shape is the provider's own answer. Where the refusal concerns the operator's
// account rather than the request (401, 403, an invalid API key — which Gemini reports as 400 —
// and FAILED_PRECONDITION, Gemini's "set up billing" and "location not supported") it becomes a
// 502 that reveals nothing of the operator's key; otherwise apierror.FromProvider decides what
// of it the client may see: the redacted message of a 400, 404 or 422, the gateway's own words
// for 429, 5xx and the rest. Anything else is Envoy's local reply and is reported by status.
func ProviderError(status int, body []byte) *apierror.Error {
	g := parseGoogleError(body)
	if g == nil {
		return apierror.FromStatus(status)
	}
	if operatorProblem(status, g) {
		return apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider refused the gateway's credentials")
	}
	return apierror.FromProvider(status, g.Message, "")
}

func operatorProblem(status int, g *googleError) bool {
	if status == http.StatusUnauthorized || status == http.StatusForbidden ||
		g.Status == "UNAUTHENTICATED" || g.Status == "PERMISSION_DENIED" || g.Status == "FAILED_PRECONDITION" {
		return true
	}
	for _, d := range g.Details {
		if strings.HasPrefix(d.Reason, "API_KEY_") {
			return true
		}
	}
	return strings.Contains(g.Message, "API key")
}

// streamError is the gateway's error for an error object met inside a provider's stream, where
// the HTTP status was already 200: the object's own code stands in for it.
func streamError(data []byte, g *googleError) *apierror.Error {
	status := g.Code
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	return ProviderError(status, data)
}
