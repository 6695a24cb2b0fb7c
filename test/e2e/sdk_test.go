package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
)

// runNode runs one of the SDK client scripts against the stack and returns its stdout.
func runNode(t *testing.T, s *stack, script string, env ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "node", script)
	cmd.Dir = "node"
	cmd.Env = append(cmd.Environ(), append([]string{"TOLLGATE_BASE_URL=" + s.BaseURL, "TOLLGATE_API_KEY=" + s.APIKey}, env...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	return stdout.Bytes()
}

// allKinds names one model served by each provider kind: OpenAI, Anthropic and Gemini.
const allKinds = "mock-gpt,mock-claude,mock-gemini"

// TestAnthropicSDK: the official Anthropic SDK, streaming and not, against a provider of each
// kind, and a tool-calling round trip through an OpenAI-kind provider.
func TestAnthropicSDK(t *testing.T) {
	s := startStack(t)
	out := runNode(t, s, "anthropic_messages.mjs", "TOLLGATE_MODELS="+allKinds, "TOLLGATE_TOOL_MODEL=mock-gpt")
	assertMetered(t, s, out, "messages")
}

// TestGeminiSDK: the official @google/genai SDK, streaming and not, against a provider of each
// kind.
func TestGeminiSDK(t *testing.T) {
	s := startStack(t)
	out := runNode(t, s, "gemini_generate.mjs", "TOLLGATE_MODELS="+allKinds)
	assertMetered(t, s, out, "gemini")
}

// TestOpenAISDKAcrossProviders: the OpenAI SDK served by Anthropic- and Gemini-kind providers,
// with a tool-calling round trip through the Anthropic-kind one.
func TestOpenAISDKAcrossProviders(t *testing.T) {
	s := startStack(t)
	for _, model := range []string{"mock-claude", "mock-gemini"} {
		t.Run(model, func(t *testing.T) {
			runNode(t, s, "openai_chat.mjs", "TOLLGATE_MODEL="+model, "TOLLGATE_SKIP_EU=1")
		})
	}
	runNode(t, s, "openai_tools.mjs", "TOLLGATE_MODEL=mock-claude")
}

// assertMetered checks that every request the script made was settled once, with tokens, for
// the endpoint it used.
func assertMetered(t *testing.T, s *stack, out []byte, endpoint string) {
	t.Helper()
	var sum struct {
		Requests []struct {
			Model    string `json:"model"`
			Streamed bool   `json:"streamed"`
		} `json:"requests"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("summary: %v: %s", err, out)
	}
	want := len(sum.Requests)
	eventually(t, "usage rows", func() (bool, error) {
		var n int
		err := s.DB.QueryRow(t.Context(), `SELECT count(*) FROM usage_records WHERE org_id = $2 AND endpoint = $1 AND prompt_tokens > 0 AND completion_tokens > 0 AND cost_micros > 0`, endpoint, s.OrgID).Scan(&n)
		return n >= want, err
	})
	for _, r := range sum.Requests {
		var n int
		if err := s.DB.QueryRow(t.Context(), `SELECT count(*) FROM usage_records WHERE org_id = $4 AND endpoint = $1 AND model = $2 AND streamed = $3`, endpoint, r.Model, r.Streamed, s.OrgID).Scan(&n); err != nil || n == 0 {
			t.Errorf("no usage row for %s streamed=%v (%v)", r.Model, r.Streamed, err)
		}
	}
}
