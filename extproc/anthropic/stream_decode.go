package anthropic

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
	"github.com/tollgate/tollgate/extproc/sse"
)

// decodeEvent reads one event's payload. Its type is the one in the data, which the reference
// says always matches the event name; the name is the fallback.
func decodeEvent(ev sse.Event) (streamEvent, error) {
	var e streamEvent
	if err := json.Unmarshal(ev.Data, &e); err != nil {
		return e, fmt.Errorf("decode anthropic %s event: %w", ev.Name, err)
	}
	if e.Type == "" {
		e.Type = ev.Name
	}
	return e, nil
}

// deltaBytes is the content a content_block_delta carries: text, thinking or tool input. Both
// StreamDecoder and StreamRewriter count with it, so that a cut stream is estimated alike
// whichever protocol its client speaks.
func deltaBytes(e *streamEvent) int64 {
	return int64(len(e.Delta.Text) + len(e.Delta.Thinking) + len(e.Delta.PartialJSON))
}

type decodedBlock struct {
	kind       blockKind
	toolIdx    int
	structured bool // a StructuredOutputTool call: its input is the answer text
}

// StreamDecoder turns an Anthropic-kind provider's event stream into pivot chunks, for a client
// of another protocol. The first chunk carries the assistant role; text and thinking deltas
// become content and reasoning; each tool_use block becomes a tool call with its own Index, its
// input_json_delta fragments the call's arguments; message_delta's stop reason a finish-reason
// chunk; and message_stop a last chunk without choices carrying the usage, as an OpenAI stream
// with include_usage ends. ping and unknown events (the API adds new ones) are skipped.
//
// Chunks may be cut anywhere: partial events are held back. Not safe for concurrent use.
type StreamDecoder struct {
	model   string
	created int64
	dec     sse.Decoder
	events  []sse.Event

	id         string
	blocks     map[int]decodedBlock
	tools      int  // tool calls seen, for the next call's Index
	structured bool // StructuredOutputTool was called
	usage      usageCounts
	finish     string
	content    int64 // as StreamRewriter counts it
	done       bool
}

// NewStreamDecoder returns a decoder naming model (the canonical id) in every chunk.
func NewStreamDecoder(model string) *StreamDecoder {
	return &StreamDecoder{model: model, created: time.Now().Unix(), blocks: map[int]decodedBlock{}}
}

// Feed consumes one chunk of the provider's stream and returns the pivot chunks it completes.
// An error event from the provider is returned as an *apierror.Error for the caller to render
// in the client's protocol, as is a stream that ends (endOfStream) before message_stop. Other
// errors are a malformed stream.
func (d *StreamDecoder) Feed(chunk []byte, endOfStream bool) ([]openai.ChatCompletionChunk, error) {
	var err error
	d.events, err = d.dec.Feed(d.events[:0], chunk)
	if err == nil && endOfStream {
		d.events, _ = d.dec.End(d.events, json.Valid)
	}
	var out []openai.ChatCompletionChunk
	for _, ev := range d.events {
		if d.done {
			break // nothing follows message_stop
		}
		e, derr := decodeEvent(ev)
		if derr != nil {
			return out, derr
		}
		if out, derr = d.event(out, &e); derr != nil {
			return out, derr
		}
	}
	if err != nil {
		return out, fmt.Errorf("anthropic stream: %w", err)
	}
	if endOfStream && !d.done {
		return out, apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider's stream ended before it was complete")
	}
	return out, nil
}

func (d *StreamDecoder) event(out []openai.ChatCompletionChunk, e *streamEvent) ([]openai.ChatCompletionChunk, error) {
	switch e.Type {
	case evMessageStart:
		if e.Message != nil {
			d.id = e.Message.ID
			d.usage.apply(&e.Message.Usage)
		}
		return append(out, d.chunk(openai.Delta{Role: "assistant", Content: ptr("")}, nil)), nil
	case evContentBlockStart:
		return d.blockStart(out, e.Index, &e.ContentBlock), nil
	case evContentBlockDelta:
		d.content += deltaBytes(e)
		return d.blockDelta(out, e), nil
	case evMessageDelta:
		d.usage.apply(e.Usage)
		d.usage.final = d.usage.final || e.Usage != nil
		if e.Delta.StopReason == nil {
			return out, nil
		}
		d.finish = finishFromStop(*e.Delta.StopReason, d.structured && d.tools == 0)
		return append(out, d.chunk(openai.Delta{}, ptr(d.finish))), nil
	case evMessageStop:
		d.done = true
		u := d.usage.openAI()
		c := d.chunk(openai.Delta{}, nil)
		c.Choices, c.Usage = []openai.ChunkChoice{}, &u
		return append(out, c), nil
	case evError:
		return out, providerError(0, e.Error.Type, e.Error.Message)
	}
	return out, nil // content_block_stop, ping, and event types added after this was written
}

func (d *StreamDecoder) blockStart(out []openai.ChatCompletionChunk, index int, b *ContentBlock) []openai.ChatCompletionChunk {
	switch b.Type {
	case blockText:
		d.blocks[index] = decodedBlock{kind: kindText}
		if b.Text != nil && *b.Text != "" {
			out = append(out, d.chunk(openai.Delta{Content: b.Text}, nil))
		}
	case blockThinking:
		d.blocks[index] = decodedBlock{kind: kindThinking}
		if b.Thinking != nil && *b.Thinking != "" {
			out = append(out, d.chunk(openai.Delta{ReasoningContent: *b.Thinking}, nil))
		}
	case blockToolUse:
		if b.Name == StructuredOutputTool {
			d.structured = true
			d.blocks[index] = decodedBlock{kind: kindText, structured: true}
			return out
		}
		idx := d.tools
		d.tools++
		d.blocks[index] = decodedBlock{kind: kindTool, toolIdx: idx}
		out = append(out, d.chunk(openai.Delta{ToolCalls: []openai.ToolCall{{
			Index: &idx, ID: b.ID, Type: "function", Function: openai.FunctionCall{Name: b.Name},
		}}}, nil))
	}
	// redacted_thinking and server tool blocks have no pivot equivalent.
	return out
}

func (d *StreamDecoder) blockDelta(out []openai.ChatCompletionChunk, e *streamEvent) []openai.ChatCompletionChunk {
	b, ok := d.blocks[e.Index]
	if !ok {
		return out
	}
	switch e.Delta.Type {
	case "text_delta":
		if e.Delta.Text != "" {
			out = append(out, d.chunk(openai.Delta{Content: ptr(e.Delta.Text)}, nil))
		}
	case "thinking_delta":
		if e.Delta.Thinking != "" {
			out = append(out, d.chunk(openai.Delta{ReasoningContent: e.Delta.Thinking}, nil))
		}
	case "input_json_delta":
		switch {
		case e.Delta.PartialJSON == "":
		case b.structured:
			out = append(out, d.chunk(openai.Delta{Content: ptr(e.Delta.PartialJSON)}, nil))
		case b.kind == kindTool:
			idx := b.toolIdx
			out = append(out, d.chunk(openai.Delta{ToolCalls: []openai.ToolCall{{
				Index: &idx, Function: openai.FunctionCall{Arguments: e.Delta.PartialJSON},
			}}}, nil))
		}
	}
	// signature_delta and citations_delta have no pivot equivalent.
	return out
}

func (d *StreamDecoder) chunk(delta openai.Delta, finish *string) openai.ChatCompletionChunk {
	return openai.ChatCompletionChunk{
		ID: d.id, Object: "chat.completion.chunk", Created: d.created, Model: d.model,
		Choices: []openai.ChunkChoice{{Delta: delta, FinishReason: finish}},
	}
}

// Usage reports the usage the stream has announced so far, as OpenAI counts and as billing
// items, and whether there was any. It is final once Done.
func (d *StreamDecoder) Usage() (openai.Usage, billing.Usage, bool) {
	return d.usage.openAI(), d.usage.billing(), d.usage.seen
}

// UsageFinal reports whether message_delta has reported the usage: before it, the output count
// is message_start's placeholder.
func (d *StreamDecoder) UsageFinal() bool { return d.usage.final }

// FinishReason is the pivot finish reason, once message_delta has reported the stop reason.
func (d *StreamDecoder) FinishReason() string { return d.finish }

// ContentBytes counts the bytes of text, thinking and tool input the provider has streamed so
// far, counted as StreamRewriter counts them, from which a stream cut before its final usage
// is estimated.
func (d *StreamDecoder) ContentBytes() int64 { return d.content }

// Done reports whether message_stop arrived: the stream is complete.
func (d *StreamDecoder) Done() bool { return d.done }
