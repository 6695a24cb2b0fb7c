// Package mockprovider is a deterministic model provider for local runs and tests. It speaks
// OpenAI's chat completions, Anthropic's Messages API and Gemini's generateContent (and the
// latter two's token counting: /v1/messages/count_tokens, :countTokens), each with
// real usage numbers and real SSE streams, so the whole gateway can be tried without a provider
// account. It answers with text derived from the prompt; when tools are offered and the user
// spoke last it calls the first tool (arguments {"city":"Paris"}), and after a tool result it
// reports that result.
//
// Some upstream model names script failures, for tests of the gateway's error paths:
//
//	mock-error-503     answers 503 with an OpenAI error body
//	mock-error-429     answers 429 with an OpenAI error body
//	mock-malformed     answers 200 with a body that is not JSON
//	mock-broken-stream streams two chunks, then a frame that is not JSON
//	mock-cut-stream    streams two chunks, then ends without [DONE]
//	mock-flaky         answers 503 twice, then succeeds, and again (for retry tests)
//	mock-hang          reads the request and never answers, until the caller gives up (for
//	                   timeout tests)
//	mock-bill-max      answers normally but bills the most it was allowed: output tokens equal to
//	                   the output limit it was sent, or 10^12 when it was sent none (an
//	                   adversarial provider, for metering tests)
package mockprovider

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Config configures the mock.
type Config struct {
	// APIKey, when set, must arrive as "Authorization: Bearer <APIKey>", which proves the gateway
	// injected the provider credential.
	APIKey string
	// Created is the "created" timestamp of every completion, fixed for reproducible output.
	Created int64
}

// Handler returns the mock's HTTP handler.
func Handler(cfg Config, log *slog.Logger) http.Handler {
	var flaky atomic.Int64 // calls of mock-flaky so far
	if cfg.Created == 0 {
		cfg.Created = 1_767_225_600 // 2026-01-01T00:00:00Z
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		if cfg.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+cfg.APIKey {
			writeError(w, http.StatusUnauthorized, "invalid_api_key", "Incorrect API key provided")
			return
		}
		var req chatRequest
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "We could not parse the JSON body of your request.")
			return
		}
		log.Debug("mock completion", "model", req.Model, "stream", req.Stream, "messages", len(req.Messages))
		switch req.Model {
		case "mock-error-503":
			writeError(w, http.StatusServiceUnavailable, "server_error", "The mock is overloaded")
			return
		case "mock-flaky":
			if flaky.Add(1)%3 != 0 {
				writeError(w, http.StatusServiceUnavailable, "server_error", "The mock is flaky")
				return
			}
		case "mock-error-429":
			writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "The mock's rate limit was reached")
			return
		case "mock-hang":
			<-r.Context().Done()
			return
		case "mock-malformed":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id": "cmpl-broken", "choices": [`)
			return
		}
		// Like OpenAI, the mock reports the (operator's) account limits; the gateway must not pass
		// them off as the client's.
		w.Header().Set("X-Ratelimit-Limit-Requests", "10000")
		w.Header().Set("X-Ratelimit-Remaining-Requests", "9999")
		w.Header().Set("Openai-Organization", "mock-operator-org")
		c := complete(&req, cfg.Created)
		if req.Stream {
			stream(w, &req, c)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.response())
	})
	mux.HandleFunc("POST /v1/messages", handleAnthropic(cfg))
	mux.HandleFunc("POST /v1/messages/count_tokens", handleAnthropicCount(cfg))
	mux.HandleFunc("POST /v1beta/models/{call}", handleGemini(cfg))
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"mock-1","object":"model","created":1767225600,"owned_by":"tollgate"}]}`)
	})
	return mux
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int `json:"max_tokens"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
}

// completion is one deterministic answer: words of text, or a call of the first tool offered.
type completion struct {
	id, model    string
	created      int64
	words        []string
	finish       string
	promptTokens int
	tool         *toolCall
	// billed, when positive, is the output the mock reports whatever it wrote (mock-bill-max).
	billed int
}

// toolCall is the mock's call of a tool: always the first one offered, always for Paris.
type toolCall struct {
	id, name, args string
}

// mockToolArgs are the arguments of every tool call the mock makes.
const mockToolArgs = `{"city":"Paris"}`

// reply decides the answer to a conversation: if tools are offered and the user spoke last, call
// the first tool; after a tool result, report it; otherwise echo the last user text.
func reply(id, model string, created int64, lastUser, toolResult string, tools []string, prompt int, limit *int) completion {
	c := completion{id: id, model: model, created: created, finish: "stop", promptTokens: prompt}
	switch {
	case toolResult != "":
		c.words = strings.Fields("The tool said: " + toolResult)
	case len(tools) > 0:
		c.tool = &toolCall{id: "call_mock1", name: tools[0], args: mockToolArgs}
		c.finish = "tool_calls"
		c.words = nil
		return c
	default:
		if len(lastUser) > 60 {
			lastUser = lastUser[:60]
		}
		c.words = strings.Fields("Hello from the Tollgate mock provider. You said: " + lastUser)
	}
	if limit != nil && *limit < len(c.words) {
		c.words, c.finish = c.words[:max(*limit, 0)], "length"
	}
	if model == "mock-bill-max" {
		c.billed = 1_000_000_000_000
		if limit != nil {
			c.billed = *limit
		}
	}
	return c
}

// outputTokens counts the completion's tokens: its words, or the tool call's arguments.
func (c completion) outputTokens() int {
	if c.billed > 0 {
		return c.billed
	}
	if c.tool != nil {
		return (len(c.tool.args) + 3) / 4
	}
	return len(c.words)
}

// complete answers an OpenAI chat request.
func complete(req *chatRequest, created int64) completion {
	var lastUser, toolResult string
	prompt := 0
	for _, m := range req.Messages {
		text := contentText(m.Content)
		prompt += 3 + (len(text)+3)/4
		switch m.Role {
		case "user":
			lastUser, toolResult = text, ""
		case "tool":
			toolResult = text
		}
	}
	var tools []string
	if toolResult == "" && (len(req.Messages) == 0 || req.Messages[len(req.Messages)-1].Role == "user") {
		for _, t := range req.Tools {
			tools = append(tools, t.Function.Name)
		}
	}
	limit := req.MaxCompletionTokens
	if limit == nil {
		limit = req.MaxTokens
	}
	return reply(fmt.Sprintf("chatcmpl-mock%d", prompt), req.Model, created, lastUser, toolResult, tools, prompt, limit)
}

func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

func (c completion) usage() map[string]any {
	return map[string]any{
		"prompt_tokens":             c.promptTokens,
		"completion_tokens":         c.outputTokens(),
		"total_tokens":              c.promptTokens + c.outputTokens(),
		"prompt_tokens_details":     map[string]int{"cached_tokens": 0},
		"completion_tokens_details": map[string]int{"reasoning_tokens": 0},
	}
}

func (c completion) response() map[string]any {
	msg := map[string]any{"role": "assistant", "content": strings.Join(c.words, " "), "refusal": nil}
	if c.tool != nil {
		msg["content"] = nil
		msg["tool_calls"] = []map[string]any{{"id": c.tool.id, "type": "function",
			"function": map[string]any{"name": c.tool.name, "arguments": c.tool.args}}}
	}
	return map[string]any{
		"id": c.id, "object": "chat.completion", "created": c.created, "model": c.model,
		"choices": []map[string]any{{
			"index":         0,
			"message":       msg,
			"logprobs":      nil,
			"finish_reason": c.finish,
		}},
		"usage":              c.usage(),
		"system_fingerprint": "fp_mock",
	}
}

// stream writes c as OpenAI's SSE grammar: a role chunk, one chunk per word, a finish chunk,
// the usage chunk when asked for, and [DONE]. Each event is flushed on its own.
func stream(w http.ResponseWriter, req *chatRequest, c completion) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		ch := map[string]any{
			"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.model,
			"system_fingerprint": "fp_mock",
			"choices":            []map[string]any{{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		}
		if includeUsage {
			ch["usage"] = nil
		}
		return ch
	}
	send(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	if c.tool != nil {
		// The name first, then the arguments in two fragments, as OpenAI streams calls.
		half := len(c.tool.args) / 2
		send(chunk(map[string]any{"tool_calls": []map[string]any{{"index": 0, "id": c.tool.id, "type": "function",
			"function": map[string]any{"name": c.tool.name, "arguments": ""}}}}, nil))
		for _, frag := range []string{c.tool.args[:half], c.tool.args[half:]} {
			send(chunk(map[string]any{"tool_calls": []map[string]any{{"index": 0, "function": map[string]any{"arguments": frag}}}}, nil))
		}
	}
	for i, word := range c.words {
		if i == 2 {
			switch req.Model {
			case "mock-broken-stream":
				_, _ = io.WriteString(w, "data: {\"id\": not json\n\n")
				return
			case "mock-cut-stream":
				return
			}
		}
		if i > 0 {
			word = " " + word
		}
		send(chunk(map[string]any{"content": word}, nil))
	}
	send(chunk(map[string]any{}, c.finish))
	if includeUsage {
		send(map[string]any{
			"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.model,
			"system_fingerprint": "fp_mock", "choices": []any{}, "usage": c.usage(),
		})
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": code, "param": nil, "code": code}})
}

// ReadHeaderTimeout bounds slow clients of the mock.
const ReadHeaderTimeout = 10 * time.Second
