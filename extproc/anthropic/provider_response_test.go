package anthropic_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
)

// TestResponseGolden converts Anthropic responses (testdata/response) into the pivot with
// billing usage, renders that pivot back in Anthropic's client shape, and passes the original
// through with the model rewritten.
func TestResponseGolden(t *testing.T) {
	for _, path := range archives(t, "response") {
		t.Run(path, func(t *testing.T) {
			a := readArchive(t, path)
			body := a.input(t, "anthropic.json")
			c, bu, err := anthropic.DecodeResponse(body, "claude-canonical")
			if err != nil {
				t.Fatal(err)
			}
			c.Created = 0 // the conversion time
			a.check(t, "pivot.json", mustJSON(t, c))
			a.check(t, "billing.json", mustJSON(t, bu))
			a.check(t, "client.json", anthropic.EncodeResponse(c, "claude-canonical"))

			out, bu2, stop, err := anthropic.RewriteResponse(body, "claude-canonical")
			if err != nil {
				t.Fatal(err)
			}
			if bu2 != bu {
				t.Errorf("RewriteResponse usage %+v, DecodeResponse usage %+v", bu2, bu)
			}
			var orig struct {
				StopReason string `json:"stop_reason"`
			}
			_ = json.Unmarshal(body, &orig)
			if stop != orig.StopReason {
				t.Errorf("stop = %q, want %q", stop, orig.StopReason)
			}
			a.check(t, "passthrough.json", out)
			a.save(t)
		})
	}
}

func TestDecodeResponseMalformed(t *testing.T) {
	for _, body := range []string{``, `{`, `null`, `[]`, `{"type":"error","error":{"type":"api_error","message":"x"}}`, `{"type":"message","content":"x"}`} {
		if _, _, err := anthropic.DecodeResponse([]byte(body), "m"); err == nil {
			t.Errorf("DecodeResponse(%q): no error", body)
		}
	}
	for _, body := range []string{``, `{`, `null`, `[]`} {
		if _, _, _, err := anthropic.RewriteResponse([]byte(body), "m"); err == nil {
			t.Errorf("RewriteResponse(%q): no error", body)
		}
	}
}

func TestUsageMapping(t *testing.T) {
	tests := []struct {
		name        string
		usage       string
		wantOpenAI  openai.Usage
		wantBilling billing.Usage
	}{
		{
			name:        "plain",
			usage:       `{"input_tokens":2095,"output_tokens":503}`,
			wantOpenAI:  openai.Usage{PromptTokens: 2095, CompletionTokens: 503, TotalTokens: 2598, PromptTokensDetails: &openai.PromptTokensDetails{}},
			wantBilling: billing.Usage{InputTokens: 2095, OutputTokens: 503},
		},
		{
			name:        "cache read and write, no TTL split: writes are 5-minute",
			usage:       `{"input_tokens":21,"cache_creation_input_tokens":188086,"cache_read_input_tokens":10,"output_tokens":393}`,
			wantOpenAI:  openai.Usage{PromptTokens: 188117, CompletionTokens: 393, TotalTokens: 188510, PromptTokensDetails: &openai.PromptTokensDetails{CachedTokens: 10}},
			wantBilling: billing.Usage{InputTokens: 21, CacheReadTokens: 10, CacheWriteTokens: 188086, OutputTokens: 393},
		},
		{
			name:        "TTL split",
			usage:       `{"input_tokens":50,"cache_read_input_tokens":1800,"cache_creation_input_tokens":248,"cache_creation":{"ephemeral_5m_input_tokens":148,"ephemeral_1h_input_tokens":100},"output_tokens":503}`,
			wantOpenAI:  openai.Usage{PromptTokens: 2098, CompletionTokens: 503, TotalTokens: 2601, PromptTokensDetails: &openai.PromptTokensDetails{CachedTokens: 1800}},
			wantBilling: billing.Usage{InputTokens: 50, CacheReadTokens: 1800, CacheWriteTokens: 148, CacheWrite1HTokens: 100, OutputTokens: 503},
		},
		{
			name:        "only 1h writes",
			usage:       `{"input_tokens":5,"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":300},"output_tokens":1}`,
			wantOpenAI:  openai.Usage{PromptTokens: 305, CompletionTokens: 1, TotalTokens: 306, PromptTokensDetails: &openai.PromptTokensDetails{}},
			wantBilling: billing.Usage{InputTokens: 5, CacheWrite1HTokens: 300, OutputTokens: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"id":"msg_1","type":"message","role":"assistant","model":"x","content":[],"stop_reason":"end_turn","usage":` + tt.usage + `}`
			c, bu, err := anthropic.DecodeResponse([]byte(body), "m")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := mustJSON(t, c.Usage), mustJSON(t, tt.wantOpenAI); string(got) != string(want) {
				t.Errorf("openai usage = %s, want %s", got, want)
			}
			if bu != tt.wantBilling {
				t.Errorf("billing = %+v, want %+v", bu, tt.wantBilling)
			}
			// The pivot's own billing view agrees on everything but the cache writes it cannot see.
			if pb := c.Usage.Billing(); pb.CacheReadTokens != bu.CacheReadTokens || pb.OutputTokens != bu.OutputTokens ||
				pb.InputTokens != bu.InputTokens+bu.CacheWriteTokens+bu.CacheWrite1HTokens {
				t.Errorf("pivot billing %+v inconsistent with %+v", pb, bu)
			}
		})
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
