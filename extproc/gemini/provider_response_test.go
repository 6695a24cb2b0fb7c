package gemini

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
)

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

func TestProviderResponseGolden(t *testing.T) {
	for _, path := range fixtures(t, "provider") {
		t.Run(fixtureName(path), func(t *testing.T) {
			a := readArchive(t, path)
			body := a.sections["response.json"]
			c, bu, err := DecodeResponse(body, "canonical-model")
			if err != nil {
				t.Fatal(err)
			}
			c.Created = 0
			golden(t, path, a, "pivot.json", mustJSON(t, c))
			golden(t, path, a, "billing.json", mustJSON(t, bu))

			out, bu2, finish, err := RewriteResponse(body, "canonical-model")
			if err != nil {
				t.Fatal(err)
			}
			if bu2 != bu || finish != c.Choices[0].FinishReason {
				t.Errorf("RewriteResponse usage %+v finish %q; DecodeResponse %+v %q", bu2, finish, bu, c.Choices[0].FinishReason)
			}
			golden(t, path, a, "rewritten.json", indent(t, out))
		})
	}
}

// TestUsageMapping pins the arithmetic: Gemini's prompt count includes cached tokens and its
// candidates count excludes thoughts; billing's counts are disjoint.
func TestUsageMapping(t *testing.T) {
	tests := []struct {
		name    string
		meta    UsageMetadata
		pivot   openai.Usage
		billing billing.Usage
	}{
		{
			name:    "plain",
			meta:    UsageMetadata{PromptTokenCount: 10, CandidatesTokenCount: 5, TotalTokenCount: 15},
			pivot:   openai.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15},
			billing: billing.Usage{InputTokens: 10, OutputTokens: 5},
		},
		{
			name: "cached and thoughts",
			meta: UsageMetadata{PromptTokenCount: 1200, CandidatesTokenCount: 10, TotalTokenCount: 1250, CachedContentTokenCount: 1000, ThoughtsTokenCount: 40},
			pivot: openai.Usage{PromptTokens: 1200, CompletionTokens: 50, TotalTokens: 1250,
				PromptTokensDetails:     &openai.PromptTokensDetails{CachedTokens: 1000},
				CompletionTokensDetails: &openai.CompletionTokensDetails{ReasoningTokens: 40}},
			billing: billing.Usage{InputTokens: 200, CacheReadTokens: 1000, OutputTokens: 10, ReasoningTokens: 40},
		},
		{
			name:    "tool use prompt",
			meta:    UsageMetadata{PromptTokenCount: 10, CandidatesTokenCount: 5, ToolUsePromptTokenCount: 100, TotalTokenCount: 115},
			pivot:   openai.Usage{PromptTokens: 110, CompletionTokens: 5, TotalTokens: 115},
			billing: billing.Usage{InputTokens: 110, OutputTokens: 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, b := usages(tt.meta)
			if fmt.Sprint(mustJSON(t, u)) != fmt.Sprint(mustJSON(t, tt.pivot)) || b != tt.billing {
				t.Errorf("got %+v / %+v; want %+v / %+v", u, b, tt.pivot, tt.billing)
			}
			// And back: what a Gemini client is shown for the pivot usage.
			m := usageMetadata(u)
			if m.PromptTokenCount != u.PromptTokens || m.CachedContentTokenCount != tt.meta.CachedContentTokenCount ||
				m.ThoughtsTokenCount != tt.meta.ThoughtsTokenCount || m.CandidatesTokenCount != tt.meta.CandidatesTokenCount {
				t.Errorf("usageMetadata(%+v) = %+v", u, m)
			}
		})
	}
}

func TestDecodeResponseMalformed(t *testing.T) {
	for _, body := range []string{``, `{`, `[]`, `{"candidates":"x"}`} {
		if _, _, err := DecodeResponse([]byte(body), "m"); err == nil {
			t.Errorf("DecodeResponse(%q): no error", body)
		}
	}
	_, _, err := DecodeResponse([]byte(`{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}`), "m")
	var e *apierror.Error
	if !errors.As(err, &e) || e.Status != 429 || e.Code != apierror.CodeRateLimit {
		t.Errorf("error body: %v", err)
	}
	if _, _, _, err := RewriteResponse([]byte(`null`), "m"); err == nil {
		t.Error("RewriteResponse(null): no error")
	}
}
