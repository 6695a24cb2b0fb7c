package gemini

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

// Roles.
const (
	RoleUser  = "user"
	RoleModel = "model"
)

// Request is a validated generateContent request from a Gemini client. The model and the
// streaming flag come from the path; fields the gateway does not interpret (safetySettings,
// cachedContent, labels, …) are kept in Extra and forwarded to a Gemini provider as they came.
type Request struct {
	Model             string            `json:"-"`
	Stream            bool              `json:"-"`
	Contents          []Content         `json:"contents"`
	SystemInstruction *Content          `json:"systemInstruction,omitempty"`
	Tools             []Tool            `json:"tools,omitempty"`
	ToolConfig        *ToolConfig       `json:"toolConfig,omitempty"`
	GenerationConfig  *GenerationConfig `json:"generationConfig,omitempty"`
	// Extra holds the top-level fields not modelled above, keyed by camelCase name.
	Extra map[string]json.RawMessage `json:"-"`

	bodyBytes int64
}

// PromptBytes is an upper bound on the prompt's size in bytes (the body's size), a safe basis
// for a credit hold when the request goes to Gemini as it came.
func (r *Request) PromptBytes() int64 { return r.bodyBytes }

// ParseRequest decodes and validates a generateContent body for model (from the path). Its
// errors are *apierror.Error values naming the field at fault. Validation follows seed 000 as
// the OpenAI side does: at most MaxContents turns of at most openai.MaxMessageChars characters,
// the last turn from the user, temperature 0–2, one candidate.
func ParseRequest(body []byte, model string, stream bool) (*Request, error) {
	r := &Request{Model: model, Stream: stream, bodyBytes: int64(len(body))}
	type plain Request
	extra, err := decodeObject(body, (*plain)(r))
	if err != nil {
		return nil, apierror.InvalidParam("", "Request body is not valid: %s", jsonProblem(err))
	}
	if isNull(body) {
		return nil, apierror.InvalidParam("", "Request body must be a JSON object")
	}
	// GenerateContentRequest has a model field, but the path names the model (and the catalog
	// resolves it): a body's own model must not reach the provider.
	delete(extra, "model")
	r.Extra = extra
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// MaxContents bounds contents, as openai.MaxMessages bounds messages.
const MaxContents = openai.MaxMessages

func (r *Request) validate() error {
	switch {
	case len(r.Contents) == 0:
		return apierror.InvalidParam("contents", "Parameter contents is required and can not be empty")
	case len(r.Contents) > MaxContents:
		return apierror.InvalidParam("contents", "Parameter contents can not contain more than %d elements", MaxContents)
	}
	for i := range r.Contents {
		c := &r.Contents[i]
		param := fmt.Sprintf("contents[%d]", i)
		switch c.Role {
		case "":
			c.Role = RoleUser // the reference's single-turn examples omit the role
		case RoleUser, RoleModel:
		default:
			return apierror.InvalidParam(param+".role", "Parameter %s.role %q must be user or model", param, c.Role)
		}
		if err := validateParts(param, c); err != nil {
			return err
		}
	}
	if last := r.Contents[len(r.Contents)-1].Role; last != RoleUser {
		return apierror.InvalidParam("contents", "Parameter contents: the last element must have the user role")
	}
	if si := r.SystemInstruction; si != nil {
		if err := validateParts("systemInstruction", si); err != nil {
			return err
		}
	}
	if err := validateGenerationConfig(r.GenerationConfig); err != nil {
		return err
	}
	for i, t := range r.Tools {
		for j, f := range t.FunctionDeclarations {
			if f.Name == "" {
				p := fmt.Sprintf("tools[%d].functionDeclarations[%d].name", i, j)
				return apierror.InvalidParam(p, "Parameter %s is required", p)
			}
			if len(f.Parameters) > 0 && len(f.ParametersJSONSchema) > 0 {
				p := fmt.Sprintf("tools[%d].functionDeclarations[%d]", i, j)
				return apierror.InvalidParam(p, "Parameter %s: parameters and parametersJsonSchema can not both be set", p)
			}
		}
	}
	if tc := r.ToolConfig; tc != nil && tc.FunctionCallingConfig != nil {
		switch tc.FunctionCallingConfig.Mode {
		case "", "MODE_UNSPECIFIED", ModeAuto, ModeAny, ModeNone, ModeValidated:
		default:
			return apierror.InvalidParam("toolConfig.functionCallingConfig.mode", "Parameter toolConfig.functionCallingConfig.mode must be one of AUTO, ANY, NONE, VALIDATED")
		}
	}
	return nil
}

// validateParts checks that every part carries data and counts the turn's text.
func validateParts(param string, c *Content) error {
	if len(c.Parts) == 0 {
		return apierror.InvalidParam(param+".parts", "Parameter %s.parts is required and can not be empty", param)
	}
	chars := 0
	for j := range c.Parts {
		p := &c.Parts[j]
		pp := fmt.Sprintf("%s.parts[%d]", param, j)
		switch {
		case p.Text != nil:
			chars += utf8.RuneCountInString(*p.Text)
		case p.InlineData != nil:
			if p.InlineData.MimeType == "" || p.InlineData.Data == "" {
				return apierror.InvalidParam(pp+".inlineData", "Parameter %s.inlineData needs mimeType and data", pp)
			}
		case p.FileData != nil:
			if p.FileData.FileURI == "" {
				return apierror.InvalidParam(pp+".fileData.fileUri", "Parameter %s.fileData.fileUri is required", pp)
			}
		case p.FunctionCall != nil:
			if p.FunctionCall.Name == "" {
				return apierror.InvalidParam(pp+".functionCall.name", "Parameter %s.functionCall.name is required", pp)
			}
			if err := requireObject(pp+".functionCall.args", p.FunctionCall.Args); err != nil {
				return err
			}
		case p.FunctionResponse != nil:
			if p.FunctionResponse.Name == "" {
				return apierror.InvalidParam(pp+".functionResponse.name", "Parameter %s.functionResponse.name is required", pp)
			}
			if err := requireObject(pp+".functionResponse.response", p.FunctionResponse.Response); err != nil {
				return err
			}
		case len(p.Extra) == 0:
			return apierror.InvalidParam(pp, "Parameter %s must contain data (text, inlineData, fileData, functionCall or functionResponse)", pp)
		}
	}
	if chars > openai.MaxMessageChars {
		return apierror.InvalidParam(param+".parts", "Parameter %s.parts holds more than %d characters of text", param, openai.MaxMessageChars)
	}
	return nil
}

// requireObject refuses a value that is present but not a JSON object (a proto Struct).
func requireObject(param string, raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return apierror.InvalidParam(param, "Parameter %s must be an object", param)
	}
	return nil
}

func validateGenerationConfig(g *GenerationConfig) error {
	if g == nil {
		return nil
	}
	const p = "generationConfig."
	switch {
	case g.Temperature != nil && (*g.Temperature < 0 || *g.Temperature > openai.MaxTemperature):
		return apierror.InvalidParam(p+"temperature", "Parameter generationConfig.temperature must be between 0 and 2")
	case g.TopP != nil && (*g.TopP < 0 || *g.TopP > 1):
		return apierror.InvalidParam(p+"topP", "Parameter generationConfig.topP must be between 0 and 1")
	case g.TopK != nil && (*g.TopK < 0 || *g.TopK != float64(int64(*g.TopK))):
		return apierror.InvalidParam(p+"topK", "Parameter generationConfig.topK must be a non-negative integer")
	case g.MaxOutputTokens != nil && *g.MaxOutputTokens < 1:
		return apierror.InvalidParam(p+"maxOutputTokens", "Parameter generationConfig.maxOutputTokens must be at least 1")
	case g.CandidateCount != nil && *g.CandidateCount > 1:
		return apierror.InvalidParam(p+"candidateCount", "Parameter generationConfig.candidateCount greater than 1 is not supported")
	case g.CandidateCount != nil && *g.CandidateCount < 0:
		return apierror.InvalidParam(p+"candidateCount", "Parameter generationConfig.candidateCount must be 1")
	case len(g.ResponseSchema) > 0 && len(g.ResponseJSONSchema) > 0:
		return apierror.InvalidParam(p+"responseSchema", "Parameter generationConfig: responseSchema and responseJsonSchema can not both be set")
	}
	if t := g.ThinkingConfig; t != nil {
		const tp = p + "thinkingConfig."
		switch {
		case t.ThinkingBudget != nil && t.ThinkingLevel != "":
			// Google refuses the pair too: the level is Gemini 3's form of the budget.
			return apierror.InvalidParam(tp+"thinkingLevel", "Parameter generationConfig.thinkingConfig: thinkingBudget and thinkingLevel can not both be set")
		case t.ThinkingBudget != nil && *t.ThinkingBudget < openai.DynamicBudget:
			return apierror.InvalidParam(tp+"thinkingBudget", "Parameter generationConfig.thinkingConfig.thinkingBudget must be -1 (dynamic), 0 (off) or a number of tokens")
		case t.ThinkingLevel != "" && thinkingLevelEffort(t.ThinkingLevel) == "":
			return apierror.InvalidParam(tp+"thinkingLevel", "Parameter generationConfig.thinkingConfig.thinkingLevel must be one of minimal, low, medium, high")
		}
	}
	return nil
}

// thinkingLevelEffort is the pivot's effort for a thinkingLevel, "" for an unknown one. The
// REST reference spells the enum in capitals, its examples in lower case; both are accepted.
func thinkingLevelEffort(level string) string {
	switch e := strings.ToLower(level); e {
	case openai.EffortMinimal, openai.EffortLow, openai.EffortMedium, openai.EffortHigh:
		return e
	}
	return ""
}

// ToPivot converts the request into the pivot, for a provider that is not Gemini.
//
// systemInstruction becomes a system message; model turns become assistant messages whose
// functionCall parts are tool_calls (the part's id, else a deterministic "call_<n>"); a user
// turn's functionResponse parts become "tool" messages, placed before the turn's other parts
// because the pivot wants tool results right after the calls they answer. A response is matched
// to its call by id, else to the earliest unanswered call of the same name. Thought parts are
// the model's own reasoning and are dropped. What the pivot cannot express (non-image media,
// built-in tools such as googleSearch) is refused with a 400 rather than silently lost.
func (r *Request) ToPivot() (*openai.ChatRequest, error) {
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

const (
	methodGenerate = "generateContent"
	methodStream   = "streamGenerateContent"
)

// ParsePath reads the model and the streaming flag from a Gemini client's request path:
// /v1beta/models/{model}:generateContent or :streamGenerateContent, also under /v1/. The query
// (alt=sse for streams) is ignored.
//
// The model is everything between "models/" and the last ":", percent-decoded, so a catalog id
// with a slash reaches the gateway either way an SDK sends it: models/eu/gemini-2.5-pro:… and
// models/eu%2Fgemini-2.5-pro:… both name "eu/gemini-2.5-pro". A doubled "models/" prefix (an
// SDK given "models/x" that escaped its slash) is stripped. ok is false for any other path.
func ParsePath(path string) (model string, stream bool, ok bool) {
	path, _, _ = strings.Cut(path, "?")
	var rest string
	switch {
	case strings.HasPrefix(path, "/v1beta/models/"):
		rest = strings.TrimPrefix(path, "/v1beta/models/")
	case strings.HasPrefix(path, "/v1/models/"):
		rest = strings.TrimPrefix(path, "/v1/models/")
	default:
		return "", false, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return "", false, false
	}
	switch rest[i+1:] {
	case methodGenerate:
	case methodStream:
		stream = true
	default:
		return "", false, false
	}
	model, err := url.PathUnescape(rest[:i])
	if err != nil {
		return "", false, false
	}
	model = strings.TrimPrefix(model, "models/")
	if model == "" || strings.ContainsAny(model, "?#:") || strings.ContainsFunc(model, isControl) {
		return "", false, false
	}
	return model, stream, true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
