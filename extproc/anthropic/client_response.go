package anthropic

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
	"github.com/tollgate/tollgate/extproc/sse"
)

// EncodeResponse renders a pivot response as an Anthropic Message for the client, naming
// model (the canonical id). Reasoning becomes a thinking block (with an empty signature: there
// is none to give, and only an Anthropic model would check it), then text, then one tool_use
// block per tool call.
//
// The pivot does not say whether a "stop" was a stop sequence, so stop_sequence is always null
// and "stop" is reported as end_turn.
func EncodeResponse(c *openai.ChatCompletion, model string) []byte {
	msg := struct {
		ID           string   `json:"id"`
		Type         string   `json:"type"`
		Role         string   `json:"role"`
		Model        string   `json:"model"`
		Content      []any    `json:"content"`
		StopReason   string   `json:"stop_reason"`
		StopSequence *string  `json:"stop_sequence"`
		Usage        outUsage `json:"usage"`
	}{ID: messageID(c.ID), Type: "message", Role: "assistant", Model: model, Content: []any{}}

	finish, refused := "", false
	if len(c.Choices) > 0 {
		ch := c.Choices[0]
		m := ch.Message
		finish = ch.FinishReason
		if m.ReasoningContent != "" {
			msg.Content = append(msg.Content, thinkingOut{Type: blockThinking, Thinking: m.ReasoningContent})
		}
		if m.Content != nil && *m.Content != "" {
			msg.Content = append(msg.Content, textOut{Type: blockText, Text: *m.Content})
		}
		if m.Refusal != nil && *m.Refusal != "" {
			msg.Content = append(msg.Content, textOut{Type: blockText, Text: *m.Refusal})
			refused = true
		}
		for _, tc := range m.ToolCalls {
			msg.Content = append(msg.Content, toolUseOut{
				Type: blockToolUse, ID: toolUseID(tc.ID), Name: tc.Function.Name,
				Input: toolInput(tc.Function.Arguments),
			})
		}
	}
	msg.StopReason = stopReasonFromFinish(finish, refused)
	msg.Usage = usageFromOpenAI(c.Usage)
	b, _ := json.Marshal(msg) // every field is a plain value or valid JSON
	return b
}

// stopReasonFromFinish maps a pivot finish reason onto Anthropic's stop_reason.
func stopReasonFromFinish(finish string, refused bool) string {
	switch finish {
	case openai.FinishLength:
		return StopMaxTokens
	case openai.FinishToolCalls, "function_call":
		return StopToolUse
	case openai.FinishContentFilter:
		return StopRefusal
	}
	if refused {
		return StopRefusal
	}
	return StopEndTurn
}

// usageFromOpenAI turns OpenAI's overlapping counts into Anthropic's disjoint ones:
// prompt_tokens includes cached tokens, Anthropic's input_tokens does not. OpenAI-kind
// providers report no cache writes.
func usageFromOpenAI(u *openai.Usage) outUsage {
	if u == nil {
		return outUsage{}
	}
	var cached int64
	if u.PromptTokensDetails != nil {
		cached = min(u.PromptTokensDetails.CachedTokens, u.PromptTokens)
	}
	return outUsage{
		InputTokens:          u.PromptTokens - cached,
		CacheReadInputTokens: cached,
		OutputTokens:         u.CompletionTokens,
	}
}

// toolInput parses a tool call's arguments as the tool_use input object. Anthropic's input is
// always an object, so anything else (truncated JSON from a length stop, a bare value) is {}.
func toolInput(arguments string) json.RawMessage {
	raw := json.RawMessage(strings.TrimSpace(arguments))
	if !isObject(raw) {
		return json.RawMessage("{}")
	}
	return json.RawMessage(compactJSON(raw))
}

// messageID gives the response a msg_ id, derived from the provider's id when there is one so
// that logs can be correlated.
func messageID(id string) string {
	switch {
	case strings.HasPrefix(id, "msg_"):
		return id
	case id != "":
		return "msg_" + id
	default:
		return "msg_" + randomID()
	}
}

// toolUseID keeps the provider's call id (the client echoes it back in tool_result, and the
// provider expects its own id then); one without an id gets a fresh toolu_ id.
func toolUseID(id string) string {
	if id != "" {
		return id
	}
	return "toolu_" + randomID()
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// ErrorBody renders e in Anthropic's error shape, {"type":"error","error":{"type","message"}},
// with the type Anthropic's reference gives for e's status. The stable code is not part of the
// shape; the status and type carry the meaning SDKs act on.
func ErrorBody(e *apierror.Error) []byte {
	b, _ := json.Marshal(errorBody{Type: "error", Error: errorObject{Type: errorType(e), Message: e.Message}})
	return b
}

// StreamError appends e as an `event: error` frame, the way Anthropic reports a failure
// after a stream has started.
func StreamError(dst []byte, e *apierror.Error) []byte {
	return sse.AppendEvent(dst, sse.Event{Name: evError, Data: ErrorBody(e)})
}

// errorType maps a gateway error onto Anthropic's error types. 502 and 503 are api_error unless
// no provider could serve at all (no_provider_available, service_unavailable), which is what
// overloaded_error tells an Anthropic client: temporary, retry later.
func errorType(e *apierror.Error) string {
	switch e.Status {
	case http.StatusBadRequest:
		return errInvalidRequest
	case http.StatusUnauthorized:
		return errAuthentication
	case http.StatusPaymentRequired:
		return errBilling
	case http.StatusForbidden:
		return errPermission
	case http.StatusNotFound:
		return errNotFound
	case http.StatusRequestEntityTooLarge:
		return errRequestTooLarge
	case http.StatusTooManyRequests:
		return errRateLimit
	case http.StatusGatewayTimeout, apierror.StatusProviderTimeout:
		return errTimeout
	case http.StatusServiceUnavailable, StatusOverloaded:
		return errOverloaded
	}
	switch {
	case e.Code == apierror.CodeNoProviderAvailable:
		return errOverloaded
	case e.Status >= 500:
		return errAPI
	default:
		return errInvalidRequest // the reference: used for other 4xx too
	}
}

// ModelList renders models as the Models API's list page
// (https://docs.claude.com/en/api/models-list). The gateway lists its whole catalog at once:
// one page, has_more false, first_id and last_id null when it is empty.
func ModelList(models []openai.Model) []byte {
	page := modelPage{Data: make([]modelInfo, 0, len(models))}
	for _, m := range models {
		page.Data = append(page.Data, modelFrom(m))
	}
	if n := len(page.Data); n > 0 {
		page.FirstID, page.LastID = &page.Data[0].ID, &page.Data[n-1].ID
	}
	b, _ := json.Marshal(page) // plain strings and bools
	return b
}

// ModelObject renders one model as the Models API's retrieval answers it
// (https://docs.claude.com/en/api/models).
func ModelObject(m openai.Model) []byte {
	b, _ := json.Marshal(modelFrom(m)) // plain strings
	return b
}

// modelFrom describes m in Anthropic's terms. The catalog keeps no display name, so the id
// stands in; created_at is an RFC 3339 time where OpenAI's created is Unix seconds.
func modelFrom(m openai.Model) modelInfo {
	return modelInfo{Type: "model", ID: m.ID, DisplayName: m.ID, CreatedAt: time.Unix(m.Created, 0).UTC().Format(time.RFC3339)}
}
