package gemini

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/openai"
	"github.com/tollgate/tollgate/extproc/sse"
)

// EncodeResponse renders a pivot completion as a GenerateContentResponse for a Gemini
// client: the reasoning as a thought part, then the text, then one functionCall part per tool
// call (carrying the call's id, which the client may echo in its functionResponse), the finish
// reason, usageMetadata, and the canonical model in modelVersion. thoughts is whether the
// client asked for thought parts (ShowThoughts); without it the reasoning is left out, as Gemini
// itself leaves it out, though its tokens are still counted in thoughtsTokenCount.
func EncodeResponse(c *openai.ChatCompletion, model string, thoughts bool) []byte {
	resp := GenerateContentResponse{ModelVersion: model, ResponseID: c.ID}
	cand := Candidate{Content: &Content{Role: RoleModel, Parts: []Part{}}}
	if len(c.Choices) > 0 {
		ch := &c.Choices[0]
		msg := ch.Message
		if !thoughts {
			msg.ReasoningContent = ""
		}
		cand.Content.Parts = messageParts(&msg)
		cand.FinishReason = geminiFinish(ch.FinishReason)
	}
	resp.Candidates = []Candidate{cand}
	if c.Usage != nil {
		resp.UsageMetadata = usageMetadata(*c.Usage)
	}
	b, _ := json.Marshal(resp)
	return b
}

func messageParts(m *openai.ResponseMessage) []Part {
	parts := []Part{}
	if m.ReasoningContent != "" {
		parts = append(parts, Part{Text: ptr(m.ReasoningContent), Thought: true})
	}
	text := ""
	if m.Content != nil {
		text = *m.Content
	}
	if text == "" && m.Refusal != nil {
		text = *m.Refusal
	}
	if text != "" || len(m.ToolCalls) == 0 {
		parts = append(parts, Part{Text: ptr(text)})
	}
	for _, tc := range m.ToolCalls {
		parts = append(parts, functionCallPart(tc.ID, tc.Function.Name, tc.Function.Arguments))
	}
	return parts
}

func functionCallPart(id, name, arguments string) Part {
	return Part{FunctionCall: &FunctionCall{ID: id, Name: name, Args: argsObject(arguments)}}
}

// argsObject turns OpenAI's JSON-encoded arguments into Gemini's args object. Gemini's args is
// a Struct, so arguments that are not a JSON object (a model's malformed output) are kept as
// text under "arguments" rather than dropped, for the client to see.
func argsObject(arguments string) json.RawMessage {
	if strings.TrimSpace(arguments) == "" {
		return json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(arguments), &obj) == nil && obj != nil {
		return json.RawMessage(compactOr(json.RawMessage(arguments), "{}"))
	}
	b, _ := json.Marshal(map[string]string{"arguments": arguments})
	return b
}

func ptr[T any](v T) *T { return &v }

// ShowThoughts reports whether a Gemini client's request asked for thought parts
// (generationConfig.thinkingConfig.includeThoughts): Gemini returns them only then, so a
// translated answer shows a provider's reasoning to a Gemini client only then too.
func ShowThoughts(r *openai.ChatRequest) bool {
	rc := r.Reasoning
	return rc != nil && rc.IncludeThoughts != nil && *rc.IncludeThoughts
}

// Google's canonical status names (google.rpc.Code) for the HTTP statuses the gateway answers
// with. The ones Gemini itself documents (https://ai.google.dev/gemini-api/docs/troubleshooting):
// 400 INVALID_ARGUMENT, 403 PERMISSION_DENIED, 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED, 500
// INTERNAL, 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED. The rest follow google.rpc.Code's HTTP
// mapping: 401 is UNAUTHENTICATED; 402 (no credit, no subscription) is FAILED_PRECONDITION, the
// status Gemini uses when billing must be set up first; 413 is INVALID_ARGUMENT, as Gemini reports
// an oversized payload; 502 is UNAVAILABLE (the upstream failed; a retry may succeed).
var statusNames = map[int]string{
	http.StatusBadRequest:            "INVALID_ARGUMENT",
	http.StatusUnauthorized:          "UNAUTHENTICATED",
	http.StatusPaymentRequired:       "FAILED_PRECONDITION",
	http.StatusForbidden:             "PERMISSION_DENIED",
	http.StatusNotFound:              "NOT_FOUND",
	http.StatusConflict:              "ABORTED",
	http.StatusRequestEntityTooLarge: "INVALID_ARGUMENT",
	// A provider could not process a valid request (provider_unprocessable): the nearest of
	// Google's codes is the argument one, as the request is what it refused.
	http.StatusUnprocessableEntity: "INVALID_ARGUMENT",
	http.StatusTooManyRequests:     "RESOURCE_EXHAUSTED",
	499:                            "CANCELLED",
	http.StatusInternalServerError: "INTERNAL",
	http.StatusNotImplemented:      "UNIMPLEMENTED",
	http.StatusBadGateway:          "UNAVAILABLE",
	http.StatusServiceUnavailable:  "UNAVAILABLE",
	http.StatusGatewayTimeout:      "DEADLINE_EXCEEDED",
	// provider_timeout's 524 means what Google's 504 means.
	apierror.StatusProviderTimeout: "DEADLINE_EXCEEDED",
}

// StatusName is Google's status name for an HTTP status.
func StatusName(status int) string {
	if s, ok := statusNames[status]; ok {
		return s
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Code    int           `json:"code"`
	Message string        `json:"message"`
	Status  string        `json:"status"`
	Details []errorDetail `json:"details,omitempty"`
}

// errorDetail is a google.rpc.ErrorInfo: the one place in Google's shape for a machine-readable
// reason, so the gateway's stable code goes there.
type errorDetail struct {
	Type     string            `json:"@type"`
	Reason   string            `json:"reason"`
	Domain   string            `json:"domain"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// ErrorBody renders e in Gemini's error shape:
// {"error":{"code":<HTTP status>,"message","status":<google status>,"details":[ErrorInfo]}},
// with the stable code (upper-cased, as ErrorInfo reasons are) and the parameter at fault in an
// ErrorInfo detail.
func ErrorBody(e *apierror.Error) []byte {
	info := errorDetail{
		Type:   "type.googleapis.com/google.rpc.ErrorInfo",
		Reason: strings.ToUpper(e.Code),
		Domain: "tollgate",
	}
	if e.Param != "" {
		info.Metadata = map[string]string{"param": e.Param}
	}
	b, _ := json.Marshal(errorBody{Error: errorObject{
		Code:    e.Status,
		Message: e.Message,
		Status:  StatusName(e.Status),
		Details: []errorDetail{info},
	}})
	return b
}

// StreamError appends e as one SSE frame. @google/genai throws an ApiError for a frame
// holding an "error" object, which is how Gemini itself fails a stream.
func StreamError(dst []byte, e *apierror.Error) []byte {
	return sse.AppendData(dst, ErrorBody(e))
}

// usageMetadata is the inverse of pivotUsage, for rendering a pivot answer to a Gemini client.
func usageMetadata(u openai.Usage) *UsageMetadata {
	var cached, reasoning int64
	if u.PromptTokensDetails != nil {
		cached = min(u.PromptTokensDetails.CachedTokens, u.PromptTokens)
	}
	if u.CompletionTokensDetails != nil {
		reasoning = min(u.CompletionTokensDetails.ReasoningTokens, u.CompletionTokens)
	}
	return &UsageMetadata{
		PromptTokenCount:        u.PromptTokens,
		CandidatesTokenCount:    u.CompletionTokens - reasoning,
		TotalTokenCount:         u.PromptTokens + u.CompletionTokens,
		CachedContentTokenCount: cached,
		ThoughtsTokenCount:      reasoning,
	}
}

// geminiFinish maps OpenAI's finish reason to Gemini's.
func geminiFinish(reason string) string {
	switch reason {
	case "":
		return ""
	case openai.FinishStop, openai.FinishToolCalls, "function_call":
		return FinishStop
	case openai.FinishLength:
		return FinishMaxTokens
	case openai.FinishContentFilter:
		return FinishSafety
	default:
		return FinishOther
	}
}

// model is one entry of the Gemini API's model list (models.list, models.get).
type model struct {
	Name                       string   `json:"name"`
	BaseModelID                string   `json:"baseModelId"`
	Version                    string   `json:"version"`
	DisplayName                string   `json:"displayName"`
	OutputTokenLimit           int64    `json:"outputTokenLimit"`
	SupportedGenerationMethods []string `json:"supportedGenerationMethods"`
}

// ModelList renders models as the Gemini API's model list. outputLimits holds each model's
// outputTokenLimit (the catalog's max output tokens) by id, which openai.Model does not carry.
func ModelList(models []openai.Model) []byte {
	data := make([]model, 0, len(models))
	for _, m := range models {
		data = append(data, geminiModel(m))
	}
	b, _ := json.Marshal(struct {
		Models []model `json:"models"`
	}{data})
	return b
}

// ModelObject renders one model as the Gemini API's model object.
func ModelObject(m openai.Model) []byte {
	b, _ := json.Marshal(geminiModel(m))
	return b
}

// geminiModel names the model as a Gemini SDK expects ("models/{id}", the base id without the
// eu/ region prefix). Only models offered through the Gemini endpoint support its generation
// methods.
func geminiModel(m openai.Model) model {
	methods := []string{}
	if slices.Contains(m.SupportedEndpointTypes, catalog.EndpointGemini) {
		methods = []string{methodGenerate, methodStream}
	}
	return model{Name: "models/" + m.ID, BaseModelID: strings.TrimPrefix(m.ID, catalog.EUPrefix), Version: strings.ToLower(m.Lifecycle),
		DisplayName: m.ID, OutputTokenLimit: m.MaxOutputTokens, SupportedGenerationMethods: methods}
}
