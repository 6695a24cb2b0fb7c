package mockprovider

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// anthropicRequest is the part of an Anthropic Messages request the mock reads.
type anthropicRequest struct {
	Model     string          `json:"model"`
	MaxTokens *int            `json:"max_tokens"`
	System    json.RawMessage `json:"system"`
	Stream    bool            `json:"stream"`
	Messages  []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
}

type anthropicBlock struct {
	Type    string          `json:"type"`
	Text    string          `json:"text"`
	Content json.RawMessage `json:"content"` // tool_result
}

// handleAnthropic serves POST /v1/messages in Anthropic's Messages API shapes.
func handleAnthropic(cfg Config) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, ok, err := readAnthropic(cfg, w, r)
		if !ok {
			return
		}
		if err != nil || req.MaxTokens == nil {
			anthropicError(w, http.StatusBadRequest, "invalid_request_error", "max_tokens: field required")
			return
		}
		switch req.Model {
		case "mock-error-503":
			anthropicError(w, 529, "overloaded_error", "The mock is overloaded")
			return
		case "mock-error-429":
			anthropicError(w, http.StatusTooManyRequests, "rate_limit_error", "The mock's rate limit was reached")
			return
		}
		var lastUser, toolResult string
		prompt := (len(req.System) + 3) / 4
		for _, m := range req.Messages {
			var blocks []anthropicBlock
			var text string
			if json.Unmarshal(m.Content, &text) != nil {
				_ = json.Unmarshal(m.Content, &blocks)
			}
			toolResult = ""
			for _, b := range blocks {
				switch b.Type {
				case "text":
					text += b.Text
				case "tool_result":
					toolResult += contentText(b.Content)
				}
			}
			prompt += 3 + (len(m.Content)+3)/4
			if m.Role == "user" && toolResult == "" {
				lastUser = text
			}
		}
		var tools []string
		if toolResult == "" {
			for _, t := range req.Tools {
				tools = append(tools, t.Name)
			}
		}
		c := reply(fmt.Sprintf("msg_mock%d", prompt), req.Model, cfg.Created, lastUser, toolResult, tools, prompt, req.MaxTokens)
		if req.Stream {
			anthropicStream(w, c)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": c.id, "type": "message", "role": "assistant", "model": c.model,
			"content": anthropicContent(c), "stop_reason": anthropicStop(c), "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": c.promptTokens, "output_tokens": c.outputTokens(),
				"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
		})
	}
}

func anthropicContent(c completion) []map[string]any {
	if c.tool != nil {
		return []map[string]any{{"type": "tool_use", "id": "toolu_mock1", "name": c.tool.name, "input": json.RawMessage(c.tool.args)}}
	}
	return []map[string]any{{"type": "text", "text": strings.Join(c.words, " ")}}
}

func anthropicStop(c completion) string {
	switch c.finish {
	case "tool_calls":
		return "tool_use"
	case "length":
		return "max_tokens"
	}
	return "end_turn"
}

// anthropicStream writes Anthropic's event grammar: message_start, one content block with its
// deltas, message_delta with the stop reason and output usage, message_stop.
func anthropicStream(w http.ResponseWriter, c completion) {
	w.Header().Set("Content-Type", "text/event-stream")
	flusher, _ := w.(http.Flusher)
	send := func(event string, v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	send("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": c.id, "type": "message", "role": "assistant", "model": c.model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": c.promptTokens, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
	}})
	if c.tool != nil {
		send("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
			"content_block": map[string]any{"type": "tool_use", "id": "toolu_mock1", "name": c.tool.name, "input": map[string]any{}}})
		half := len(c.tool.args) / 2
		for _, frag := range []string{c.tool.args[:half], c.tool.args[half:]} {
			send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": frag}})
		}
	} else {
		send("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
			"content_block": map[string]any{"type": "text", "text": ""}})
		send("ping", map[string]any{"type": "ping"})
		for i, word := range c.words {
			if i == 2 && c.model == "mock-cut-stream" {
				return
			}
			if i > 0 {
				word = " " + word
			}
			send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
				"delta": map[string]any{"type": "text_delta", "text": word}})
		}
	}
	send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	send("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": anthropicStop(c), "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": c.outputTokens()}})
	send("message_stop", map[string]any{"type": "message_stop"})
}

func anthropicError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}

// readAnthropic checks an Anthropic request's key and version header, answering the error
// itself (ok false), and decodes its body; err is the body's decoding error, which each endpoint
// words its own way.
func readAnthropic(cfg Config, w http.ResponseWriter, r *http.Request) (req anthropicRequest, ok bool, err error) {
	if cfg.APIKey != "" && r.Header.Get("X-Api-Key") != cfg.APIKey {
		anthropicError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return req, false, nil
	}
	if r.Header.Get("Anthropic-Version") == "" {
		anthropicError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version header is required")
		return req, false, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	return req, true, err
}
