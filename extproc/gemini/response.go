package gemini

import (
	"encoding/json"
	"strings"

	"github.com/tollgate/tollgate/extproc/openai"
)

// ResponseFromOpenAI renders a pivot completion as a GenerateContentResponse for a Gemini
// client: the reasoning as a thought part, then the text, then one functionCall part per tool
// call (carrying the call's id, which the client may echo in its functionResponse), the finish
// reason, usageMetadata, and the canonical model in modelVersion. thoughts is whether the
// client asked for thought parts (ShowThoughts); without it the reasoning is left out, as Gemini
// itself leaves it out, though its tokens are still counted in thoughtsTokenCount.
func ResponseFromOpenAI(c *openai.ChatCompletion, model string, thoughts bool) []byte {
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
