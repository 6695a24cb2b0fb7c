package anthropic

import "encoding/json"

// Stop reasons of the Messages API.
const (
	StopEndTurn      = "end_turn"
	StopMaxTokens    = "max_tokens"
	StopSequence     = "stop_sequence"
	StopToolUse      = "tool_use"
	StopPauseTurn    = "pause_turn"
	StopRefusal      = "refusal"
	StopContextLimit = "model_context_window_exceeded"
)

// Content block types the gateway interprets. Others are forwarded untouched on the
// same-protocol path and refused when a conversion has no equivalent.
const (
	blockText             = "text"
	blockImage            = "image"
	blockDocument         = "document"
	blockToolUse          = "tool_use"
	blockToolResult       = "tool_result"
	blockThinking         = "thinking"
	blockRedactedThinking = "redacted_thinking"
)

// Stream event names (each event's data carries the same name in "type").
const (
	evMessageStart      = "message_start"
	evContentBlockStart = "content_block_start"
	evContentBlockDelta = "content_block_delta"
	evContentBlockStop  = "content_block_stop"
	evMessageDelta      = "message_delta"
	evMessageStop       = "message_stop"
	evPing              = "ping"
	evError             = "error"
)

// Message is one entry of the request's messages array.
type Message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	// Blocks is Content decoded; a string content is one text block.
	Blocks []ContentBlock `json:"-"`
	// IsString records that Content was a plain string.
	IsString bool `json:"-"`
}

// ContentBlock is one content block, in a request or a response. The Messages API
// discriminates blocks by Type; the fields a type does not use stay empty. Pointers mark fields
// whose presence matters (an empty "text" is not a missing one).
type ContentBlock struct {
	Type string `json:"type"`

	Text *string `json:"text,omitempty"` // text

	Source *Source `json:"source,omitempty"` // image, document

	ID    string          `json:"id,omitempty"`    // tool_use
	Name  string          `json:"name,omitempty"`  // tool_use
	Input json.RawMessage `json:"input,omitempty"` // tool_use: a JSON object

	ToolUseID string          `json:"tool_use_id,omitempty"` // tool_result
	Content   json.RawMessage `json:"content,omitempty"`     // tool_result: string or blocks
	IsError   bool            `json:"is_error,omitempty"`    // tool_result

	Thinking  *string `json:"thinking,omitempty"`  // thinking
	Signature *string `json:"signature,omitempty"` // thinking
	Data      string  `json:"data,omitempty"`      // redacted_thinking

	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

// Source is an image or document source: base64 data with a media type, a URL, plain text
// (documents), or a Files API id.
type Source struct {
	Type      string `json:"type"` // "base64" | "url" | "text" | "file"
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
	FileID    string `json:"file_id,omitempty"`
}

// Tool is a tool definition. Custom tools (Type "" or "custom") carry an input schema; server
// and Anthropic-defined tools ("web_search_20250305", "bash_20250124", …) carry only a Type and
// Name and run on Anthropic's side, so they cannot be served by another provider.
type Tool struct {
	Type         string          `json:"type,omitempty"`
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema,omitempty"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

func (t Tool) custom() bool { return t.Type == "" || t.Type == "custom" }

// ToolChoice is tool_choice: auto, any, tool (with Name) or none.
type ToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// Thinking is the extended-thinking configuration.
type Thinking struct {
	Type         string `json:"type"` // "enabled" | "disabled" | "adaptive"
	BudgetTokens int64  `json:"budget_tokens,omitempty"`
}

// Metadata is the request's metadata object.
type Metadata struct {
	UserID string `json:"user_id,omitempty"`
}

// Usage is Anthropic's usage object. Unlike OpenAI's, its counts are disjoint: input_tokens
// excludes the tokens read from or written to the prompt cache. Fields are pointers because in
// a stream's message_delta a missing or null field means "unchanged".
type Usage struct {
	InputTokens              *int64         `json:"input_tokens,omitempty"`
	CacheCreationInputTokens *int64         `json:"cache_creation_input_tokens,omitempty"`
	CacheReadInputTokens     *int64         `json:"cache_read_input_tokens,omitempty"`
	CacheCreation            *CacheCreation `json:"cache_creation,omitempty"`
	OutputTokens             *int64         `json:"output_tokens,omitempty"`
}

// CacheCreation splits cache writes by time to live.
type CacheCreation struct {
	Ephemeral5mInputTokens *int64 `json:"ephemeral_5m_input_tokens,omitempty"`
	Ephemeral1hInputTokens *int64 `json:"ephemeral_1h_input_tokens,omitempty"`
}

// wireMessage is a Message object: the non-streaming response, and message_start's payload.
type wireMessage struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"` // "message"
	Role         string         `json:"role"`
	Model        string         `json:"model"`
	Content      []ContentBlock `json:"content"`
	StopReason   *string        `json:"stop_reason"`
	StopSequence *string        `json:"stop_sequence"`
	Usage        Usage          `json:"usage"`
}

// outUsage is the usage object the gateway writes to Anthropic clients: every count present.
type outUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
}

func ptr[T any](v T) *T { return &v }

// Client-bound content blocks. Unlike ContentBlock they always carry their required fields,
// even when empty, as Anthropic's own responses do.
type (
	textOut struct {
		Type string `json:"type"` // "text"
		Text string `json:"text"`
	}
	thinkingOut struct {
		Type      string `json:"type"` // "thinking"
		Thinking  string `json:"thinking"`
		Signature string `json:"signature"`
	}
	toolUseOut struct {
		Type  string          `json:"type"` // "tool_use"
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	}
)

// Request-side content blocks.
type (
	imageOut struct {
		Type   string `json:"type"` // "image"
		Source Source `json:"source"`
	}
	toolResultOut struct {
		Type      string `json:"type"` // "tool_result"
		ToolUseID string `json:"tool_use_id"`
		Content   any    `json:"content"` // string, or blocks when the result has images
	}
	messageOut struct {
		Role    string `json:"role"`
		Content []any  `json:"content"`
	}
)

// requestOut is the Messages API request body BuildRequest writes.
type requestOut struct {
	Model         string       `json:"model"`
	MaxTokens     int64        `json:"max_tokens"`
	System        []textOut    `json:"system,omitempty"`
	Messages      []messageOut `json:"messages"`
	Temperature   *float64     `json:"temperature,omitempty"`
	TopP          *float64     `json:"top_p,omitempty"`
	TopK          *int64       `json:"top_k,omitempty"`
	StopSequences []string     `json:"stop_sequences,omitempty"`
	Stream        bool         `json:"stream,omitempty"`
	Tools         []Tool       `json:"tools,omitempty"`
	ToolChoice    *ToolChoice  `json:"tool_choice,omitempty"`
	Thinking      *Thinking    `json:"thinking,omitempty"`
	Metadata      *Metadata    `json:"metadata,omitempty"`
}

// streamEvent is the union of the stream events' payloads; Type says which fields are set.
type streamEvent struct {
	Type         string       `json:"type"`
	Message      *wireMessage `json:"message"`       // message_start
	Index        int          `json:"index"`         // content_block_*
	ContentBlock ContentBlock `json:"content_block"` // content_block_start
	Delta        struct {
		Type        string  `json:"type"`
		Text        string  `json:"text"`
		Thinking    string  `json:"thinking"`
		PartialJSON string  `json:"partial_json"`
		StopReason  *string `json:"stop_reason"` // message_delta
	} `json:"delta"`
	Usage *Usage      `json:"usage"` // message_delta
	Error errorObject `json:"error"` // error
}

// StatusOverloaded is Anthropic's "API temporarily overloaded" status (overloaded_error).
const StatusOverloaded = 529

// Anthropic error types (https://docs.claude.com/en/api/errors).
const (
	errInvalidRequest  = "invalid_request_error"
	errAuthentication  = "authentication_error"
	errBilling         = "billing_error"
	errPermission      = "permission_error"
	errNotFound        = "not_found_error"
	errRequestTooLarge = "request_too_large"
	errRateLimit       = "rate_limit_error"
	errAPI             = "api_error"
	errTimeout         = "timeout_error"
	errOverloaded      = "overloaded_error"
)

type errorBody struct {
	Type  string      `json:"type"` // "error"
	Error errorObject `json:"error"`
}

type errorObject struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// modelInfo is the Models API's model object.
type modelInfo struct {
	Type        string `json:"type"` // "model"
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

// modelPage is the Models API's list page.
type modelPage struct {
	Data    []modelInfo `json:"data"`
	HasMore bool        `json:"has_more"`
	FirstID *string     `json:"first_id"`
	LastID  *string     `json:"last_id"`
}
