package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate/extproc/apierror"
)

// Limits from seed 000.
const (
	MaxMessages        = 1024
	MaxMessageChars    = 200_000
	MaxTemperature     = 2.0
	perMessageOverhead = 16 // bytes of framing a provider may count as prompt tokens per message
)

// ChatRequest is a validated chat-completions request. Fields the gateway does not interpret are
// kept verbatim in Extra and forwarded as they came.
type ChatRequest struct {
	Model               string
	Messages            []Message
	Stream              bool
	IncludeUsage        bool // stream_options.include_usage as the client asked
	Temperature         *float64
	TopP                *float64
	TopK                *int64 // not OpenAI's; kept for providers that take it
	Stop                []string
	MaxTokens           *int64 // max_completion_tokens, else max_tokens
	Tools               []Tool
	ToolChoice          json.RawMessage // "none" | "auto" | "required" | {"type":"function","function":{"name"}}
	ResponseFormat      *ResponseFormat
	Reasoning           *Reasoning // nil: the client said nothing about reasoning
	usedMaxTokensParam  string
	Extra               map[string]json.RawMessage
	promptBytesEstimate int64
	media               MediaParts
}

// PromptBytes is an upper bound on the prompt's size in bytes: a prompt cannot have more tokens
// than this, which makes it a safe basis for a credit hold.
func (r *ChatRequest) PromptBytes() int64 { return r.promptBytesEstimate }

// ParseRequest decodes and validates body. Its errors are *apierror.Error values naming the
// parameter at fault.
func ParseRequest(body []byte) (*ChatRequest, error) {
	fields, derr := apierror.DecodeObject(body)
	if derr != nil {
		return nil, derr
	}
	r := &ChatRequest{Extra: fields}

	if err := take(fields, "model", &r.Model); err != nil {
		return nil, err
	}
	if r.Model == "" {
		return nil, apierror.InvalidParam("model", "Parameter model is required")
	}
	var stream *bool
	if err := take(fields, "stream", &stream); err != nil {
		return nil, err
	}
	r.Stream = stream != nil && *stream
	if raw, ok := fields["stream_options"]; ok && !isNull(raw) {
		if !r.Stream {
			return nil, apierror.InvalidParam("stream_options", "Parameter stream_options is not supported while stream is false")
		}
		var so struct {
			IncludeUsage *bool `json:"include_usage"`
		}
		if err := json.Unmarshal(raw, &so); err != nil {
			return nil, apierror.InvalidParam("stream_options", "Parameter stream_options is not valid: %s", apierror.JSONProblem(err))
		}
		r.IncludeUsage = so.IncludeUsage != nil && *so.IncludeUsage
	}
	delete(fields, "stream_options")

	var n *int64
	if err := take(fields, "n", &n); err != nil {
		return nil, err
	}
	if n != nil && *n > 1 {
		return nil, apierror.InvalidParam("n", "Parameter n greater than 1 is not supported")
	}
	if n != nil && *n < 1 {
		return nil, apierror.InvalidParam("n", "Parameter n must be 1")
	}
	if err := take(fields, "temperature", &r.Temperature); err != nil {
		return nil, err
	}
	if t := r.Temperature; t != nil && (*t < 0 || *t > MaxTemperature) {
		return nil, apierror.InvalidParam("temperature", "Parameter temperature must be between 0 and 2")
	}
	if err := take(fields, "top_p", &r.TopP); err != nil {
		return nil, err
	}
	if err := take(fields, "top_k", &r.TopK); err != nil {
		return nil, err
	}
	if raw, ok := fields["stop"]; ok && !isNull(raw) {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			r.Stop = []string{one}
		} else if err := json.Unmarshal(raw, &r.Stop); err != nil {
			return nil, apierror.InvalidParam("stop", "Parameter stop must be a string or an array of strings")
		}
	}
	delete(fields, "stop")
	if err := take(fields, "tools", &r.Tools); err != nil {
		return nil, err
	}
	for i, t := range r.Tools {
		if t.Type != "function" || t.Function.Name == "" {
			return nil, apierror.InvalidParam(fmt.Sprintf("tools[%d]", i), "Parameter tools[%d] must be a function with a name", i)
		}
	}
	if raw, ok := fields["tool_choice"]; ok && !isNull(raw) {
		r.ToolChoice = raw
	}
	delete(fields, "tool_choice")
	if err := take(fields, "response_format", &r.ResponseFormat); err != nil {
		return nil, err
	}
	if f := r.ResponseFormat; f != nil && f.Type != "text" && f.Type != "json_object" && !(f.Type == "json_schema" && f.JSONSchema != nil) {
		return nil, apierror.InvalidParam("response_format", "Parameter response_format must be text, json_object, or json_schema with a json_schema")
	}
	for _, p := range []string{"max_completion_tokens", "max_tokens"} {
		var v *int64
		if err := take(fields, p, &v); err != nil {
			return nil, err
		}
		if v == nil {
			continue
		}
		if *v < 1 {
			return nil, apierror.InvalidParam(p, "Parameter %s must be at least 1", p)
		}
		if r.MaxTokens == nil {
			r.MaxTokens, r.usedMaxTokensParam = v, p
		}
	}
	if err := r.parseReasoningEffort(fields); err != nil {
		return nil, err
	}
	if err := r.parseMessages(fields); err != nil {
		return nil, err
	}
	r.EstimatePromptBytes()
	return r, nil
}

func (r *ChatRequest) parseMessages(fields map[string]json.RawMessage) error {
	raw, ok := fields["messages"]
	delete(fields, "messages")
	if !ok || isNull(raw) {
		return apierror.InvalidParam("messages", "Parameter messages is required")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return apierror.InvalidParam("messages", "Parameter messages must be an array")
	}
	switch {
	case len(items) == 0:
		return apierror.InvalidParam("messages", "Parameter messages can not be empty")
	case len(items) > MaxMessages:
		return apierror.InvalidParam("messages", "Parameter messages can not contain more than %d messages", MaxMessages)
	}
	r.Messages = make([]Message, len(items))
	leading := true
	for i, item := range items {
		param := fmt.Sprintf("messages[%d]", i)
		if isNull(item) {
			return apierror.InvalidParam("messages", "Parameter messages can not contain null elements")
		}
		m := &r.Messages[i]
		if err := json.Unmarshal(item, m); err != nil {
			return apierror.InvalidParam(param, "Parameter %s is not a valid message: %s", param, apierror.JSONProblem(err))
		}
		switch m.Role {
		case "system", "developer":
			if !leading {
				return apierror.InvalidParam(param+".role", "Parameter %s.role: system and developer messages are only allowed at the start", param)
			}
		case "user", "assistant", "tool":
			leading = false
		case "":
			return apierror.InvalidParam(param+".role", "Parameter %s.role is required", param)
		default:
			return apierror.InvalidParam(param+".role", "Parameter %s.role %q is not one of system, developer, user, assistant, tool", param, m.Role)
		}
		chars, err := m.normaliseContent(param)
		if err != nil {
			return err
		}
		if chars > MaxMessageChars {
			return apierror.InvalidParam(param+".content", "Parameter %s.content is longer than %d characters", param, MaxMessageChars)
		}
	}
	last := r.Messages[len(r.Messages)-1].Role
	if last != "user" && last != "tool" {
		return apierror.InvalidParam("messages", "Parameter messages: the last message must have the user role")
	}
	return nil
}

// normaliseContent checks the message's content, flattens an array of text parts into a string,
// and returns the content's length in characters.
func (m *Message) normaliseContent(param string) (int, error) {
	if len(m.Content) == 0 || isNull(m.Content) {
		if m.Role == "assistant" && len(m.ToolCalls) > 0 {
			m.Content = nil
			return 0, nil
		}
		return 0, apierror.InvalidParam(param+".content", "Parameter messages can not contain elements without content")
	}
	switch m.Content[0] {
	case '"':
		var s string
		if err := json.Unmarshal(m.Content, &s); err != nil {
			return 0, apierror.InvalidParam(param+".content", "Parameter %s.content is not valid: %s", param, apierror.JSONProblem(err))
		}
		return utf8.RuneCountInString(s), nil
	case '[':
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(m.Content, &parts); err != nil {
			return 0, apierror.InvalidParam(param+".content", "Parameter %s.content must be a string or an array of content parts", param)
		}
		var text bytes.Buffer
		allText, chars := true, 0
		for j, p := range parts {
			if p.Type == "" {
				return 0, apierror.InvalidParam(fmt.Sprintf("%s.content[%d].type", param, j), "Parameter %s.content[%d].type is required", param, j)
			}
			if p.Type != "text" {
				allText = false
				continue
			}
			if p.Text == nil {
				return 0, apierror.InvalidParam(fmt.Sprintf("%s.content[%d].text", param, j), "Parameter %s.content[%d].text is required", param, j)
			}
			text.WriteString(*p.Text)
			chars += utf8.RuneCountInString(*p.Text)
		}
		if allText {
			flat, _ := json.Marshal(text.String())
			m.Content = flat
		}
		return chars, nil
	default:
		return 0, apierror.InvalidParam(param+".content", "Parameter %s.content must be a string or an array of content parts", param)
	}
}

// take decodes fields[name] into dst, if present and not null, and removes it from fields.
func take(fields map[string]json.RawMessage, name string, dst any) error {
	raw, ok := fields[name]
	if !ok {
		return nil
	}
	delete(fields, name)
	if isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return apierror.InvalidParam(name, "Parameter %s is not valid: %s", name, apierror.JSONProblem(err))
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// SetMaxTokens sets the output limit, sent to OpenAI-kind providers as max_completion_tokens.
func (r *ChatRequest) SetMaxTokens(n int64) {
	r.MaxTokens, r.usedMaxTokensParam = &n, "max_completion_tokens"
}

// NewChatRequest returns an empty pivot request for another protocol's converter to fill.
func NewChatRequest() *ChatRequest { return &ChatRequest{Extra: map[string]json.RawMessage{}} }

// MediaParts counts a request's non-text content parts by kind.
type MediaParts struct{ Images, Documents, Audio int64 }

// MediaParts counts the request's non-text parts: a provider counts each at its own rate, not
// by its bytes (an image URL of 40 bytes may cost 1,500 tokens), so a prompt bound adds a worst
// case for each. Part types other than text, refusal, images and audio count as documents, the
// dearest kind.
func (r *ChatRequest) MediaParts() MediaParts { return r.media }

// EstimatePromptBytes recomputes PromptBytes and MediaParts for a request built by a converter.
func (r *ChatRequest) EstimatePromptBytes() {
	r.promptBytesEstimate = 0
	r.media = MediaParts{}
	for i := range r.Messages {
		m := &r.Messages[i]
		r.promptBytesEstimate += int64(len(m.Content)) + int64(len(m.ToolCalls)) + perMessageOverhead
		if len(m.Content) > 0 && m.Content[0] == '[' {
			// Text-only arrays were flattened into a string at parse time; what is left holds
			// other parts, which are rare enough to decode again here.
			r.media.add(m.Content)
		}
	}
	for _, t := range r.Tools {
		r.promptBytesEstimate += int64(len(t.Function.Name)+len(t.Function.Description)+len(t.Function.Parameters)) + perMessageOverhead
	}
}

func (c *MediaParts) add(content json.RawMessage) {
	var parts []struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(content, &parts) != nil {
		return
	}
	for _, p := range parts {
		switch {
		case p.Type == "text", p.Type == "refusal":
		case strings.Contains(p.Type, "image"):
			c.Images++
		case strings.Contains(p.Type, "audio"):
			c.Audio++
		default:
			c.Documents++
		}
	}
}

// WithMaxTokens returns a copy of r whose output limit is n, sent as param
// ("max_completion_tokens" or "max_tokens"): the gateway always sends the output limit its credit
// hold assumed, in the parameter the provider expects. r is not modified.
func (r *ChatRequest) WithMaxTokens(n int64, param string) *ChatRequest {
	c := *r
	c.MaxTokens, c.usedMaxTokensParam = &n, param
	return &c
}
