package gemini

import (
	"encoding/json"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
)

func TestErrorBody(t *testing.T) {
	tests := []struct {
		name   string
		err    *apierror.Error
		status string
	}{
		{"invalid", apierror.InvalidParam("contents", "Parameter contents is required"), "INVALID_ARGUMENT"},
		{"auth", apierror.New(401, apierror.CodeAuthInvalid, "bad key"), "UNAUTHENTICATED"},
		{"credit", apierror.New(402, apierror.CodeInsufficientQuota, "no credit"), "FAILED_PRECONDITION"},
		{"disabled", apierror.New(403, apierror.CodeGatewayDisabled, "off"), "PERMISSION_DENIED"},
		{"model", apierror.New(404, apierror.CodeInvalidModel, "no such model"), "NOT_FOUND"},
		{"too large", apierror.New(413, apierror.CodeRequestTooLarge, "big"), "INVALID_ARGUMENT"},
		{"rate", apierror.New(429, apierror.CodeRateLimit, "slow down"), "RESOURCE_EXHAUSTED"},
		{"internal", apierror.New(500, apierror.CodeInternal, "oops"), "INTERNAL"},
		{"provider", apierror.New(502, apierror.CodeProviderError, "upstream"), "UNAVAILABLE"},
		{"unavailable", apierror.New(503, apierror.CodeServiceUnavailable, "none"), "UNAVAILABLE"},
		{"timeout", apierror.New(504, apierror.CodeProviderTimeout, "slow"), "DEADLINE_EXCEEDED"},
		{"provider timeout", apierror.New(524, apierror.CodeProviderTimeout, "slow"), "DEADLINE_EXCEEDED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
					Status  string `json:"status"`
					Details []struct {
						Type     string            `json:"@type"`
						Reason   string            `json:"reason"`
						Metadata map[string]string `json:"metadata"`
					} `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal(ErrorBody(tt.err), &got); err != nil {
				t.Fatal(err)
			}
			e := got.Error
			if e.Code != tt.err.Status || e.Status != tt.status || e.Message != tt.err.Message {
				t.Errorf("got %+v, want code %d status %s", e, tt.err.Status, tt.status)
			}
			if len(e.Details) != 1 || e.Details[0].Type != "type.googleapis.com/google.rpc.ErrorInfo" || e.Details[0].Metadata["param"] != tt.err.Param {
				t.Errorf("details %+v", e.Details)
			}
		})
	}
	frame := string(StreamError([]byte("x"), apierror.New(502, apierror.CodeProviderError, "m")))
	if want := "xdata: " + string(ErrorBody(apierror.New(502, apierror.CodeProviderError, "m"))) + "\n\n"; frame != want {
		t.Errorf("StreamError = %q, want %q", frame, want)
	}
}

func TestProviderError(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    int
		code    string
		message string
	}{
		{"invalid argument kept", 400, `{"error":{"code":400,"message":"Invalid value at 'contents[0]'","status":"INVALID_ARGUMENT"}}`, 400, apierror.CodeInvalidParams, "Upstream provider: Invalid value at 'contents[0]'"},
		{"bad api key hidden", 400, `{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}`, 502, apierror.CodeProviderError, "The upstream provider refused the gateway's credentials"},
		{"permission hidden", 403, `{"error":{"code":403,"message":"Project 123 has no access","status":"PERMISSION_DENIED"}}`, 502, apierror.CodeProviderError, "The upstream provider refused the gateway's credentials"},
		{"billing hidden", 400, `{"error":{"code":400,"message":"User location is not supported","status":"FAILED_PRECONDITION"}}`, 502, apierror.CodeProviderError, "The upstream provider refused the gateway's credentials"},
		{"rate limit", 429, `{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}`, 429, apierror.CodeRateLimit, "The upstream provider is rate limiting requests; retry later"},
		{"overloaded", 503, `{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}`, 502, apierror.CodeProviderError, "The upstream provider failed (status 503)"},
		{"internal", 500, `{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}`, 502, apierror.CodeProviderError, "The upstream provider failed (status 500)"},
		{"array form", 404, `[{"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}}]`, 404, apierror.CodeInvalidParams, "Upstream provider: models/x is not found"},
		{"bare 503", 503, `no healthy upstream`, 502, apierror.CodeProviderError, "The upstream provider failed (status 503)"},
		{"bare 504", 504, `upstream request timeout`, 524, apierror.CodeProviderTimeout, "The upstream provider timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ProviderError(tt.status, []byte(tt.body))
			if e.Status != tt.want || e.Code != tt.code || e.Message != tt.message {
				t.Errorf("got %d %s %q; want %d %s %q", e.Status, e.Code, e.Message, tt.want, tt.code, tt.message)
			}
		})
	}
}
