package gemini

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

// Path is the upstream path for a Gemini provider's model id. Streams ask for SSE framing
// (alt=sse); without it Gemini streams one JSON array. A "models/" prefix on the id is accepted;
// "tunedModels/…" ids keep their own collection.
func Path(upstreamModel string, stream bool) string {
	name := upstreamModel
	if !strings.HasPrefix(name, "tunedModels/") {
		name = "models/" + strings.TrimPrefix(name, "models/")
	}
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	p := "/v1beta/" + strings.Join(segs, "/")
	if stream {
		return p + ":" + methodStream + "?alt=sse"
	}
	return p + ":" + methodGenerate
}

// skipSignature is the documented stand-in thoughtSignature for function calls that Gemini did
// not produce in this conversation (https://ai.google.dev/gemini-api/docs/thought-signatures,
// "history from another model"): Gemini 3 refuses a turn whose function calls carry none, and
// the pivot does not keep Gemini's own signatures.
const skipSignature = "skip_thought_signature_validator"

// BuildRequest builds the body sent to a Gemini provider for a pivot request. The model and
// streaming flag travel in the path (see Path), so upstreamModel does not reach the body; it is
// taken so every protocol's BuildRequest has one signature.
//
// System and developer messages become systemInstruction; assistant turns become model turns
// with functionCall parts; "tool" messages become functionResponse parts of a user turn, named
// after the call their tool_call_id answers (response: the content if it is a JSON object, else
// {"result": content}); consecutive turns of one role are merged, as Gemini wants alternating
// turns and all parallel responses in one. Images: data: URLs become inlineData, http(s) URLs
// fileData. response_format json_schema becomes responseMimeType application/json with
// responseJsonSchema, and tool parameters go in parametersJsonSchema: both take JSON Schema as
// is, where responseSchema and parameters would need a lossy conversion to Gemini's OpenAPI
// subset.
func BuildRequest(r *openai.ChatRequest, upstreamModel string) ([]byte, error) {
	req := Request{}
	names := map[string]string{} // tool_call_id → function name
	var system []Part
	for i := range r.Messages {
		m := &r.Messages[i]
		param := fmt.Sprintf("messages[%d]", i)
		var role string
		var parts []Part
		var err error
		switch m.Role {
		case "system", "developer":
			for _, p := range m.Parts() {
				if p.Type == "text" {
					system = append(system, Part{Text: ptr(p.Text)})
				}
			}
			continue
		case "assistant":
			role = RoleModel
			parts, err = assistantParts(param, m, names)
		case "tool":
			role = RoleUser
			parts, err = toolParts(param, m, names)
		default:
			role = RoleUser
			parts, err = userParts(param, m)
		}
		if err != nil {
			return nil, err
		}
		if len(parts) == 0 {
			continue
		}
		if n := len(req.Contents); n > 0 && req.Contents[n-1].Role == role {
			req.Contents[n-1].Parts = append(req.Contents[n-1].Parts, parts...)
			continue
		}
		req.Contents = append(req.Contents, Content{Role: role, Parts: parts})
	}
	if len(system) > 0 {
		req.SystemInstruction = &Content{Parts: system}
	}
	req.GenerationConfig = generationConfig(r)
	if err := geminiTools(&req, r); err != nil {
		return nil, err
	}
	b, err := PassthroughBody(&req, upstreamModel)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func assistantParts(param string, m *openai.Message, names map[string]string) ([]Part, error) {
	var parts []Part
	if text, ok := m.Text(); ok && text != "" {
		parts = append(parts, Part{Text: ptr(text)})
	} else if !ok {
		for _, p := range m.Parts() {
			if p.Type == "text" && p.Text != "" {
				parts = append(parts, Part{Text: ptr(p.Text)})
			}
		}
	}
	if len(m.ToolCalls) == 0 {
		return parts, nil
	}
	var calls []openai.ToolCall
	if err := json.Unmarshal(m.ToolCalls, &calls); err != nil {
		return nil, apierror.InvalidParam(param+".tool_calls", "Parameter %s.tool_calls is not valid: %s", param, jsonProblem(err))
	}
	for i, tc := range calls {
		names[tc.ID] = tc.Function.Name
		p := functionCallPart(tc.ID, tc.Function.Name, tc.Function.Arguments)
		if i == 0 {
			p.ThoughtSignature = skipSignature // only the first call of a step carries one
		}
		parts = append(parts, p)
	}
	return parts, nil
}

func toolParts(param string, m *openai.Message, names map[string]string) ([]Part, error) {
	name, ok := names[m.ToolCallID]
	if !ok {
		return nil, apierror.InvalidParam(param+".tool_call_id", "Parameter %s.tool_call_id does not match an earlier tool call", param)
	}
	text, isText := m.Text()
	if !isText {
		var b strings.Builder
		for _, p := range m.Parts() {
			b.WriteString(p.Text)
		}
		text = b.String()
	}
	response := json.RawMessage(nil)
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(text), &obj) == nil && obj != nil {
		response = json.RawMessage(compactOr(json.RawMessage(text), "{}"))
	} else {
		response, _ = json.Marshal(map[string]string{"result": text})
	}
	return []Part{{FunctionResponse: &FunctionResponse{ID: m.ToolCallID, Name: name, Response: response}}}, nil
}

func userParts(param string, m *openai.Message) ([]Part, error) {
	var parts []Part
	for j, p := range m.Parts() {
		switch p.Type {
		case "text":
			parts = append(parts, Part{Text: ptr(p.Text)})
		case "image_url":
			if p.ImageURL == nil {
				continue
			}
			part, err := imagePart(p.ImageURL.URL)
			if err != nil {
				pp := fmt.Sprintf("%s.content[%d].image_url", param, j)
				return nil, apierror.InvalidParam(pp, "Parameter %s: %s", pp, err)
			}
			parts = append(parts, part)
		}
	}
	return parts, nil
}

// imagePart turns an image URL into inline data (data: URLs) or a file reference (http(s)).
func imagePart(url string) (Part, error) {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		meta, data, found := strings.Cut(rest, ",")
		mime, isBase64 := strings.CutSuffix(meta, ";base64")
		if !found || !isBase64 || mime == "" {
			return Part{}, fmt.Errorf("only base64 data URLs with a media type are supported")
		}
		return Part{InlineData: &Blob{MimeType: mime, Data: data}}, nil
	}
	if strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://") {
		return Part{FileData: &FileData{MimeType: guessImageType(url), FileURI: url}}, nil
	}
	return Part{}, fmt.Errorf("the URL must be a data: or http(s) URL")
}

// guessImageType reads the media type from the URL's extension; Gemini requires one with
// fileData. Unknown extensions are assumed JPEG, the commonest photo format.
func guessImageType(url string) string {
	u, _, _ := strings.Cut(url, "?")
	switch strings.ToLower(path.Ext(u)) {
	case ".png":
		return "image/png"
	case ".webp":
		return "image/webp"
	case ".gif":
		return "image/gif"
	case ".heic":
		return "image/heic"
	case ".heif":
		return "image/heif"
	default:
		return "image/jpeg"
	}
}

func generationConfig(r *openai.ChatRequest) *GenerationConfig {
	g := &GenerationConfig{
		Temperature:     r.Temperature, // OpenAI's 0–2 is Gemini's 0–2
		TopP:            r.TopP,
		MaxOutputTokens: r.MaxTokens,
		StopSequences:   r.Stop,
	}
	if r.TopK != nil {
		k := float64(*r.TopK)
		g.TopK = &k
	}
	if f := r.ResponseFormat; f != nil {
		switch f.Type {
		case "json_object":
			g.ResponseMimeType = "application/json"
		case "json_schema":
			g.ResponseMimeType = "application/json"
			if f.JSONSchema != nil {
				g.ResponseJSONSchema = f.JSONSchema.Schema
			}
		}
	}
	_ = json.Unmarshal(r.Extra["seed"], &g.Seed)
	_ = json.Unmarshal(r.Extra["presence_penalty"], &g.PresencePenalty)
	_ = json.Unmarshal(r.Extra["frequency_penalty"], &g.FrequencyPenalty)
	g.ThinkingConfig = thinkingConfig(r.Reasoning)
	if g.Temperature == nil && g.TopP == nil && g.TopK == nil && g.MaxOutputTokens == nil && len(g.StopSequences) == 0 &&
		g.ResponseMimeType == "" && g.Seed == nil && g.PresencePenalty == nil && g.FrequencyPenalty == nil && g.ThinkingConfig == nil {
		return nil
	}
	return g
}

func geminiTools(req *Request, r *openai.ChatRequest) error {
	if len(r.Tools) > 0 {
		decls := make([]FunctionDeclaration, len(r.Tools))
		for i, t := range r.Tools {
			decls[i] = FunctionDeclaration{Name: t.Function.Name, Description: t.Function.Description, ParametersJSONSchema: t.Function.Parameters}
		}
		req.Tools = []Tool{{FunctionDeclarations: decls}}
	}
	if len(r.ToolChoice) == 0 {
		return nil
	}
	fc := &FunctionCallingConfig{}
	var mode string
	if json.Unmarshal(r.ToolChoice, &mode) == nil {
		switch mode {
		case "none":
			fc.Mode = ModeNone
		case "auto":
			fc.Mode = ModeAuto
		case "required":
			fc.Mode = ModeAny
		default:
			return apierror.InvalidParam("tool_choice", "Parameter tool_choice %q is not one of none, auto, required", mode)
		}
	} else {
		var named struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(r.ToolChoice, &named) != nil || named.Function.Name == "" {
			return apierror.InvalidParam("tool_choice", "Parameter tool_choice must name a function")
		}
		fc.Mode, fc.AllowedFunctionNames = ModeAny, []string{named.Function.Name}
	}
	req.ToolConfig = &ToolConfig{FunctionCallingConfig: fc}
	return nil
}

// maxThinkingBudget is the largest thinkingBudget any Gemini model takes (2.5 Pro's), from
// https://ai.google.dev/gemini-api/docs/thinking#set-budget.
const maxThinkingBudget = 32768

// thinkingConfig turns the pivot's reasoning control into thinkingConfig. It always sends a
// thinkingBudget, never a thinkingLevel: Gemini 2.5 models take only the budget, and Gemini 3
// still accepts it (https://ai.google.dev/gemini-api/docs/thinking). Off is budget 0, dynamic
// -1, an effort its budget from openai.Reasoning's table, a budget above any model's range is
// cut to maxThinkingBudget. includeThoughts is on unless a Gemini client turned it off: every
// client protocol can show reasoning, and thought tokens are billed whether shown or not.
func thinkingConfig(rc *openai.Reasoning) *ThinkingConfig {
	if rc == nil {
		return nil
	}
	if rc.Off() {
		zero := int64(0)
		return &ThinkingConfig{ThinkingBudget: &zero}
	}
	budget, ok := rc.TokenBudget()
	if !ok {
		budget = openai.DynamicBudget
	}
	budget = min(budget, maxThinkingBudget)
	include := rc.IncludeThoughts == nil || *rc.IncludeThoughts
	return &ThinkingConfig{ThinkingBudget: &budget, IncludeThoughts: &include}
}
