package anthropic

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

// Version is the anthropic-version header the translation targets. Authentication (x-api-key)
// and the headers themselves are set by the caller, which owns the operator's credentials.
const Version = "2023-06-01"

// Path is the Messages API's path on an Anthropic-kind provider. Unlike Gemini's, it names
// neither the model (the body does) nor streaming (the body's stream field does).
func Path(upstreamModel string, stream bool) string { return "/v1/messages" }

// StructuredOutputTool is the name of the tool BuildRequest forces for a response_format of
// type json_schema. The Messages API has no response_format; a forced tool call is the way
// Anthropic's tool-use guide gives for JSON output that follows a schema, and unlike a system
// instruction its input is constrained by the schema. DecodeResponse and StreamDecoder
// recognise the name (they need no request state for it) and turn the call's input back into
// text content with finish reason "stop", as an OpenAI provider would have answered.
//
// A forced tool excludes the client's own tools, so when the request has tools, or the schema's
// root is not an object (input_schema must be one), the schema goes into the system prompt as
// an instruction instead. json_object always does.
const StructuredOutputTool = "tollgate_structured_output"

// BuildRequest builds the Messages API body for an Anthropic-kind provider from a pivot
// request, naming upstreamModel. max_tokens is required by Anthropic: r's limit, else
// defaultMaxTokens (the catalog's default for the model).
//
// System and developer messages become the system prompt; consecutive messages of one role are
// merged, since Anthropic expects turns to alternate and wants every tool_result answering one
// assistant turn in the single user turn that follows; "tool" messages become tool_result
// blocks. OpenAI's user field becomes metadata.user_id; the reasoning control becomes thinking
// (see setThinking); other OpenAI-only fields (seed, penalties, logprobs, …) have no equivalent
// and are dropped.
//
// Errors caused by the request's content are *apierror.Error values.
func BuildRequest(r *openai.ChatRequest, upstreamModel string, defaultMaxTokens int64) ([]byte, error) {
	out := requestOut{Model: upstreamModel, Stream: r.Stream, TopP: r.TopP, TopK: r.TopK, StopSequences: r.Stop}
	switch {
	case r.MaxTokens != nil:
		out.MaxTokens = *r.MaxTokens
	case defaultMaxTokens > 0:
		out.MaxTokens = defaultMaxTokens
	default:
		return nil, errors.New("anthropic request: no max_tokens and no default for the model")
	}
	if r.Temperature != nil {
		t := min(*r.Temperature/2, 1) // OpenAI's 0–2 onto Anthropic's 0–1
		out.Temperature = &t
	}
	for i := range r.Messages {
		if err := out.addMessage(&r.Messages[i], fmt.Sprintf("messages[%d]", i)); err != nil {
			return nil, err
		}
	}
	if err := out.setTools(r); err != nil {
		return nil, err
	}
	out.setResponseFormat(r.ResponseFormat)
	out.setThinking(r)
	if raw, ok := r.Extra["user"]; ok {
		var user string
		if json.Unmarshal(raw, &user) == nil && user != "" {
			out.Metadata = &Metadata{UserID: user}
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode anthropic request: %w", err)
	}
	return body, nil
}

func (out *requestOut) addMessage(m *openai.Message, param string) error {
	switch m.Role {
	case "system", "developer":
		if text := messageText(m); text != "" {
			out.System = append(out.System, textOut{Type: blockText, Text: text})
		}
		return nil
	case "user":
		blocks, err := partsToBlocks(m.Parts(), param+".content")
		if err != nil {
			return err
		}
		out.append("user", blocks)
	case "assistant":
		var blocks []any
		if text := messageText(m); text != "" {
			blocks = append(blocks, textOut{Type: blockText, Text: text})
		}
		if len(m.ToolCalls) > 0 {
			var calls []openai.ToolCall
			if err := json.Unmarshal(m.ToolCalls, &calls); err != nil {
				return apierror.InvalidParam(param+".tool_calls", "Parameter %s.tool_calls is not valid", param)
			}
			for _, c := range calls {
				blocks = append(blocks, toolUseOut{
					Type: blockToolUse, ID: toolUseID(c.ID), Name: c.Function.Name, Input: toolInput(c.Function.Arguments),
				})
			}
		}
		out.append("assistant", blocks)
	case "tool":
		res := toolResultOut{Type: blockToolResult, ToolUseID: m.ToolCallID}
		if text, ok := m.Text(); ok {
			res.Content = text
		} else {
			blocks, err := partsToBlocks(m.Parts(), param+".content")
			if err != nil {
				return err
			}
			res.Content = blocks
		}
		out.append("user", []any{res})
	}
	return nil
}

// append adds blocks as a turn of role, merged into the previous turn when that has the same
// role. Empty turns are left out: Anthropic refuses empty content.
func (out *requestOut) append(role string, blocks []any) {
	if len(blocks) == 0 {
		return
	}
	if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == role {
		out.Messages[n-1].Content = append(out.Messages[n-1].Content, blocks...)
		return
	}
	out.Messages = append(out.Messages, messageOut{Role: role, Content: blocks})
}

// messageText is a message's text: its string content, or its text parts joined.
func messageText(m *openai.Message) string {
	if s, ok := m.Text(); ok {
		return s
	}
	var texts []string
	for _, p := range m.Parts() {
		if p.Type == "text" && p.Text != "" {
			texts = append(texts, p.Text)
		}
	}
	if len(texts) == 0 && len(m.Refusal) > 0 {
		var refusal string
		_ = json.Unmarshal(m.Refusal, &refusal)
		return refusal
	}
	return strings.Join(texts, blockSeparator)
}

// partsToBlocks converts pivot content parts. Empty text parts are left out: Anthropic refuses
// empty text blocks.
func partsToBlocks(parts []openai.ContentPart, param string) ([]any, error) {
	blocks := make([]any, 0, len(parts))
	for j, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				blocks = append(blocks, textOut{Type: blockText, Text: p.Text})
			}
		case "image_url":
			if p.ImageURL == nil {
				return nil, apierror.InvalidParam(fmt.Sprintf("%s[%d].image_url", param, j), "Parameter %s[%d].image_url is required", param, j)
			}
			src, err := imageSource(p.ImageURL.URL, fmt.Sprintf("%s[%d].image_url.url", param, j))
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, imageOut{Type: blockImage, Source: src})
		default:
			return nil, apierror.InvalidParam(fmt.Sprintf("%s[%d].type", param, j),
				"Parameter %s[%d]: %s content is not supported by Anthropic models", param, j, p.Type)
		}
	}
	return blocks, nil
}

// imageSource turns an image URL into an Anthropic image source: a base64 data: URL into
// inline data, an http(s) URL into a url source that Anthropic fetches itself.
func imageSource(url, param string) (Source, error) {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		meta, data, found := strings.Cut(rest, ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !found || !isBase64 || mediaType == "" || data == "" {
			return Source{}, apierror.InvalidParam(param, "Parameter %s must be a base64 data: URL with a media type", param)
		}
		return Source{Type: "base64", MediaType: mediaType, Data: data}, nil
	}
	if strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://") {
		return Source{Type: "url", URL: url}, nil
	}
	return Source{}, apierror.InvalidParam(param, "Parameter %s must be an http(s) URL or a base64 data: URL", param)
}

func (out *requestOut) setTools(r *openai.ChatRequest) error {
	for _, t := range r.Tools {
		schema := t.Function.Parameters
		if len(schema) == 0 || isNull(schema) {
			schema = json.RawMessage(`{"type":"object","properties":{}}`) // required by Anthropic
		}
		out.Tools = append(out.Tools, Tool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	if len(out.Tools) == 0 {
		return nil // Anthropic refuses tool_choice without tools; OpenAI's "none" means the same
	}
	if len(r.ToolChoice) > 0 {
		var mode string
		var named struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		switch {
		case json.Unmarshal(r.ToolChoice, &mode) == nil:
			switch mode {
			case "auto":
				out.ToolChoice = &ToolChoice{Type: "auto"}
			case "required":
				out.ToolChoice = &ToolChoice{Type: "any"}
			case "none":
				out.ToolChoice = &ToolChoice{Type: "none"}
			default:
				return apierror.InvalidParam("tool_choice", "Parameter tool_choice must be none, auto, required, or a function")
			}
		case json.Unmarshal(r.ToolChoice, &named) == nil && named.Function.Name != "":
			out.ToolChoice = &ToolChoice{Type: "tool", Name: named.Function.Name}
		default:
			return apierror.InvalidParam("tool_choice", "Parameter tool_choice must be none, auto, required, or a function")
		}
	}
	if raw, ok := r.Extra["parallel_tool_calls"]; ok && string(raw) == "false" {
		if out.ToolChoice == nil {
			out.ToolChoice = &ToolChoice{Type: "auto"}
		}
		if out.ToolChoice.Type != "none" {
			out.ToolChoice.DisableParallelToolUse = true
		}
	}
	return nil
}

// setResponseFormat applies response_format; see StructuredOutputTool for the choice made.
func (out *requestOut) setResponseFormat(rf *openai.ResponseFormat) {
	if rf == nil {
		return
	}
	switch rf.Type {
	case "json_schema":
		s := rf.JSONSchema
		if len(out.Tools) == 0 && schemaIsObject(s.Schema) {
			desc := "Give your final answer by calling this tool: its input is the answer."
			if s.Description != "" {
				desc += " " + s.Description
			}
			if s.Name != "" {
				desc += " (" + s.Name + ")"
			}
			out.Tools = []Tool{{Name: StructuredOutputTool, Description: desc, InputSchema: s.Schema}}
			out.ToolChoice = &ToolChoice{Type: "tool", Name: StructuredOutputTool}
			return
		}
		out.System = append(out.System, textOut{Type: blockText, Text: "Respond only with a JSON value, without any other text or code fences, that conforms to this JSON schema:\n" + compactJSON(s.Schema)})
	case "json_object":
		out.System = append(out.System, textOut{Type: blockText, Text: "Respond only with a single JSON object, without any other text or code fences."})
	}
}

func schemaIsObject(schema json.RawMessage) bool {
	var s struct {
		Type string `json:"type"`
	}
	return isObject(schema) && json.Unmarshal(schema, &s) == nil && s.Type == "object"
}

// setThinking turns the pivot's reasoning control into extended thinking, within the Messages
// API's rules (https://docs.claude.com/en/docs/build-with-claude/extended-thinking):
//
//   - the budget is the client's own, else its effort's (openai.Reasoning's table); a dynamic
//     budget, or a Gemini client that only asks to see thoughts, gets medium's. It must be at
//     least MinThinkingBudget and below max_tokens, so it is raised to the one and cut to
//     max_tokens-1, and when both cannot hold, thinking stays off: max_tokens is the limit the
//     credit hold assumed, and it is never raised for thinking;
//   - thinking refuses a modified temperature or top_k and a top_p below 0.95, so those are
//     dropped (temperature and top_k) or raised to 0.95 (top_p) when thinking is on;
//   - thinking refuses a forced tool choice (any, tool, and the structured-output tool), and a
//     turn that continues a tool call must start with the thinking block Anthropic signed, which
//     a pivot request never carries: in both cases thinking stays off, since the tool use is
//     what the client's request depends on;
//   - "off" (OpenAI's none, Gemini's budget 0) is Anthropic's default and needs no field.
func (out *requestOut) setThinking(r *openai.ChatRequest) {
	rc := r.Reasoning
	if rc == nil || rc.Off() {
		return
	}
	budget, ok := rc.TokenBudget()
	if !ok {
		if !rc.HasBudget && (rc.IncludeThoughts == nil || !*rc.IncludeThoughts) {
			return // a Gemini thinkingConfig that neither sets an amount nor asks to see thoughts
		}
		budget, _ = openai.EffortBudget(openai.EffortMedium)
	}
	budget = min(max(budget, MinThinkingBudget), out.MaxTokens-1)
	if budget < MinThinkingBudget {
		return
	}
	if c := out.ToolChoice; c != nil && (c.Type == "any" || c.Type == "tool") {
		return
	}
	if continuesToolUse(r.Messages) {
		return
	}
	out.Thinking = &Thinking{Type: "enabled", BudgetTokens: budget}
	out.Temperature, out.TopK = nil, nil
	if out.TopP != nil && *out.TopP < minThinkingTopP {
		p := minThinkingTopP
		out.TopP = &p
	}
}

// minThinkingTopP is the smallest top_p the Messages API accepts with thinking on.
const minThinkingTopP = 0.95

// continuesToolUse reports whether the request answers the assistant's tool calls: the last
// assistant message called tools and only tool results follow it.
func continuesToolUse(msgs []openai.Message) bool {
	for i := len(msgs) - 1; i >= 0; i-- {
		switch msgs[i].Role {
		case "tool":
			continue
		case "assistant":
			return len(msgs[i].ToolCalls) > 0
		}
		return false
	}
	return false
}
