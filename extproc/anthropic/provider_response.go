package anthropic

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
)

// DecodeResponse converts a non-streaming Messages API response into the pivot, naming model
// (the canonical id), and reports its usage both as OpenAI counts and as billing items. Text
// blocks are joined into the content (Anthropic splits one answer into several blocks around
// citations), thinking blocks into the reasoning, tool_use blocks into tool calls; a call of
// StructuredOutputTool is the answer to a json_schema request and becomes the text content.
// A body that is not a Message is an error.
func DecodeResponse(body []byte, model string) (*openai.ChatCompletion, billing.Usage, error) {
	var m wireMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, billing.Usage{}, fmt.Errorf("decode anthropic response: %w", err)
	}
	if m.Type != "message" {
		return nil, billing.Usage{}, fmt.Errorf("decode anthropic response: type %q is not a message", m.Type)
	}
	var (
		text, reasoning []string
		calls           []openai.ToolCall
		structured      bool
	)
	for _, b := range m.Content {
		switch b.Type {
		case blockText:
			if b.Text != nil {
				text = append(text, *b.Text)
			}
		case blockThinking:
			if b.Thinking != nil {
				reasoning = append(reasoning, *b.Thinking)
			}
		case blockToolUse:
			if b.Name == StructuredOutputTool {
				text, structured = append(text, compactJSON(b.Input)), true
				continue
			}
			calls = append(calls, openai.ToolCall{
				ID: b.ID, Type: "function",
				Function: openai.FunctionCall{Name: b.Name, Arguments: compactJSON(b.Input)},
			})
		}
		// redacted_thinking and server tool blocks have no pivot equivalent.
	}
	msg := openai.ResponseMessage{Role: "assistant", ToolCalls: calls, ReasoningContent: strings.Join(reasoning, blockSeparator)}
	if len(text) > 0 || len(calls) == 0 {
		s := strings.Join(text, "")
		msg.Content = &s
	}
	var counts usageCounts
	counts.apply(&m.Usage)
	u := counts.openAI()
	stop := ""
	if m.StopReason != nil {
		stop = *m.StopReason
	}
	return &openai.ChatCompletion{
		ID:      m.ID,
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   model,
		Choices: []openai.Choice{{Message: msg, FinishReason: finishFromStop(stop, structured && len(calls) == 0)}},
		Usage:   &u,
	}, counts.billing(), nil
}

// finishFromStop maps Anthropic's stop_reason onto a pivot finish reason. structuredOnly says
// the only tool called was StructuredOutputTool: the answer is complete text, not a tool call.
func finishFromStop(stop string, structuredOnly bool) string {
	switch stop {
	case StopMaxTokens, StopContextLimit:
		return openai.FinishLength
	case StopToolUse:
		if structuredOnly {
			return openai.FinishStop
		}
		return openai.FinishToolCalls
	case StopRefusal:
		return openai.FinishContentFilter
	default: // end_turn, stop_sequence, pause_turn
		return openai.FinishStop
	}
}

// ProviderError turns an error response from an Anthropic-kind provider into the gateway's
// error. A body in Anthropic's shape is the provider's own answer; apierror.FromProvider decides
// what of it the client may see: the redacted message of a 400, 404 or 422, the gateway's own
// words for everything else. 401, 402 and 403 concern the operator's key and account, not the
// client's, and become 502 provider_error; 5xx become 502 provider_error, and 529 (overloaded)
// 503 service_unavailable, which Anthropic clients see again as overloaded_error and every SDK
// retries. Anything else is Envoy's local reply and is reported by status.
func ProviderError(status int, body []byte) *apierror.Error {
	var b errorBody
	if json.Unmarshal(body, &b) != nil || b.Type != "error" || b.Error.Type == "" {
		if status == StatusOverloaded {
			return overloaded()
		}
		return apierror.FromStatus(status)
	}
	return providerError(status, b.Error.Type, b.Error.Message)
}

// providerError maps an Anthropic error of typ and message; status is the response's, or 0 for an
// error event inside a stream that began with 200, where the type alone tells what failed.
func providerError(status int, typ, message string) *apierror.Error {
	switch {
	case status == StatusOverloaded || typ == errOverloaded:
		return overloaded()
	case status == http.StatusPaymentRequired || typ == errBilling:
		return apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider refused the gateway's account")
	case status == http.StatusUnauthorized, status == http.StatusForbidden, typ == errAuthentication, typ == errPermission:
		return apierror.FromStatus(http.StatusUnauthorized) // the provider refused the gateway's credentials
	case status == http.StatusTooManyRequests || typ == errRateLimit:
		return apierror.FromStatus(http.StatusTooManyRequests)
	case status == http.StatusGatewayTimeout || typ == errTimeout:
		return apierror.FromStatus(http.StatusGatewayTimeout)
	case status >= 500 || status < 400 || typ == errAPI:
		return apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider failed")
	}
	return apierror.FromProvider(status, message, "")
}

func overloaded() *apierror.Error {
	return apierror.New(http.StatusServiceUnavailable, apierror.CodeServiceUnavailable, "The upstream provider is overloaded; retry later")
}

// usageCounts accumulates Anthropic usage. A stream reports it in message_start and again,
// cumulatively, in message_delta; a field a later report leaves out keeps its earlier value.
type usageCounts struct {
	seen bool
	// final is set by message_delta: message_start's output_tokens is a placeholder (often 1),
	// and only message_delta carries the real count.
	final      bool
	input      int64
	cacheRead  int64
	cacheWrite int64 // cache_creation_input_tokens: every TTL
	cache5m    int64
	cache1h    int64
	breakdown  bool // cache_creation split by TTL was reported
	output     int64
}

func (c *usageCounts) apply(u *Usage) {
	if u == nil {
		return
	}
	c.seen = true
	set := func(dst *int64, v *int64) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.input, u.InputTokens)
	set(&c.cacheRead, u.CacheReadInputTokens)
	set(&c.cacheWrite, u.CacheCreationInputTokens)
	set(&c.output, u.OutputTokens)
	if cc := u.CacheCreation; cc != nil {
		c.breakdown = true
		set(&c.cache5m, cc.Ephemeral5mInputTokens)
		set(&c.cache1h, cc.Ephemeral1hInputTokens)
	}
}

// openAI expresses the counts in OpenAI's overlapping form: prompt_tokens covers every input
// token, cached or not, and cached_tokens is the part read from the cache. OpenAI has no count
// for cache writes; they are inside prompt_tokens.
func (c *usageCounts) openAI() openai.Usage {
	prompt := c.input + c.cacheRead + c.cacheWrite
	return openai.Usage{
		PromptTokens:        prompt,
		CompletionTokens:    c.output,
		TotalTokens:         prompt + c.output,
		PromptTokensDetails: &openai.PromptTokensDetails{CachedTokens: c.cacheRead},
	}
}

// billing expresses the counts as billing's disjoint items. Cache writes are priced by TTL:
// with a breakdown, the 1-hour part is CacheWrite1HTokens and the rest of the total the
// 5-minute part (the total, not the 5-minute field, so that no written token goes unbilled
// should the two disagree); without one, every write is a 5-minute write, the API's default.
// Anthropic's output_tokens include thinking, which it does not count apart.
func (c *usageCounts) billing() billing.Usage {
	u := billing.Usage{InputTokens: c.input, CacheReadTokens: c.cacheRead, CacheWriteTokens: c.cacheWrite, OutputTokens: c.output}
	if c.breakdown {
		u.CacheWrite1HTokens = c.cache1h
		u.CacheWriteTokens = max(c.cache5m, c.cacheWrite-c.cache1h)
	}
	return u
}
