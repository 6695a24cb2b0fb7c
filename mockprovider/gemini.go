package mockprovider

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// geminiRequest is the part of a generateContent request the mock reads.
type geminiRequest struct {
	Contents []struct {
		Role  string `json:"role"`
		Parts []struct {
			Text             string          `json:"text"`
			FunctionResponse json.RawMessage `json:"functionResponse"`
		} `json:"parts"`
	} `json:"contents"`
	SystemInstruction json.RawMessage `json:"systemInstruction"`
	GenerationConfig  struct {
		MaxOutputTokens *int `json:"maxOutputTokens"`
	} `json:"generationConfig"`
	Tools []struct {
		FunctionDeclarations []struct {
			Name string `json:"name"`
		} `json:"functionDeclarations"`
	} `json:"tools"`
}

// handleGemini serves POST /v1beta/models/{model}:generateContent and :streamGenerateContent in
// the Gemini API's shapes.
func handleGemini(cfg Config) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		model, method, _ := strings.Cut(r.PathValue("call"), ":")
		if cfg.APIKey != "" && r.Header.Get("X-Goog-Api-Key") != cfg.APIKey {
			geminiError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "API key not valid")
			return
		}
		stream := method == "streamGenerateContent"
		if method == "countTokens" {
			body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
			if err != nil {
				geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "unreadable body")
				return
			}
			geminiCount(w, model, body)
			return
		}
		if !stream && method != "generateContent" {
			geminiError(w, http.StatusNotFound, "NOT_FOUND", "unknown method "+method)
			return
		}
		var req geminiRequest
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err != nil || len(req.Contents) == 0 {
			geminiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "contents is required")
			return
		}
		switch model {
		case "mock-error-503":
			geminiError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "The mock is overloaded")
			return
		case "mock-error-429":
			geminiError(w, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", "The mock's rate limit was reached")
			return
		}
		var lastUser, toolResult string
		prompt := (len(req.SystemInstruction) + 3) / 4
		for _, c := range req.Contents {
			var text string
			toolResult = ""
			for _, p := range c.Parts {
				text += p.Text
				if len(p.FunctionResponse) > 0 {
					toolResult += string(p.FunctionResponse)
				}
			}
			prompt += 3 + (len(text)+len(toolResult)+3)/4
			if c.Role == "user" && toolResult == "" {
				lastUser = text
			}
		}
		var tools []string
		if toolResult == "" {
			for _, t := range req.Tools {
				for _, f := range t.FunctionDeclarations {
					tools = append(tools, f.Name)
				}
			}
		}
		c := reply(fmt.Sprintf("mockresp%d", prompt), model, cfg.Created, lastUser, toolResult, tools, prompt, req.GenerationConfig.MaxOutputTokens)
		if stream {
			geminiStream(w, c)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(geminiFrame(c, geminiParts(c), true))
	}
}

func geminiParts(c completion) []map[string]any {
	if c.tool != nil {
		return []map[string]any{{"functionCall": map[string]any{"name": c.tool.name, "args": json.RawMessage(c.tool.args)}}}
	}
	return []map[string]any{{"text": strings.Join(c.words, " ")}}
}

// geminiFrame is one GenerateContentResponse; the final one carries the finish reason, and every
// one carries usage so far.
func geminiFrame(c completion, parts []map[string]any, final bool) map[string]any {
	cand := map[string]any{"content": map[string]any{"role": "model", "parts": parts}, "index": 0}
	if final {
		finish := "STOP"
		if c.finish == "length" {
			finish = "MAX_TOKENS"
		}
		cand["finishReason"] = finish
	}
	return map[string]any{
		"candidates": []any{cand},
		"usageMetadata": map[string]any{"promptTokenCount": c.promptTokens, "candidatesTokenCount": c.outputTokens(),
			"totalTokenCount": c.promptTokens + c.outputTokens()},
		"modelVersion": c.model, "responseId": c.id,
	}
}

// geminiStream writes one data frame per word (Gemini streams whole function calls), the last
// with the finish reason.
func geminiStream(w http.ResponseWriter, c completion) {
	w.Header().Set("Content-Type", "text/event-stream")
	flusher, _ := w.(http.Flusher)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\r\n\r\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	if c.tool != nil {
		send(geminiFrame(c, geminiParts(c), true))
		return
	}
	for i, word := range c.words {
		if i == 2 && c.model == "mock-cut-stream" {
			return
		}
		if i > 0 {
			word = " " + word
		}
		send(geminiFrame(c, []map[string]any{{"text": word}}, i == len(c.words)-1))
	}
}

func geminiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": status, "message": msg, "status": code}})
}
