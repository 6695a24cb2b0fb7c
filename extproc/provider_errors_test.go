package extproc

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/catalog"
)

// leaks are what must never reach a client from a provider's error: the operator's organisation,
// project and keys, URLs, host names and addresses. The fixtures under
// testdata/provider_errors hold each of them somewhere.
var leaks = []*regexp.Regexp{
	regexp.MustCompile(`org-[A-Za-z0-9]{6}`),
	regexp.MustCompile(`proj_[A-Za-z0-9]`),
	regexp.MustCompile(`://`),
	regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`),
	regexp.MustCompile(`(?i)fd00:`),
	regexp.MustCompile(`sk-(ant|proj)`),
	regexp.MustCompile(`AIza`),
	regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-`),
	regexp.MustCompile(`projects/\d`),
	regexp.MustCompile(`(?i)[a-z0-9-]+\.(com|internal|corp)\b`),
}

// TestProviderErrorsScrubbed feeds real providers' error bodies (one fixture per case) through
// the gateway's mapping and renders the result in every client protocol. A 400, 404 or 422 keeps
// the provider's explanation, redacted; a 429 or 5xx is in the gateway's words; credential and
// account refusals are the gateway's 502.
func TestProviderErrorsScrubbed(t *testing.T) {
	tests := []struct {
		file       string
		wantStatus int
		wantCode   string
		// keeps is a fragment of the provider's text the client must see; "" means none may reach
		// it.
		keeps string
	}{
		{"openai_429_rate_limit.json", 429, "rate_limit", ""},
		{"openai_429_insufficient_quota.json", 502, "provider_error", ""},
		{"openai_500_server_error.json", 502, "provider_error", ""},
		{"openai_503_overloaded.json", 502, "provider_error", ""},
		{"openai_400_context_length.json", 400, "invalid_params", "maximum context length is 128000 tokens"},
		{"openai_400_names_account.json", 400, "invalid_params", "Invalid 'metadata': too many keys for organization [redacted]"},
		{"openai_400_invalid_prompt.json", 403, "safety_check_failed", "flagged as potentially violating our usage policy"},
		{"openai_404_model_not_found.json", 404, "invalid_params", "does not exist or you do not have access to it"},
		{"openai_401_invalid_api_key.json", 502, "provider_error", ""},
		{"openai_422_unprocessable.json", 422, "provider_unprocessable", "schema could not be compiled"},
		{"compatible_500_database.json", 502, "provider_error", ""},
		{"compatible_400_vllm.json", 400, "invalid_params", "maximum context length is 8192 tokens"},
		{"anthropic_429_rate_limit.json", 429, "rate_limit", ""},
		{"anthropic_529_overloaded.json", 503, "service_unavailable", ""},
		{"anthropic_500_api_error.json", 502, "provider_error", ""},
		{"anthropic_400_invalid_request.json", 400, "invalid_params", "messages.0.content.0.text: text content blocks must be non-empty"},
		{"anthropic_400_names_account.json", 400, "invalid_params", "prompt is too long: 210000 tokens > 200000 maximum for organization [redacted]"},
		{"anthropic_404_not_found.json", 404, "invalid_params", "model: claude-opus-9"},
		{"anthropic_401_authentication.json", 502, "provider_error", ""},
		{"anthropic_402_billing.json", 502, "provider_error", ""},
		{"gemini_429_resource_exhausted.json", 429, "rate_limit", ""},
		{"gemini_400_invalid_argument.json", 400, "invalid_params", "GenerateContentRequest.contents: contents is not specified"},
		{"gemini_400_names_project.json", 400, "invalid_params", "Request contains an invalid argument for [redacted]"},
		{"gemini_400_api_key_invalid.json", 502, "provider_error", ""},
		{"gemini_404_not_found.json", 404, "invalid_params", "models/gemini-9 is not found"},
		{"gemini_500_internal.json", 502, "provider_error", ""},
		{"gemini_503_unavailable.json", 502, "provider_error", ""},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".json"), func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", "provider_errors", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			kind, rest, _ := strings.Cut(tt.file, "_")
			var status int
			if _, err := fmtSscan(rest, &status); err != nil {
				t.Fatal(err)
			}
			if kind == "compatible" {
				kind = catalog.KindOpenAICompatible
			}
			e := providerCodecs[kind].providerError(status, body)
			if e.Status != tt.wantStatus || e.Code != tt.wantCode {
				t.Fatalf("got %d %s (%q), want %d %s", e.Status, e.Code, e.Message, tt.wantStatus, tt.wantCode)
			}
			if tt.keeps != "" && !strings.Contains(e.Message, tt.keeps) {
				t.Errorf("message %q lost the provider's explanation %q", e.Message, tt.keeps)
			}
			if tt.keeps == "" && strings.Contains(e.Message, "Upstream provider:") {
				t.Errorf("message %q carries the provider's text", e.Message)
			}
			// The message, param and headers are all of the error that came from the provider;
			// the rest of each rendering is the gateway's.
			shown := e.Message + " " + e.Param
			for _, v := range e.Headers {
				shown += " " + v
			}
			for _, re := range leaks {
				if m := re.FindString(shown); m != "" {
					t.Errorf("leaks %q: %q", m, shown)
				}
			}
			for _, client := range []protocol{protoOpenAI, protoAnthropic, protoGemini} {
				if s := clientFor(client).streamError(nil, e); !strings.Contains(string(s), "data: ") {
					t.Errorf("%s stream error event: %q", client, s)
				}
				checkShape(t, client, clientFor(client).errorBody(e), tt.wantStatus, tt.wantCode)
			}
		})
	}
}

// checkShape checks that body is an error in client's protocol, carrying status and code where
// the protocol has room for them.
func checkShape(t *testing.T, client protocol, body []byte, status int, code string) {
	t.Helper()
	var b struct {
		Type  string `json:"type"`
		Error struct {
			Type    string          `json:"type"`
			Code    json.RawMessage `json:"code"`
			Message string          `json:"message"`
			Status  string          `json:"status"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Error.Message == "" {
		t.Errorf("%s: not an error body: %s", client, body)
		return
	}
	switch client {
	case protoOpenAI:
		if string(b.Error.Code) != `"`+code+`"` || b.Error.Type == "" {
			t.Errorf("openai shape: %s", body)
		}
	case protoAnthropic:
		if b.Type != "error" || b.Error.Type == "" {
			t.Errorf("anthropic shape: %s", body)
		}
	case protoGemini:
		if string(b.Error.Code) != strings.TrimSpace(jsonInt(status)) || b.Error.Status == "" {
			t.Errorf("gemini shape: %s", body)
		}
	}
}

func jsonInt(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// fmtSscan reads the status that starts a fixture's name after its kind ("429_rate_limit.json").
func fmtSscan(s string, status *int) (int, error) {
	return fmt.Sscanf(s, "%d_", status)
}
