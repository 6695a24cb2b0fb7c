package gemini

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

// ToOpenAI converts the request into the pivot, for a provider that is not Gemini.
//
// systemInstruction becomes a system message; model turns become assistant messages whose
// functionCall parts are tool_calls (the part's id, else a deterministic "call_<n>"); a user
// turn's functionResponse parts become "tool" messages, placed before the turn's other parts
// because the pivot wants tool results right after the calls they answer. A response is matched
// to its call by id, else to the earliest unanswered call of the same name. Thought parts are
// the model's own reasoning and are dropped. What the pivot cannot express (non-image media,
// built-in tools such as googleSearch) is refused with a 400 rather than silently lost.
func (r *Request) ToOpenAI() (*openai.ChatRequest, error) {
	c := openai.NewChatRequest()
	c.Model = r.Model
	c.Stream = r.Stream
	// Gemini streams always carry usageMetadata, so the client's stream needs the usage.
	c.IncludeUsage = r.Stream
	if si := r.SystemInstruction; si != nil {
		if text := joinText(si.Parts); text != "" {
			c.Messages = append(c.Messages, openai.Message{Role: "system", Content: openai.TextContent(text)})
		}
	}
	calls := &callBook{pending: map[string][]string{}, ids: map[string]string{}}
	for i := range r.Contents {
		var err error
		param := fmt.Sprintf("contents[%d]", i)
		if r.Contents[i].Role == RoleModel {
			err = modelMessage(c, param, &r.Contents[i], calls)
		} else {
			err = userMessages(c, param, &r.Contents[i], calls)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := pivotGeneration(c, r.GenerationConfig); err != nil {
		return nil, err
	}
	if err := pivotTools(c, r.Tools, r.ToolConfig); err != nil {
		return nil, err
	}
	c.EstimatePromptBytes()
	return c, nil
}

// callBook tracks the function calls made so far, for matching responses to them.
type callBook struct {
	n       int
	pending map[string][]string // function name → ids of unanswered calls, oldest first
	ids     map[string]string   // unanswered id → function name
}

func (b *callBook) add(fc *FunctionCall) string {
	id := fc.ID
	if id == "" {
		id = fmt.Sprintf("call_%d", b.n)
	}
	b.n++
	b.pending[fc.Name] = append(b.pending[fc.Name], id)
	b.ids[id] = fc.Name
	return id
}

func (b *callBook) answer(fr *FunctionResponse) (string, bool) {
	id := fr.ID
	if _, ok := b.ids[id]; id == "" || !ok {
		q := b.pending[fr.Name]
		if len(q) == 0 {
			return "", false
		}
		id = q[0]
	}
	name := b.ids[id]
	delete(b.ids, id)
	q := b.pending[name]
	for i, p := range q {
		if p == id {
			b.pending[name] = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	return id, true
}

func modelMessage(c *openai.ChatRequest, param string, content *Content, calls *callBook) error {
	var text strings.Builder
	var toolCalls []openai.ToolCall
	for j := range content.Parts {
		p := &content.Parts[j]
		switch {
		case p.Thought:
		case p.Text != nil:
			text.WriteString(*p.Text)
		case p.FunctionCall != nil:
			toolCalls = append(toolCalls, openai.ToolCall{
				ID:       calls.add(p.FunctionCall),
				Type:     "function",
				Function: openai.FunctionCall{Name: p.FunctionCall.Name, Arguments: compactOr(p.FunctionCall.Args, "{}")},
			})
		default:
			pp := fmt.Sprintf("%s.parts[%d]", param, j)
			return apierror.InvalidParam(pp, "Parameter %s: a model turn can only hold text and functionCall parts for this model", pp)
		}
	}
	m := openai.Message{Role: "assistant"}
	if text.Len() > 0 || len(toolCalls) == 0 {
		m.Content = openai.TextContent(text.String())
	}
	if len(toolCalls) > 0 {
		m.ToolCalls, _ = json.Marshal(toolCalls)
	}
	c.Messages = append(c.Messages, m)
	return nil
}

func userMessages(c *openai.ChatRequest, param string, content *Content, calls *callBook) error {
	var parts []openai.ContentPart
	for j := range content.Parts {
		p := &content.Parts[j]
		pp := fmt.Sprintf("%s.parts[%d]", param, j)
		switch {
		case p.Thought:
		case p.Text != nil:
			parts = append(parts, openai.ContentPart{Type: "text", Text: *p.Text})
		case p.InlineData != nil:
			if !strings.HasPrefix(p.InlineData.MimeType, "image/") {
				return apierror.InvalidParam(pp+".inlineData.mimeType", "Parameter %s.inlineData.mimeType %q is not supported for this model; only images are", pp, p.InlineData.MimeType)
			}
			url := "data:" + p.InlineData.MimeType + ";base64," + p.InlineData.Data
			parts = append(parts, openai.ContentPart{Type: "image_url", ImageURL: &openai.ImageURL{URL: url}})
		case p.FileData != nil:
			uri := p.FileData.FileURI
			mt := p.FileData.MimeType
			if !(strings.HasPrefix(uri, "https://") || strings.HasPrefix(uri, "http://")) || (mt != "" && !strings.HasPrefix(mt, "image/")) {
				return apierror.InvalidParam(pp+".fileData", "Parameter %s.fileData is not supported for this model; only images by http(s) URL are", pp)
			}
			parts = append(parts, openai.ContentPart{Type: "image_url", ImageURL: &openai.ImageURL{URL: uri}})
		case p.FunctionResponse != nil:
			id, ok := calls.answer(p.FunctionResponse)
			if !ok {
				return apierror.InvalidParam(pp+".functionResponse", "Parameter %s.functionResponse does not answer an earlier functionCall named %q", pp, p.FunctionResponse.Name)
			}
			c.Messages = append(c.Messages, openai.Message{
				Role:       "tool",
				ToolCallID: id,
				Content:    openai.TextContent(compactOr(p.FunctionResponse.Response, "{}")),
			})
		default:
			return apierror.InvalidParam(pp, "Parameter %s is not supported for this model", pp)
		}
	}
	if len(parts) == 0 {
		return nil // a turn of function responses only
	}
	allText := true
	for _, p := range parts {
		allText = allText && p.Type == "text"
	}
	m := openai.Message{Role: "user"}
	if allText {
		var text strings.Builder
		for _, p := range parts {
			text.WriteString(p.Text)
		}
		m.Content = openai.TextContent(text.String())
	} else {
		m.Content = openai.PartsContent(parts)
	}
	c.Messages = append(c.Messages, m)
	return nil
}

func pivotGeneration(c *openai.ChatRequest, g *GenerationConfig) error {
	if g == nil {
		return nil
	}
	c.Temperature = g.Temperature // Gemini's 0–2 is OpenAI's 0–2
	c.TopP = g.TopP
	if g.TopK != nil && *g.TopK > 0 {
		k := int64(*g.TopK)
		c.TopK = &k
	}
	if g.MaxOutputTokens != nil {
		c.SetMaxTokens(*g.MaxOutputTokens)
	}
	c.Stop = g.StopSequences
	if t := g.ThinkingConfig; t != nil {
		rc := &openai.Reasoning{IncludeThoughts: t.IncludeThoughts}
		switch {
		case t.ThinkingBudget != nil:
			rc.Budget, rc.HasBudget = *t.ThinkingBudget, true
		case t.ThinkingLevel != "":
			rc.Effort = thinkingLevelEffort(t.ThinkingLevel)
		}
		c.Reasoning = rc
	}
	if g.ResponseMimeType == "application/json" {
		schema := g.ResponseJSONSchema
		if len(schema) == 0 && len(g.ResponseSchema) > 0 {
			var err error
			if schema, err = jsonSchemaFromOpenAPI(g.ResponseSchema); err != nil {
				return apierror.InvalidParam("generationConfig.responseSchema", "Parameter generationConfig.responseSchema is not valid: %s", jsonProblem(err))
			}
		}
		if len(schema) > 0 {
			c.ResponseFormat = &openai.ResponseFormat{Type: "json_schema", JSONSchema: &openai.JSONSchema{Name: "response", Schema: schema}}
		} else {
			c.ResponseFormat = &openai.ResponseFormat{Type: "json_object"}
		}
	}
	// The pivot forwards Extra to OpenAI-kind providers verbatim, so these go under OpenAI's names.
	if g.Seed != nil {
		c.Extra["seed"], _ = json.Marshal(*g.Seed)
	}
	if g.PresencePenalty != nil {
		c.Extra["presence_penalty"], _ = json.Marshal(*g.PresencePenalty)
	}
	if g.FrequencyPenalty != nil {
		c.Extra["frequency_penalty"], _ = json.Marshal(*g.FrequencyPenalty)
	}
	return nil
}

func pivotTools(c *openai.ChatRequest, tools []Tool, cfg *ToolConfig) error {
	var fc *FunctionCallingConfig
	if cfg != nil {
		fc = cfg.FunctionCallingConfig
	}
	allowed := map[string]bool{}
	if fc != nil {
		for _, n := range fc.AllowedFunctionNames {
			allowed[n] = true
		}
	}
	for i, t := range tools {
		if len(t.Extra) > 0 {
			p := fmt.Sprintf("tools[%d]", i)
			return apierror.InvalidParam(p, "Parameter %s: only functionDeclarations are supported for this model", p)
		}
		for j, f := range t.FunctionDeclarations {
			if len(allowed) > 0 && !allowed[f.Name] {
				continue // allowedFunctionNames restricts what the model may call
			}
			params := f.ParametersJSONSchema
			if len(params) == 0 && len(f.Parameters) > 0 {
				var err error
				if params, err = jsonSchemaFromOpenAPI(f.Parameters); err != nil {
					p := fmt.Sprintf("tools[%d].functionDeclarations[%d].parameters", i, j)
					return apierror.InvalidParam(p, "Parameter %s is not valid: %s", p, jsonProblem(err))
				}
			}
			c.Tools = append(c.Tools, openai.Tool{Type: "function", Function: openai.FunctionDecl{Name: f.Name, Description: f.Description, Parameters: params}})
		}
	}
	if fc == nil {
		return nil
	}
	var choice any
	switch fc.Mode {
	case ModeAuto, ModeValidated:
		choice = "auto"
	case ModeNone:
		choice = "none"
	case ModeAny:
		choice = "required"
		if len(fc.AllowedFunctionNames) == 1 {
			choice = map[string]any{"type": "function", "function": map[string]string{"name": fc.AllowedFunctionNames[0]}}
		}
	default:
		return nil
	}
	c.ToolChoice, _ = json.Marshal(choice)
	return nil
}

// joinText concatenates the text of parts, skipping thoughts.
func joinText(parts []Part) string {
	var b strings.Builder
	for _, p := range parts {
		if p.Text != nil && !p.Thought {
			b.WriteString(*p.Text)
		}
	}
	return b.String()
}

// compactOr returns raw compacted, or def when raw is empty.
func compactOr(raw json.RawMessage, def string) string {
	if len(raw) == 0 {
		return def
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return def
	}
	return b.String()
}
