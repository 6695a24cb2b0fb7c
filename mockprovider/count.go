package mockprovider

import (
	"encoding/json"
	"net/http"
)

// handleAnthropicCount serves POST /v1/messages/count_tokens: the input tokens the same request
// would be billed on /v1/messages. Like Anthropic's, it takes no max_tokens.
func handleAnthropicCount(cfg Config) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, ok, err := readAnthropic(cfg, w, r)
		if !ok {
			return
		}
		switch {
		case err != nil || req.Model == "" || len(req.Messages) == 0:
			anthropicError(w, http.StatusBadRequest, "invalid_request_error", "model and messages are required")
			return
		case req.MaxTokens != nil || req.Stream:
			anthropicError(w, http.StatusBadRequest, "invalid_request_error", "max_tokens, stream: Extra inputs are not permitted")
			return
		}
		prompt := (len(req.System) + 3) / 4
		for _, m := range req.Messages {
			prompt += 3 + (len(m.Content)+3)/4
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"input_tokens": prompt})
	}
}

// geminiCount serves models/{model}:countTokens, with contents or a generateContentRequest
// whose model must name the path's, as Google requires.
func geminiCount(w http.ResponseWriter, model string, body []byte) {
	var wrapped struct {
		Contents               json.RawMessage `json:"contents"`
		GenerateContentRequest *struct {
			Model string `json:"model"`
			geminiRequest
		} `json:"generateContentRequest"`
	}
	if err := json.Unmarshal(body, &wrapped); err != nil {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid JSON payload")
		return
	}
	var req geminiRequest
	switch {
	case wrapped.GenerateContentRequest != nil && wrapped.Contents != nil:
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "contents and generateContentRequest are mutually exclusive")
		return
	case wrapped.GenerateContentRequest != nil:
		if wrapped.GenerateContentRequest.Model != "models/"+model {
			geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "generateContentRequest.model must be models/"+model)
			return
		}
		req = wrapped.GenerateContentRequest.geminiRequest
	default:
		_ = json.Unmarshal(body, &req)
	}
	if len(req.Contents) == 0 {
		geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "contents is required")
		return
	}
	prompt := (len(req.SystemInstruction) + 3) / 4
	for _, c := range req.Contents {
		n := 0
		for _, p := range c.Parts {
			n += len(p.Text) + len(p.FunctionResponse)
		}
		prompt += 3 + (n+3)/4
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"totalTokens":         prompt,
		"promptTokensDetails": []any{map[string]any{"modality": "TEXT", "tokenCount": prompt}},
	})
}
