package gemini

import (
	"encoding/json"
	"fmt"
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

// UpstreamBody is the body sent to a Gemini provider for a Gemini client's request. It is
// rebuilt from the parsed request every time, never edited in place, so a retried attempt cannot
// inherit a previous attempt's bytes; fields come out in camelCase whatever the client used. The
// model travels in the path (see Path).
func UpstreamBody(r *Request) ([]byte, error) {
	type plain Request
	b, err := encodeObject(plain(*r), r.Extra)
	if err != nil {
		return nil, fmt.Errorf("encode gemini request: %w", err)
	}
	return b, nil
}

// WithMaxOutputTokens returns a copy of r whose generationConfig.maxOutputTokens is n: the
// gateway always sends the output limit its credit hold assumed. r is not modified (every
// attempt starts from the client's).
func (r *Request) WithMaxOutputTokens(n int64) *Request {
	c := *r
	var g GenerationConfig
	if r.GenerationConfig != nil {
		g = *r.GenerationConfig
	}
	g.MaxOutputTokens = &n
	c.GenerationConfig = &g
	return &c
}
