package openai

import (
	"encoding/json"
	"fmt"
)

// Path is the path, below the provider's base URL, of an OpenAI-kind provider's chat
// completions, the same for every model and for streams: the model and stream travel in the
// body.
func Path(upstreamModel string, stream bool) string { return "/v1/chat/completions" }

// BuildRequest builds the body sent to an OpenAI-kind provider for r, naming the model the
// provider knows. It is rebuilt from the parsed request every time, never edited in place, so a
// retried attempt cannot inherit a previous attempt's bytes.
//
// Usage is always requested on streams (stream_options.include_usage) so that every stream can
// be metered; the client's own choice is honoured on the way back.
func BuildRequest(r *ChatRequest, upstreamModel string) ([]byte, error) {
	out := make(map[string]any, len(r.Extra)+6)
	for k, v := range r.Extra {
		out[k] = v
	}
	out["model"] = upstreamModel
	out["messages"] = r.Messages
	if r.Stream {
		out["stream"] = true
		out["stream_options"] = map[string]bool{"include_usage": true}
	}
	if r.Temperature != nil {
		out["temperature"] = *r.Temperature
	}
	if r.MaxTokens != nil {
		out[r.usedMaxTokensParam] = *r.MaxTokens
	}
	if r.TopP != nil {
		out["top_p"] = *r.TopP
	}
	if r.TopK != nil {
		out["top_k"] = *r.TopK
	}
	if len(r.Stop) > 0 {
		out["stop"] = r.Stop
	}
	if len(r.Tools) > 0 {
		out["tools"] = r.Tools
	}
	if len(r.ToolChoice) > 0 {
		out["tool_choice"] = r.ToolChoice
	}
	if r.ResponseFormat != nil {
		out["response_format"] = r.ResponseFormat
	}
	if effort := r.Reasoning.EffortLevel(); effort != "" {
		out["reasoning_effort"] = effort
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode openai request: %w", err)
	}
	return body, nil
}
