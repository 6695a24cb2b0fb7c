package anthropic_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/apierror"
)

func TestErrorBody(t *testing.T) {
	tests := []struct {
		status   int
		code     string
		wantType string
	}{
		{400, apierror.CodeInvalidParams, "invalid_request_error"},
		{401, apierror.CodeAuthInvalid, "authentication_error"},
		{402, apierror.CodeInsufficientQuota, "billing_error"},
		{403, apierror.CodeGatewayDisabled, "permission_error"},
		{404, apierror.CodeInvalidModel, "not_found_error"},
		{413, apierror.CodeRequestTooLarge, "request_too_large"},
		{422, apierror.CodeInvalidParams, "invalid_request_error"},
		{429, apierror.CodeRateLimit, "rate_limit_error"},
		{500, apierror.CodeInternal, "api_error"},
		{502, apierror.CodeProviderError, "api_error"},
		{502, apierror.CodeNoProviderAvailable, "overloaded_error"},
		{503, apierror.CodeServiceUnavailable, "overloaded_error"},
		{504, apierror.CodeProviderTimeout, "timeout_error"},
		{524, apierror.CodeProviderTimeout, "timeout_error"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			e := apierror.New(tt.status, tt.code, `Say "hi" <now>`)
			want := `{"type":"error","error":{"type":"` + tt.wantType + `","message":"Say \"hi\" \u003cnow\u003e"}}`
			if got := string(anthropic.ErrorBody(e)); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestStreamError(t *testing.T) {
	got := string(anthropic.StreamError([]byte("x"), apierror.New(529, "overloaded", "Overloaded")))
	want := "x" + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestProviderError(t *testing.T) {
	body := func(typ, msg string) string {
		return `{"type":"error","error":{"type":"` + typ + `","message":"` + msg + `"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}`
	}
	tests := []struct {
		name       string
		status     int
		body       string
		wantStatus int
		wantCode   string
		wantMsg    string // substring
	}{
		{"invalid request", 400, body("invalid_request_error", "messages: text content blocks must be non-empty"), 400, apierror.CodeInvalidParams, "Upstream provider: messages: text content blocks must be non-empty"},
		{"bad key", 401, body("authentication_error", "invalid x-api-key"), 502, apierror.CodeProviderError, "refused the gateway's credentials"},
		{"no permission", 403, body("permission_error", "key lacks access"), 502, apierror.CodeProviderError, "refused the gateway's credentials"},
		{"operator out of credit", 402, body("billing_error", "credit balance too low"), 502, apierror.CodeProviderError, "refused the gateway's account"},
		{"not found", 404, body("not_found_error", "model: claude-x"), 404, apierror.CodeInvalidParams, "Upstream provider: model: claude-x"},
		{"too large", 413, body("request_too_large", "Request exceeds the maximum allowed number of bytes."), 413, apierror.CodeRequestTooLarge, "larger than the gateway accepts"},
		{"rate limit", 429, body("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"), 429, apierror.CodeRateLimit, "The upstream provider is rate limiting requests; retry later"},
		{"api error", 500, body("api_error", "Internal server error"), 502, apierror.CodeProviderError, "The upstream provider failed"},
		{"timeout", 504, body("timeout_error", "Request timed out"), 524, apierror.CodeProviderTimeout, "The upstream provider timed out"},
		{"overloaded", 529, body("overloaded_error", "Overloaded"), 503, apierror.CodeServiceUnavailable, "The upstream provider is overloaded; retry later"},
		{"overloaded, no body", 529, ``, 503, apierror.CodeServiceUnavailable, "overloaded"},
		{"bare 503", 503, `upstream connect error or disconnect/reset before headers`, 502, apierror.CodeProviderError, "failed"},
		{"bare 504", 504, `upstream request timeout`, 524, apierror.CodeProviderTimeout, "timed out"},
		{"html 502", 502, `<html>bad gateway</html>`, 502, apierror.CodeProviderError, "status 502"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := anthropic.ProviderError(tt.status, []byte(tt.body))
			if e.Status != tt.wantStatus || e.Code != tt.wantCode || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("got %d %s %q, want %d %s containing %q", e.Status, e.Code, e.Message, tt.wantStatus, tt.wantCode, tt.wantMsg)
			}
			if tt.status == http.StatusUnauthorized && strings.Contains(e.Message, "x-api-key") {
				t.Errorf("operator credential detail leaked: %q", e.Message)
			}
		})
	}
}
