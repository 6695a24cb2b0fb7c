package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

// blockSeparator joins consecutive text blocks flattened into one string. Anthropic keeps them
// apart (SDKs such as Claude Code send a reminder block and the prompt as two blocks), so
// gluing them without a break would merge their last and first words.
const blockSeparator = "\n\n"

// ToOpenAI converts r into the pivot request, for a provider of another kind. Errors are
// *apierror.Error values naming the parameter that has no equivalent there.
//
// What does not survive the conversion, by design:
//   - thinking and redacted_thinking blocks of earlier turns (signed by Anthropic, meaningless
//     elsewhere); the thinking parameter itself survives as the pivot's reasoning control
//     (enabled: its budget; adaptive: a dynamic budget; disabled: like no thinking field);
//   - cache_control marks, metadata, and fields the gateway does not interpret;
//   - images inside tool_result content (pivot tool messages are text only);
//   - a tool_result's is_error flag survives only as an "Error: " prefix on its text.
func (r *Request) ToOpenAI() (*openai.ChatRequest, error) {
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

// UpstreamBody builds the body for an Anthropic-kind provider: the client's request as
// received, every field kept, with the provider's model name. It is rebuilt from the parsed
// fields on every call, never edited in place, so a retried attempt cannot inherit bytes from a
// previous one.
//
// One thing is taken out: thinking blocks without a signature. Anthropic signs every thinking
// block it returns and refuses a request whose thinking block's signature does not verify; an
// unsigned one can only come from an answer the gateway translated from another provider (see
// ResponseFromOpenAI), which a fallback chain may have served on an earlier turn.
func UpstreamBody(r *Request, upstreamModel string) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(r.fields))
	for k, v := range r.fields {
		out[k] = v
	}
	model, err := json.Marshal(upstreamModel)
	if err != nil {
		return nil, fmt.Errorf("encode anthropic model: %w", err)
	}
	out["model"] = model
	if r.hasUnsignedThinking() {
		if out["messages"], err = withoutUnsignedThinking(r.fields["messages"]); err != nil {
			return nil, fmt.Errorf("encode anthropic messages: %w", err)
		}
	}
	body, err := marshalVerbatim(out)
	if err != nil {
		return nil, fmt.Errorf("encode anthropic request: %w", err)
	}
	return body, nil
}

// marshalVerbatim encodes v without encoding/json's HTML escaping, so that forwarded text
// keeps its bytes ("<" stays "<" rather than becoming "\u003c").
func marshalVerbatim(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// WithMaxTokens returns a copy of r whose max_tokens is n: the gateway always sends the output
// limit its credit hold assumed. r is not modified (every attempt starts from the client's).
//
// When n is below the client's own max_tokens (the model's maximum is lower), a thinking
// budget must stay below it too, or Anthropic refuses the request: the budget is cut to n-1,
// and thinking is turned off when that leaves less than MinThinkingBudget.
func (r *Request) WithMaxTokens(n int64) *Request {
	c := *r
	c.MaxTokens = n
	c.fields = make(map[string]json.RawMessage, len(r.fields))
	for k, v := range r.fields {
		c.fields[k] = v
	}
	c.fields["max_tokens"] = strconv.AppendInt(nil, n, 10)
	if t := r.Thinking; t != nil && t.Type == "enabled" && t.BudgetTokens >= n {
		fit := Thinking{Type: "enabled", BudgetTokens: n - 1}
		if fit.BudgetTokens < MinThinkingBudget {
			fit = Thinking{Type: "disabled"}
		}
		c.Thinking = &fit
		c.fields["thinking"], _ = json.Marshal(fit)
	}
	return &c
}

func (r *Request) hasUnsignedThinking() bool {
	for i := range r.Messages {
		for _, b := range r.Messages[i].Blocks {
			if b.Type == blockThinking && (b.Signature == nil || *b.Signature == "") {
				return true
			}
		}
	}
	return false
}

// withoutUnsignedThinking returns the messages array raw without its unsigned thinking blocks,
// every other byte of every other block kept; a message left with no content goes too (the API
// joins consecutive turns of one role).
func withoutUnsignedThinking(raw json.RawMessage) (json.RawMessage, error) {
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return nil, err
	}
	kept := msgs[:0]
	for _, m := range msgs {
		var blocks []json.RawMessage
		if json.Unmarshal(m["content"], &blocks) != nil {
			kept = append(kept, m) // a string content has no thinking
			continue
		}
		out := blocks[:0]
		for _, b := range blocks {
			var probe struct {
				Type      string `json:"type"`
				Signature string `json:"signature"`
			}
			if json.Unmarshal(b, &probe) == nil && probe.Type == blockThinking && probe.Signature == "" {
				continue
			}
			out = append(out, b)
		}
		if len(out) == 0 {
			continue
		}
		content, err := marshalVerbatim(out)
		if err != nil {
			return nil, err
		}
		m["content"] = content
		kept = append(kept, m)
	}
	return marshalVerbatim(kept)
}
