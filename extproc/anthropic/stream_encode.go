package anthropic

import (
	"encoding/json"

	"github.com/tollgate/tollgate/extproc/openai"
	"github.com/tollgate/tollgate/extproc/sse"
)

// messageDeltaEvent is message_delta as the gateway writes it: usage carries every count, since
// message_start had only the prompt's, if that.
type messageDeltaEvent struct {
	Type  string `json:"type"`
	Delta struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	} `json:"delta"`
	Usage outUsage `json:"usage"`
}

type blockKind int

const (
	kindNone blockKind = iota
	kindText
	kindThinking
	kindTool
)

// StreamEncoder renders a stream of pivot chunks as Anthropic's event grammar, for an
// Anthropic client served by a provider of another kind:
//
//	message_start
//	(content_block_start content_block_delta* content_block_stop)*
//	message_delta message_stop
//
// Reasoning, text and each tool call become consecutive content blocks; a change of kind, or
// a new tool-call index, closes the open block and opens the next, as @anthropic-ai/sdk's
// MessageStream expects (it indexes blocks by position). Tool calls must arrive one after
// another, as every provider the gateway speaks to streams them; a fragment for a call whose
// block was already closed cannot be placed and is dropped.
//
// stop_reason and the final usage are only known at the end, so message_delta is written by
// Finish. Not safe for concurrent use.
type StreamEncoder struct {
	model    string
	started  bool
	finished bool

	open     blockKind
	next     int // index of the next content block
	toolIdx  int // pivot tool-call index of the open tool block
	seenTool map[int]bool

	finish  string
	refused bool
	usage   *openai.Usage
}

// NewStreamEncoder returns an encoder naming model (the canonical id) in message_start.
func NewStreamEncoder(model string) *StreamEncoder {
	return &StreamEncoder{model: model, seenTool: map[int]bool{}}
}

// Encode appends the events for chunks to dst and returns the extended slice. The first call
// writes message_start, with the prompt's usage if the first chunk carries it, else zero (the
// final counts follow in message_delta).
func (e *StreamEncoder) Encode(dst []byte, chunks []openai.ChatCompletionChunk) []byte {
	for i := range chunks {
		c := &chunks[i]
		if e.finished {
			break
		}
		if c.Usage != nil {
			u := *c.Usage
			e.usage = &u
		}
		if !e.started {
			dst = e.start(dst, c.ID)
		}
		for _, ch := range c.Choices {
			if ch.Index != 0 {
				continue // the gateway refuses n > 1
			}
			dst = e.delta(dst, &ch.Delta)
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				e.finish = *ch.FinishReason
				dst = e.closeBlock(dst)
			}
		}
	}
	return dst
}

// Finish closes the stream: it closes any open block and writes message_delta, with the stop
// reason and u (nil: the usage seen in the chunks, if any), then message_stop. It is called
// once, when the provider's stream ended normally; later calls write nothing.
func (e *StreamEncoder) Finish(dst []byte, u *openai.Usage) []byte {
	if e.finished {
		return dst
	}
	if !e.started {
		dst = e.start(dst, "")
	}
	dst = e.closeBlock(dst)
	if u == nil {
		u = e.usage
	}
	e.finished = true
	ev := messageDeltaEvent{Type: evMessageDelta, Usage: usageFromOpenAI(u)}
	ev.Delta.StopReason = stopReasonFromFinish(e.finish, e.refused)
	dst = appendEvent(dst, evMessageDelta, ev)
	return appendEvent(dst, evMessageStop, struct {
		Type string `json:"type"`
	}{evMessageStop})
}

func (e *StreamEncoder) start(dst []byte, id string) []byte {
	e.started = true
	msg := struct {
		ID           string   `json:"id"`
		Type         string   `json:"type"`
		Role         string   `json:"role"`
		Model        string   `json:"model"`
		Content      []any    `json:"content"`
		StopReason   *string  `json:"stop_reason"`
		StopSequence *string  `json:"stop_sequence"`
		Usage        outUsage `json:"usage"`
	}{ID: messageID(id), Type: "message", Role: "assistant", Model: e.model, Content: []any{}}
	msg.Usage = usageFromOpenAI(e.usage)
	msg.Usage.OutputTokens = 0 // message_delta reports the output
	return appendEvent(dst, evMessageStart, struct {
		Type    string `json:"type"`
		Message any    `json:"message"`
	}{evMessageStart, msg})
}

func (e *StreamEncoder) delta(dst []byte, d *openai.Delta) []byte {
	if d.ReasoningContent != "" {
		dst = e.openBlock(dst, kindThinking, thinkingOut{Type: blockThinking})
		dst = e.blockDelta(dst, struct {
			Type     string `json:"type"`
			Thinking string `json:"thinking"`
		}{"thinking_delta", d.ReasoningContent})
	}
	for _, text := range []*string{d.Content, d.Refusal} {
		if text == nil || *text == "" {
			continue
		}
		if text == d.Refusal {
			e.refused = true
		}
		dst = e.openBlock(dst, kindText, textOut{Type: blockText})
		dst = e.blockDelta(dst, struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}{"text_delta", *text})
	}
	for _, tc := range d.ToolCalls {
		idx := 0
		if tc.Index != nil {
			idx = *tc.Index
		}
		if e.open != kindTool || e.toolIdx != idx {
			if e.seenTool[idx] {
				continue // see the type comment: its block is closed
			}
			e.seenTool[idx] = true
			dst = e.closeBlock(dst)
			dst = e.openBlock(dst, kindTool, toolUseOut{
				Type: blockToolUse, ID: toolUseID(tc.ID), Name: tc.Function.Name, Input: json.RawMessage("{}"),
			})
			e.toolIdx = idx
		}
		if tc.Function.Arguments != "" {
			dst = e.blockDelta(dst, struct {
				Type        string `json:"type"`
				PartialJSON string `json:"partial_json"`
			}{"input_json_delta", tc.Function.Arguments})
		}
	}
	return dst
}

// openBlock makes a block of kind the open one, closing a block of another kind. Tool blocks
// are always opened afresh by the caller.
func (e *StreamEncoder) openBlock(dst []byte, kind blockKind, block any) []byte {
	if e.open == kind && kind != kindTool {
		return dst
	}
	dst = e.closeBlock(dst)
	e.open = kind
	return appendEvent(dst, evContentBlockStart, struct {
		Type         string `json:"type"`
		Index        int    `json:"index"`
		ContentBlock any    `json:"content_block"`
	}{evContentBlockStart, e.next, block})
}

func (e *StreamEncoder) blockDelta(dst []byte, delta any) []byte {
	return appendEvent(dst, evContentBlockDelta, struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
		Delta any    `json:"delta"`
	}{evContentBlockDelta, e.next, delta})
}

func (e *StreamEncoder) closeBlock(dst []byte) []byte {
	if e.open == kindNone {
		return dst
	}
	dst = appendEvent(dst, evContentBlockStop, struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}{evContentBlockStop, e.next})
	e.open = kindNone
	e.next++
	return dst
}

// appendEvent writes one named event; v is one of this package's event structs, which always
// encode.
func appendEvent(dst []byte, name string, v any) []byte {
	data, _ := json.Marshal(v)
	return sse.AppendEvent(dst, sse.Event{Name: name, Data: data})
}
