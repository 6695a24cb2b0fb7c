package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

// MinThinkingBudget is the smallest extended-thinking budget the Messages API accepts.
const MinThinkingBudget = 1024

// Request is a validated Messages API request. The body is also kept as received, field by
// field, so that the same-protocol path forwards fields the gateway does not interpret
// (cache_control, service_tier, container, mcp_servers, …) unchanged.
type Request struct {
	Model     string
	Stream    bool
	MaxTokens int64
	// System is the system prompt as text blocks; a string system prompt is one block.
	System        []ContentBlock
	Messages      []Message
	Temperature   *float64 // Anthropic's range, 0–1
	TopP          *float64
	TopK          *int64
	StopSequences []string
	Tools         []Tool
	ToolChoice    *ToolChoice
	Thinking      *Thinking
	Metadata      *Metadata

	fields map[string]json.RawMessage
}

// ParseRequest decodes and validates a Messages API request body. Its errors are
// *apierror.Error values (400 invalid_params) naming the parameter at fault.
//
// The limits are the OpenAI parser's: at most openai.MaxMessages messages and
// openai.MaxMessageChars characters of text per message. Unlike the OpenAI parser, it lets the
// last message be the assistant's: Anthropic continues a prefilled assistant turn.
func ParseRequest(body []byte) (*Request, error) {
	fields, derr := apierror.DecodeObject(body)
	if derr != nil {
		return nil, derr
	}
	r := &Request{fields: fields}

	if err := field(fields, "model", &r.Model); err != nil {
		return nil, err
	}
	if r.Model == "" {
		return nil, apierror.InvalidParam("model", "Parameter model is required")
	}
	var maxTokens *int64
	if err := field(fields, "max_tokens", &maxTokens); err != nil {
		return nil, err
	}
	if maxTokens == nil {
		return nil, apierror.InvalidParam("max_tokens", "Parameter max_tokens is required")
	}
	if *maxTokens < 1 {
		return nil, apierror.InvalidParam("max_tokens", "Parameter max_tokens must be at least 1")
	}
	r.MaxTokens = *maxTokens
	if err := field(fields, "stream", &r.Stream); err != nil {
		return nil, err
	}
	if err := r.parseSampling(fields); err != nil {
		return nil, err
	}
	if err := r.parseSystem(fields); err != nil {
		return nil, err
	}
	if err := r.parseMessages(fields); err != nil {
		return nil, err
	}
	if err := r.parseTools(fields); err != nil {
		return nil, err
	}
	if err := field(fields, "metadata", &r.Metadata); err != nil {
		return nil, err
	}
	if err := r.parseThinking(fields); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Request) parseSampling(fields map[string]json.RawMessage) error {
	if err := field(fields, "temperature", &r.Temperature); err != nil {
		return err
	}
	if t := r.Temperature; t != nil && (*t < 0 || *t > 1) {
		return apierror.InvalidParam("temperature", "Parameter temperature must be between 0 and 1")
	}
	if err := field(fields, "top_p", &r.TopP); err != nil {
		return err
	}
	if p := r.TopP; p != nil && (*p < 0 || *p > 1) {
		return apierror.InvalidParam("top_p", "Parameter top_p must be between 0 and 1")
	}
	if err := field(fields, "top_k", &r.TopK); err != nil {
		return err
	}
	if k := r.TopK; k != nil && *k < 0 {
		return apierror.InvalidParam("top_k", "Parameter top_k must not be negative")
	}
	if err := field(fields, "stop_sequences", &r.StopSequences); err != nil {
		return err
	}
	return nil
}

func (r *Request) parseSystem(fields map[string]json.RawMessage) error {
	raw, ok := fields["system"]
	if !ok || isNull(raw) {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		r.System = []ContentBlock{{Type: blockText, Text: &s}}
		return nil
	}
	if err := json.Unmarshal(raw, &r.System); err != nil {
		return apierror.InvalidParam("system", "Parameter system must be a string or an array of text blocks")
	}
	for i, b := range r.System {
		if b.Type != blockText || b.Text == nil {
			return apierror.InvalidParam(fmt.Sprintf("system[%d]", i), "Parameter system[%d] must be a text block", i)
		}
	}
	return nil
}

func (r *Request) parseMessages(fields map[string]json.RawMessage) error {
	raw, ok := fields["messages"]
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
	case len(items) > openai.MaxMessages:
		return apierror.InvalidParam("messages", "Parameter messages can not contain more than %d messages", openai.MaxMessages)
	}
	r.Messages = make([]Message, len(items))
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
		case "user", "assistant":
		case "":
			return apierror.InvalidParam(param+".role", "Parameter %s.role is required", param)
		default:
			// System prompts go in the top-level system parameter, not in messages.
			return apierror.InvalidParam(param+".role", "Parameter %s.role %q is not one of user, assistant", param, m.Role)
		}
		chars, err := m.parseContent(param)
		if err != nil {
			return err
		}
		if chars > openai.MaxMessageChars {
			return apierror.InvalidParam(param+".content", "Parameter %s.content is longer than %d characters", param, openai.MaxMessageChars)
		}
	}
	return nil
}

// parseContent decodes and checks m.Content into m.Blocks and returns its text length in
// characters.
func (m *Message) parseContent(param string) (int, error) {
	param += ".content"
	if len(m.Content) == 0 || isNull(m.Content) {
		return 0, apierror.InvalidParam(param, "Parameter %s is required", param)
	}
	switch m.Content[0] {
	case '"':
		var s string
		if err := json.Unmarshal(m.Content, &s); err != nil {
			return 0, apierror.InvalidParam(param, "Parameter %s is not valid: %s", param, apierror.JSONProblem(err))
		}
		m.Blocks, m.IsString = []ContentBlock{{Type: blockText, Text: &s}}, true
		return utf8.RuneCountInString(s), nil
	case '[':
		if err := json.Unmarshal(m.Content, &m.Blocks); err != nil {
			return 0, apierror.InvalidParam(param, "Parameter %s must be a string or an array of content blocks: %s", param, apierror.JSONProblem(err))
		}
	default:
		return 0, apierror.InvalidParam(param, "Parameter %s must be a string or an array of content blocks", param)
	}
	chars := 0
	for j := range m.Blocks {
		n, err := checkBlock(&m.Blocks[j], m.Role, fmt.Sprintf("%s[%d]", param, j))
		if err != nil {
			return 0, err
		}
		chars += n
	}
	return chars, nil
}

// checkBlock validates the fields of the block types the gateway interprets and returns the
// block's text length. Other block types are accepted: the API grows new ones, and the
// same-protocol path forwards them for the provider to judge.
func checkBlock(b *ContentBlock, role, param string) (int, error) {
	switch b.Type {
	case "":
		return 0, apierror.InvalidParam(param+".type", "Parameter %s.type is required", param)
	case blockText:
		if b.Text == nil {
			return 0, apierror.InvalidParam(param+".text", "Parameter %s.text is required", param)
		}
		return utf8.RuneCountInString(*b.Text), nil
	case blockImage, blockDocument:
		if b.Source == nil || b.Source.Type == "" {
			return 0, apierror.InvalidParam(param+".source", "Parameter %s.source is required", param)
		}
		s := b.Source
		switch {
		case s.Type == "base64" && (s.MediaType == "" || s.Data == ""):
			return 0, apierror.InvalidParam(param+".source", "Parameter %s.source needs media_type and data", param)
		case s.Type == "url" && s.URL == "":
			return 0, apierror.InvalidParam(param+".source.url", "Parameter %s.source.url is required", param)
		}
		return utf8.RuneCountInString(s.Data), nil
	case blockToolUse:
		if role != "assistant" {
			return 0, apierror.InvalidParam(param+".type", "Parameter %s: tool_use blocks are only allowed in assistant messages", param)
		}
		if b.ID == "" || b.Name == "" {
			return 0, apierror.InvalidParam(param, "Parameter %s: tool_use needs id and name", param)
		}
		if !isObject(b.Input) {
			return 0, apierror.InvalidParam(param+".input", "Parameter %s.input must be an object", param)
		}
		return 0, nil
	case blockToolResult:
		if role != "user" {
			return 0, apierror.InvalidParam(param+".type", "Parameter %s: tool_result blocks are only allowed in user messages", param)
		}
		if b.ToolUseID == "" {
			return 0, apierror.InvalidParam(param+".tool_use_id", "Parameter %s.tool_use_id is required", param)
		}
		text, _, err := toolResultText(b.Content)
		if err != nil {
			return 0, apierror.InvalidParam(param+".content", "Parameter %s.content must be a string or an array of content blocks", param)
		}
		return utf8.RuneCountInString(text), nil
	case blockThinking, blockRedactedThinking:
		if role != "assistant" {
			return 0, apierror.InvalidParam(param+".type", "Parameter %s: %s blocks are only allowed in assistant messages", param, b.Type)
		}
	}
	return 0, nil
}

func (r *Request) parseTools(fields map[string]json.RawMessage) error {
	if err := field(fields, "tools", &r.Tools); err != nil {
		return err
	}
	for i, t := range r.Tools {
		param := fmt.Sprintf("tools[%d]", i)
		if t.Name == "" {
			return apierror.InvalidParam(param+".name", "Parameter %s.name is required", param)
		}
		if t.custom() && !isObject(t.InputSchema) {
			return apierror.InvalidParam(param+".input_schema", "Parameter %s.input_schema must be a JSON schema object", param)
		}
	}
	if err := field(fields, "tool_choice", &r.ToolChoice); err != nil {
		return err
	}
	if c := r.ToolChoice; c != nil {
		switch c.Type {
		case "auto", "any", "none":
		case "tool":
			if c.Name == "" {
				return apierror.InvalidParam("tool_choice.name", "Parameter tool_choice.name is required when tool_choice.type is tool")
			}
		default:
			return apierror.InvalidParam("tool_choice.type", "Parameter tool_choice.type must be one of auto, any, tool, none")
		}
	}
	return nil
}

func (r *Request) parseThinking(fields map[string]json.RawMessage) error {
	if err := field(fields, "thinking", &r.Thinking); err != nil {
		return err
	}
	t := r.Thinking
	if t == nil {
		return nil
	}
	switch t.Type {
	case "enabled":
		if t.BudgetTokens < MinThinkingBudget {
			return apierror.InvalidParam("thinking.budget_tokens", "Parameter thinking.budget_tokens must be at least %d", MinThinkingBudget)
		}
		if t.BudgetTokens >= r.MaxTokens {
			return apierror.InvalidParam("thinking.budget_tokens", "Parameter thinking.budget_tokens must be less than max_tokens")
		}
	case "disabled", "adaptive":
	default:
		return apierror.InvalidParam("thinking.type", "Parameter thinking.type must be one of enabled, disabled, adaptive")
	}
	return nil
}

// blockSeparator joins consecutive text blocks flattened into one string. Anthropic keeps them
// apart (SDKs such as Claude Code send a reminder block and the prompt as two blocks), so
// gluing them without a break would merge their last and first words.
const blockSeparator = "\n\n"

// ToPivot converts r into the pivot request, for a provider of another kind. Errors are
// *apierror.Error values naming the parameter that has no equivalent there.
//
// What does not survive the conversion, by design:
//   - thinking and redacted_thinking blocks of earlier turns (signed by Anthropic, meaningless
//     elsewhere); the thinking parameter itself survives as the pivot's reasoning control
//     (enabled: its budget; adaptive: a dynamic budget; disabled: like no thinking field);
//   - cache_control marks, metadata, and fields the gateway does not interpret;
//   - images inside tool_result content (pivot tool messages are text only);
//   - a tool_result's is_error flag survives only as an "Error: " prefix on its text.
func (r *Request) ToPivot() (*openai.ChatRequest, error) {
	out := openai.NewChatRequest()
	out.Model = r.Model
	out.Stream = r.Stream
	out.SetMaxTokens(r.MaxTokens)
	if r.Temperature != nil {
		t := *r.Temperature * 2 // Anthropic's 0–1 onto OpenAI's 0–2
		out.Temperature = &t
	}
	out.TopP, out.TopK = r.TopP, r.TopK
	out.Stop = r.StopSequences
	if t := r.Thinking; t != nil {
		switch t.Type {
		case "enabled":
			out.Reasoning = &openai.Reasoning{Budget: t.BudgetTokens, HasBudget: true}
		case "adaptive":
			out.Reasoning = &openai.Reasoning{Budget: openai.DynamicBudget, HasBudget: true}
		}
		// "disabled" is Anthropic's default, so it says no more than no thinking field at all;
		// translated as "off" it would make providers refuse the request whose models cannot
		// stop reasoning (Gemini 2.5 Pro, OpenAI models before gpt-5.1).
	}

	if len(r.System) > 0 {
		texts := make([]string, 0, len(r.System))
		for _, b := range r.System {
			texts = append(texts, *b.Text)
		}
		out.Messages = append(out.Messages, openai.Message{Role: "system", Content: openai.TextContent(strings.Join(texts, blockSeparator))})
	}
	for i := range r.Messages {
		msgs, err := convertMessage(&r.Messages[i], fmt.Sprintf("messages[%d]", i))
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, msgs...)
	}
	if err := r.convertTools(out); err != nil {
		return nil, err
	}
	out.EstimatePromptBytes()
	return out, nil
}

// convertMessage turns one Anthropic message into pivot messages: a user message's tool_result
// blocks become "tool" messages (first: Anthropic requires them at the start of the turn, and
// OpenAI requires them right after the assistant's tool calls), its other blocks one user
// message; an assistant message's tool_use blocks become tool_calls.
func convertMessage(m *Message, param string) ([]openai.Message, error) {
	var (
		out       []openai.Message
		parts     []openai.ContentPart
		toolCalls []openai.ToolCall
	)
	for j, b := range m.Blocks {
		bparam := fmt.Sprintf("%s.content[%d]", param, j)
		switch b.Type {
		case blockText:
			parts = append(parts, openai.ContentPart{Type: "text", Text: *b.Text})
		case blockImage:
			url, err := imageURL(b.Source, bparam)
			if err != nil {
				return nil, err
			}
			parts = append(parts, openai.ContentPart{Type: "image_url", ImageURL: &openai.ImageURL{URL: url}})
		case blockDocument:
			if b.Source.Type != "text" {
				return nil, unsupported(bparam, "document sources other than text")
			}
			parts = append(parts, openai.ContentPart{Type: "text", Text: b.Source.Data})
		case blockToolUse:
			toolCalls = append(toolCalls, openai.ToolCall{
				ID: b.ID, Type: "function",
				Function: openai.FunctionCall{Name: b.Name, Arguments: compactJSON(b.Input)},
			})
		case blockToolResult:
			text, _, err := toolResultText(b.Content)
			if err != nil {
				return nil, apierror.InvalidParam(bparam+".content", "Parameter %s.content must be a string or an array of content blocks", bparam)
			}
			if b.IsError {
				text = "Error: " + text
			}
			out = append(out, openai.Message{Role: "tool", ToolCallID: b.ToolUseID, Content: openai.TextContent(text)})
		case blockThinking, blockRedactedThinking:
			// Signed reasoning from an earlier Anthropic turn; no other provider can use it.
		default:
			return nil, unsupported(bparam, b.Type+" content blocks")
		}
	}
	if m.Role == "assistant" {
		if len(parts) == 0 && len(toolCalls) == 0 {
			return out, nil // only thinking: nothing left to say
		}
		msg := openai.Message{Role: "assistant"}
		if len(parts) > 0 {
			msg.Content = partsContent(parts)
		}
		if len(toolCalls) > 0 {
			msg.ToolCalls, _ = json.Marshal(toolCalls)
		}
		return append(out, msg), nil
	}
	if len(parts) > 0 {
		out = append(out, openai.Message{Role: "user", Content: partsContent(parts)})
	}
	return out, nil
}

// partsContent keeps the pivot's invariant that text-only content is a plain string.
func partsContent(parts []openai.ContentPart) json.RawMessage {
	texts := make([]string, 0, len(parts))
	for _, p := range parts {
		if p.Type != "text" {
			return openai.PartsContent(parts)
		}
		texts = append(texts, p.Text)
	}
	return openai.TextContent(strings.Join(texts, blockSeparator))
}

// imageURL renders an image source as the pivot's image URL: base64 data becomes a data: URL.
func imageURL(s *Source, param string) (string, error) {
	switch s.Type {
	case "base64":
		return "data:" + s.MediaType + ";base64," + s.Data, nil
	case "url":
		return s.URL, nil
	default:
		return "", unsupported(param+".source", "image sources of type "+s.Type)
	}
}

func (r *Request) convertTools(out *openai.ChatRequest) error {
	for i, t := range r.Tools {
		if !t.custom() {
			return unsupported(fmt.Sprintf("tools[%d]", i), "tools of type "+t.Type)
		}
		out.Tools = append(out.Tools, openai.Tool{
			Type:     "function",
			Function: openai.FunctionDecl{Name: t.Name, Description: t.Description, Parameters: t.InputSchema},
		})
	}
	c := r.ToolChoice
	if c == nil {
		return nil
	}
	var choice any
	switch c.Type {
	case "auto":
		choice = "auto"
	case "any":
		choice = "required"
	case "none":
		choice = "none"
	case "tool":
		choice = map[string]any{"type": "function", "function": map[string]string{"name": c.Name}}
	}
	out.ToolChoice, _ = json.Marshal(choice)
	if c.DisableParallelToolUse && len(out.Tools) > 0 {
		out.Extra["parallel_tool_calls"] = json.RawMessage("false")
	}
	return nil
}

func unsupported(param, what string) *apierror.Error {
	return apierror.InvalidParam(param, "Parameter %s: %s are only supported by Anthropic models", param, what)
}

// compactJSON returns raw without insignificant whitespace, or "{}" when raw is not JSON.
func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if len(raw) == 0 || json.Compact(&b, raw) != nil {
		return "{}"
	}
	return b.String()
}

// toolResultText flattens a tool_result's content (absent, a string, or an array of blocks) to
// text, and reports whether non-text blocks (images, documents) were left out.
func toolResultText(raw json.RawMessage) (string, bool, error) {
	if len(raw) == 0 || isNull(raw) {
		return "", false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, false, nil
	}
	var blocks []ContentBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", false, fmt.Errorf("decode tool_result content: %w", err)
	}
	var text []byte
	dropped := false
	for _, b := range blocks {
		if b.Type != blockText || b.Text == nil {
			dropped = true
			continue
		}
		if len(text) > 0 {
			text = append(text, "\n\n"...)
		}
		text = append(text, *b.Text...)
	}
	return string(text), dropped, nil
}

// field decodes fields[name] into dst when present and not null. Unlike the OpenAI parser it
// leaves the field in place: the same-protocol path forwards the body as received.
func field(fields map[string]json.RawMessage, name string, dst any) error {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return apierror.InvalidParam(name, "Parameter %s is not valid: %s", name, apierror.JSONProblem(err))
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{' && json.Valid(raw)
}
