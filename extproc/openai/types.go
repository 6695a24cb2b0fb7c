package openai

import "encoding/json"

// The types below are OpenAI's chat-completions wire shapes. Besides serving OpenAI clients they
// are the gateway's pivot: a request in another protocol is converted into a ChatRequest, and a
// provider of another kind answers with a ChatCompletion or a stream of ChatCompletionChunks,
// which the client's protocol package renders. Same-protocol pairs skip the pivot.

// Message is one chat message. Content is either a string or an array of parts; an array made of
// text parts only is flattened into one string (seed 000).
type Message struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"`
	Name       string          `json:"name,omitempty"`
	ToolCalls  json.RawMessage `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
	Refusal    json.RawMessage `json:"refusal,omitempty"`
}

// Text returns the message's content when it is a plain string (arrays of text parts were
// flattened into one when the request was parsed).
func (m *Message) Text() (string, bool) {
	var s string
	if len(m.Content) == 0 || m.Content[0] != '"' || json.Unmarshal(m.Content, &s) != nil {
		return "", false
	}
	return s, true
}

// Parts returns the message's content as parts: a string becomes one text part.
func (m *Message) Parts() []ContentPart {
	if s, ok := m.Text(); ok {
		return []ContentPart{{Type: "text", Text: s}}
	}
	var parts []ContentPart
	_ = json.Unmarshal(m.Content, &parts)
	return parts
}

// TextContent encodes s as a message content.
func TextContent(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// PartsContent encodes parts as a message content.
func PartsContent(parts []ContentPart) json.RawMessage {
	b, _ := json.Marshal(parts)
	return b
}

// Tool is a function the model may call.
type Tool struct {
	Type     string       `json:"type"` // "function"
	Function FunctionDecl `json:"function"`
}

// FunctionDecl declares a function: its JSON-schema parameters are kept verbatim.
type FunctionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ToolCall is a call the model made (in a response message, or an assistant message of a
// request). In stream chunks, Index identifies the call its fragments belong to.
type ToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"` // "function"
	Function FunctionCall `json:"function"`
}

// FunctionCall names a function and its JSON-encoded arguments (a fragment in stream deltas).
type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// ResponseFormat is response_format: "text", "json_object", or "json_schema" with a schema.
type ResponseFormat struct {
	Type       string      `json:"type"`
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema is response_format.json_schema.
type JSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ContentPart is one element of an array content: text, or an image by URL (data: URLs carry
// base64 inline).
type ContentPart struct {
	Type     string    `json:"type"` // "text" | "image_url"
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is an image reference.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// ChatCompletion is a non-streaming response.
type ChatCompletion struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"` // "chat.completion"
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []Choice `json:"choices"`
	Usage             *Usage   `json:"usage,omitempty"`
	SystemFingerprint string   `json:"system_fingerprint,omitempty"`
}

// Choice is one completion choice (the gateway refuses n > 1, so there is one).
type Choice struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	FinishReason string          `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs"`
}

// ResponseMessage is the assistant's message. Content is nil when the model only called tools.
type ResponseMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ReasoningContent carries a provider's visible reasoning ("thinking") where it has one.
	ReasoningContent string `json:"reasoning_content,omitempty"`
}

// ChatCompletionChunk is one streamed event. The last chunk of a stream that asked for usage has
// no choices and carries Usage.
type ChatCompletionChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"` // "chat.completion.chunk"
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	Choices           []ChunkChoice `json:"choices"`
	Usage             *Usage        `json:"usage,omitempty"`
	SystemFingerprint string        `json:"system_fingerprint,omitempty"`
}

// ChunkChoice is one choice's delta.
type ChunkChoice struct {
	Index        int             `json:"index"`
	Delta        Delta           `json:"delta"`
	FinishReason *string         `json:"finish_reason"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
}

// Delta is the increment a chunk adds to the message.
type Delta struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content,omitempty"`
	Refusal          *string    `json:"refusal,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
}

// Usage is the OpenAI usage object.
type Usage struct {
	PromptTokens            int64                    `json:"prompt_tokens"`
	CompletionTokens        int64                    `json:"completion_tokens"`
	TotalTokens             int64                    `json:"total_tokens"`
	PromptTokensDetails     *PromptTokensDetails     `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *CompletionTokensDetails `json:"completion_tokens_details,omitempty"`
}

// PromptTokensDetails breaks prompt tokens down.
type PromptTokensDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

// CompletionTokensDetails breaks completion tokens down.
type CompletionTokensDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

// Finish reasons.
const (
	FinishStop          = "stop"
	FinishLength        = "length"
	FinishToolCalls     = "tool_calls"
	FinishContentFilter = "content_filter"
)

// Model is one entry of GET /v1/models. It is also the neutral description of a catalog model
// from which every protocol package renders its own model listing.
type Model struct {
	ID                     string   `json:"id"`
	Object                 string   `json:"object"`
	Created                int64    `json:"created"`
	OwnedBy                string   `json:"owned_by"`
	SupportedEndpointTypes []string `json:"supported_endpoint_types,omitempty"`
	Lifecycle              string   `json:"lifecycle,omitempty"`
	// MaxOutputTokens is the catalog's largest output for the model. OpenAI's model object has
	// no such field; other protocols' listings show it (Gemini's outputTokenLimit).
	MaxOutputTokens int64 `json:"-"`
}
