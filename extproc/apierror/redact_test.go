package apierror_test

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
)

func TestRedact(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain validation text", "Invalid 'messages[0].content': string too long. Expected a string with maximum length 10485760, but got a string with length 10485761 instead.",
			"Invalid 'messages[0].content': string too long. Expected a string with maximum length 10485760, but got a string with length 10485761 instead."},
		{"anthropic json path", "messages.0.content.0.image.source.base64.data: The image was specified using the image/jpeg media type", "messages.0.content.0.image.source.base64.data: The image was specified using the image/jpeg media type"},
		{"model names", "max_tokens: 100000 > 64000, which is the maximum allowed for claude-sonnet-4-5 and gpt-4.1 and gemini-2.5-flash", "max_tokens: 100000 > 64000, which is the maximum allowed for claude-sonnet-4-5 and gpt-4.1 and gemini-2.5-flash"},
		{"e.g. stays", "use a supported value (e.g. auto)", "use a supported value (e.g. auto)"},
		{"openai organisation", "Rate limit reached for gpt-4o in organization org-AbC123dEf456GhI789jKl012 on tokens per min.", "Rate limit reached for gpt-4o in organization [redacted] on tokens per min."},
		{"openai project", "Project proj_Q5n2FzXbWw8kLm1 does not have access to model gpt-5", "Project [redacted] does not have access to model gpt-5"},
		{"org-wide is a word", "an org-wide limit", "an org-wide limit"},
		{"url", "Visit https://platform.openai.com/account/rate-limits to learn more.", "Visit [redacted] to learn more."},
		{"url in parentheses", "see the docs (https://docs.anthropic.com/en/api/errors).", "see the docs ([redacted])."},
		{"bare host", "could not reach api-internal.prod.corp:8443 in time", "could not reach [redacted] in time"},
		{"host with path", "fetch from files.example.com/bucket/x failed", "fetch from [redacted] failed"},
		{"kubernetes service", "upstream llm-proxy.default.svc.cluster.local refused", "upstream [redacted] refused"},
		{"localhost", "dial tcp localhost:5432: connection refused", "dial tcp [redacted]: connection refused"},
		{"ipv4", "dial tcp 10.12.0.7:5432: i/o timeout", "dial tcp [redacted]: i/o timeout"},
		{"ipv4 cidr", "blocked by 192.168.0.0/16", "blocked by [redacted]"},
		{"ipv6", "connect to 2001:db8::1 failed", "connect to [redacted] failed"},
		{"ipv6 bracketed with port", "connect to [fd00:ec2::254]:80 failed", "connect to [[redacted]]:80 failed"},
		{"ipv6 loopback", "listen ::1", "listen [redacted]"},
		{"times are not addresses", "retry at 12:30:45", "retry at 12:30:45"},
		{"email", "contact ops@acme-ai.example.com for access", "contact [redacted] for access"},
		{"openai key", "Incorrect API key provided: sk-proj-abcdefghijklmnop1234.", "Incorrect API key provided: [redacted]."},
		{"anthropic key in quotes", "key 'sk-ant-api03-AAAAbbbbCCCC' is disabled", "key '[redacted]' is disabled"},
		{"google key", "API key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY not valid", "API key [redacted] not valid"},
		{"gateway key", "key=tg_Zm9vYmFyYmF6cXV4 rejected", "key=[redacted] rejected"},
		{"database error", `ERROR: relation "billing.usage" does not exist (SQLSTATE 42P01) at pg-primary.internal`, `ERROR: relation "billing.usage" does not exist (SQLSTATE 42P01) at [redacted]`},
		{"anthropic organisation", "rate limit for your organization (5f3a9c0e-0b6f-4c8e-9d0a-6b1e2f3a4b5c) of 40,000", "rate limit for your organization ([redacted]) of 40,000"},
		{"google project", "Project projects/123456789012 lacks access", "Project [redacted] lacks access"},
		{"request ids stay", "request req_011CSHoEeqs5C35K2UUqR7Fy failed", "request req_011CSHoEeqs5C35K2UUqR7Fy failed"},
		{"single-label host with port", "could not connect to postgres:5432 or redis-master:6379", "could not connect to [redacted] or [redacted]"},
		{"address glued by colons", "dial tcp:10.0.0.7:5432 failed", "dial [redacted] failed"},
		{"host glued by a slash", "fetched via/db.internal", "fetched [redacted]"},
		{"time of day stays", "at 12:30 today", "at 12:30 today"},
		{"ratio stays", "ratio 16:9 is not supported", "ratio 16:9 is not supported"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := apierror.Redact(tt.in); got != tt.want {
				t.Errorf("Redact(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFromProvider(t *testing.T) {
	const leaky = "Upstream db-7.internal (10.0.0.7) failed for org-AbC123dEf456GhI789jKl012"
	tests := []struct {
		status     int
		wantStatus int
		wantCode   string
		keepsText  bool
	}{
		{400, 400, apierror.CodeInvalidParams, true},
		{404, 404, apierror.CodeInvalidParams, true},
		{422, 422, apierror.CodeUnprocessable, true},
		{401, 502, apierror.CodeProviderError, false},
		{402, 502, apierror.CodeProviderError, false},
		{403, 502, apierror.CodeProviderError, false},
		{408, 524, apierror.CodeProviderTimeout, false},
		{409, 409, apierror.CodeInvalidParams, false},
		{413, 413, apierror.CodeRequestTooLarge, false},
		{429, 429, apierror.CodeRateLimit, false},
		{500, 502, apierror.CodeProviderError, false},
		{502, 502, apierror.CodeProviderError, false},
		{503, 502, apierror.CodeProviderError, false},
		{504, 524, apierror.CodeProviderTimeout, false},
		{529, 502, apierror.CodeProviderError, false},
	}
	for _, tt := range tests {
		e := apierror.FromProvider(tt.status, leaky, "messages")
		if e.Status != tt.wantStatus || e.Code != tt.wantCode {
			t.Errorf("%d: got %d %s, want %d %s", tt.status, e.Status, e.Code, tt.wantStatus, tt.wantCode)
		}
		kept := e.Message == "Upstream provider: Upstream [redacted] ([redacted]) failed for [redacted]"
		if kept != tt.keepsText {
			t.Errorf("%d: message %q; provider text kept = %v, want %v", tt.status, e.Message, kept, tt.keepsText)
		}
	}
}

// FuzzRedact: redaction never panics, is stable (redacting twice changes nothing more), and
// leaves no URL behind.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"see https://x.example.com/a", "org-AbC123dEf456 at 10.0.0.1:80", "[fd00::1]:443", "a\u00e9b::", "tg_abcdefgh", ":::", "...", "0::\v", "10.0.0.1\u00a0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := apierror.Redact(s)
		if twice := apierror.Redact(once); twice != once {
			t.Errorf("Redact is not stable: %q -> %q -> %q", s, once, twice)
		}
		if strings.Contains(once, "://") {
			t.Errorf("Redact(%q) = %q keeps a URL", s, once)
		}
	})
}
