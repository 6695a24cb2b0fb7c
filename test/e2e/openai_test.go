package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

type usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

type sdkSummary struct {
	Plain struct {
		RequestID string `json:"request_id"`
		Usage     usage  `json:"usage"`
	} `json:"plain"`
	StreamUsage struct {
		RequestID string `json:"request_id"`
		Usage     usage  `json:"usage"`
	} `json:"streamUsage"`
	StreamNoUsage struct {
		RequestID string `json:"request_id"`
	} `json:"streamNoUsage"`
	EU struct {
		RequestID string `json:"request_id"`
	} `json:"eu"`
}

// TestOpenAISDK drives the gateway with the official openai npm package and then checks that
// every completed request was metered and charged exactly once in Postgres.
func TestOpenAISDK(t *testing.T) {
	s := startStack(t)
	cmd := exec.CommandContext(t.Context(), "node", "openai_chat.mjs")
	cmd.Dir = "node"
	cmd.Env = append(cmd.Environ(), "TOLLGATE_BASE_URL="+s.BaseURL, "TOLLGATE_API_KEY="+s.APIKey, "TOLLGATE_MODEL=mock-gpt")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("openai SDK script: %v\n%s", err, stderr.String())
	}
	t.Logf("openai SDK script passed: %s", stdout.String())
	var sum sdkSummary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("decode summary: %v", err)
	}

	tests := []struct {
		name      string
		requestID string
		streamed  bool
		region    string
		want      *usage // what the SDK saw, when it saw usage
	}{
		{name: "non-streaming", requestID: sum.Plain.RequestID, want: &sum.Plain.Usage, region: "global"},
		{name: "streaming with usage", requestID: sum.StreamUsage.RequestID, streamed: true, want: &sum.StreamUsage.Usage, region: "global"},
		{name: "streaming without usage", requestID: sum.StreamNoUsage.RequestID, streamed: true, region: "global"},
		{name: "eu", requestID: sum.EU.RequestID, region: "eu"},
	}
	var charged int64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				prompt, completion, cost int64
				streamed                 bool
				model, region, provider  string
			)
			eventually(t, "usage row for "+tt.requestID, func() (bool, error) {
				err := s.DB.QueryRow(t.Context(),
					`SELECT prompt_tokens, completion_tokens, cost_micros, streamed, model, region, provider
					   FROM usage_records WHERE request_id = $1`, tt.requestID).
					Scan(&prompt, &completion, &cost, &streamed, &model, &region, &provider)
				return err == nil, err
			})
			if tt.want != nil && (prompt != tt.want.PromptTokens || completion != tt.want.CompletionTokens) {
				t.Errorf("usage row has %d/%d tokens, the SDK saw %d/%d", prompt, completion, tt.want.PromptTokens, tt.want.CompletionTokens)
			}
			if completion == 0 || prompt == 0 {
				t.Errorf("usage row has no tokens: %d/%d", prompt, completion)
			}
			// 0.15 and 0.60 USD per million tokens, 10% markup, rounded up to whole micro-USD.
			pico := prompt*150_000 + completion*600_000
			if want := (pico*11/10 + 999_999) / 1_000_000; cost != want {
				t.Errorf("cost = %d µUSD, want %d", cost, want)
			}
			if streamed != tt.streamed || model != "mock-gpt" || region != tt.region {
				t.Errorf("row: streamed %v model %s region %s provider %s", streamed, model, region, provider)
			}
			var entries int
			if err := s.DB.QueryRow(t.Context(), `SELECT count(*) FROM ledger_entries WHERE request_id = $1`, tt.requestID).Scan(&entries); err != nil || entries != 1 {
				t.Errorf("ledger entries for the request = %d (%v), want exactly 1", entries, err)
			}
			charged += cost
		})
	}
	var balance int64
	if err := s.DB.QueryRow(t.Context(), `SELECT balance_micros FROM org_balances WHERE org_id = $1`, s.OrgID).Scan(&balance); err != nil {
		t.Fatal(err)
	}
	if want := 5_000_000 - charged; balance != want {
		t.Errorf("balance = %d µUSD, want 5.00 USD minus %d charged = %d", balance, charged, want)
	}
}

// errorShape is OpenAI's error body.
type errorShape struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func post(t *testing.T, s *stack, path, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.BaseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.APIKey)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestBadInput checks that each kind of bad request gets a clear error in OpenAI's shape and that
// nothing is charged for it.
func TestBadInput(t *testing.T) {
	s := startStack(t)
	tests := []struct {
		name       string
		path       string
		body       string
		header     map[string]string
		wantStatus int
		wantCode   string
		wantInMsg  string
	}{
		{name: "malformed json", body: `{"model": "mock-gpt", "messages": [`, wantStatus: 400, wantCode: "invalid_params", wantInMsg: "not valid JSON"},
		{name: "missing model", body: `{"messages":[{"role":"user","content":"hi"}]}`, wantStatus: 400, wantCode: "invalid_params", wantInMsg: "model"},
		{name: "unknown model", body: `{"model":"gpt-99","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 404, wantCode: "invalid_model", wantInMsg: "gpt-99"},
		{name: "empty messages", body: `{"model":"mock-gpt","messages":[]}`, wantStatus: 400, wantCode: "invalid_params", wantInMsg: "messages"},
		{name: "stream_options without stream", body: `{"model":"mock-gpt","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}`, wantStatus: 400, wantCode: "invalid_params", wantInMsg: "stream_options"},
		{name: "retired model names its replacement", body: `{"model":"mock-retired","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 404, wantCode: "model_not_available", wantInMsg: "mock-gpt"},
		{name: "no eu backend", body: `{"model":"eu/mock-503","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 404, wantCode: "model_not_available", wantInMsg: "eu/mock-503"},
		{name: "unknown route", path: "/v1/nothing", body: `{}`, wantStatus: 404, wantCode: "not_found", wantInMsg: "/v1/nothing"},
		{name: "no key", body: `{}`, header: map[string]string{"Authorization": ""}, wantStatus: 401, wantCode: "auth_invalid", wantInMsg: "API key"},
		{name: "x-api-key works too, bad one refused", body: `{}`, header: map[string]string{"Authorization": "", "X-Api-Key": "tg_wrong"}, wantStatus: 401, wantCode: "auth_invalid"},
		{name: "upstream 503", body: `{"model":"mock-503","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 502, wantCode: "provider_error", wantInMsg: "The upstream provider failed (status 503)"}, // the provider's own text is not shown for a 5xx
		{name: "upstream 429", body: `{"model":"mock-429","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 429, wantCode: "rate_limit", wantInMsg: "rate limit"},
		{name: "upstream sends malformed json", body: `{"model":"mock-malformed","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 502, wantCode: "provider_error", wantInMsg: "malformed"},
		{name: "upstream down", body: `{"model":"mock-dead","messages":[{"role":"user","content":"hi"}]}`, wantStatus: 502, wantCode: "no_provider_available"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			resp, body := post(t, s, path, tt.body, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, tt.wantStatus, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content-type = %q, want JSON", ct)
			}
			var e errorShape
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("body is not OpenAI's error shape: %v: %s", err, body)
			}
			if e.Error.Code != tt.wantCode || e.Error.Type == "" || e.Error.Message == "" {
				t.Errorf("error = %+v, want code %s", e.Error, tt.wantCode)
			}
			if !strings.Contains(strings.ToLower(e.Error.Message), strings.ToLower(tt.wantInMsg)) {
				t.Errorf("message %q does not mention %q", e.Error.Message, tt.wantInMsg)
			}
			if id := resp.Header.Get("X-Request-Id"); !strings.HasPrefix(id, "req_") || resp.Header.Get("Request-Id") != id {
				t.Errorf("request id headers: x-request-id %q request-id %q", id, resp.Header.Get("Request-Id"))
			}
		})
	}
	assertNothingCharged(t, s)
}

func assertNothingCharged(t *testing.T, s *stack) {
	t.Helper()
	var rows, entries int
	ctx := context.WithoutCancel(t.Context())
	if err := s.DB.QueryRow(ctx, `SELECT count(*) FROM usage_records WHERE org_id = $1`, s.OrgID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := s.DB.QueryRow(ctx, `SELECT count(*) FROM ledger_entries WHERE kind = 'usage' AND org_id = $1`, s.OrgID).Scan(&entries); err != nil {
		t.Fatal(err)
	}
	if rows != 0 || entries != 0 {
		t.Errorf("bad requests were metered: %d usage rows, %d usage ledger entries", rows, entries)
	}
}
