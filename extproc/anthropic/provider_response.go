package anthropic

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
)

// ToOpenAI converts a non-streaming Messages API response into the pivot, naming model (the
// canonical id), and reports its usage both as OpenAI counts and as billing items. Text blocks
// are joined into the content (Anthropic splits one answer into several blocks around
// citations), thinking blocks into the reasoning, tool_use blocks into tool calls; a call of
// StructuredOutputTool is the answer to a json_schema request and becomes the text content.
// A body that is not a Message is an error.
func ToOpenAI(body []byte, model string) (*openai.ChatCompletion, billing.Usage, error) {
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

// RewriteResponse passes an Anthropic-kind provider's Message through to an Anthropic client:
// the canonical model goes into "model", every other field is kept. It reports the billing
// usage and Anthropic's stop_reason.
func RewriteResponse(body []byte, model string) ([]byte, billing.Usage, string, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, billing.Usage{}, "", fmt.Errorf("decode anthropic response: %w", err)
	}
	if fields == nil {
		return nil, billing.Usage{}, "", errors.New("decode anthropic response: body is null")
	}
	var meta struct {
		StopReason *string `json:"stop_reason"`
		Usage      *Usage  `json:"usage"`
	}
	if err := json.Unmarshal(body, &meta); err != nil {
		return nil, billing.Usage{}, "", fmt.Errorf("decode anthropic usage: %w", err)
	}
	var counts usageCounts
	counts.apply(meta.Usage)
	fields["model"], _ = json.Marshal(model)
	out, err := marshalVerbatim(fields)
	if err != nil {
		return nil, billing.Usage{}, "", fmt.Errorf("encode anthropic response: %w", err)
	}
	stop := ""
	if meta.StopReason != nil {
		stop = *meta.StopReason
	}
	return out, counts.billing(), stop, nil
}
