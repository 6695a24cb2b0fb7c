package openai

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/sse"
)

var doneData = []byte("[DONE]")

// wholeData is the end-of-stream test (sse.Decoder.End) for a final event that lacks its blank
// line: its data must be [DONE] or JSON that parses, else it was cut short.
func wholeData(data []byte) bool {
	data = bytes.TrimSpace(data)
	return bytes.Equal(data, doneData) || json.Valid(data)
}

// StreamDecoder reads an OpenAI-kind provider's stream into pivot chunks. It may be fed chunks
// cut anywhere. Not safe for concurrent use.
type StreamDecoder struct {
	model   string
	dec     sse.Decoder
	events  []sse.Event
	usage   *Usage
	finish  string
	content int64
	done    bool
}

// NewStreamDecoder returns a decoder naming model in every chunk.
func NewStreamDecoder(model string) *StreamDecoder { return &StreamDecoder{model: model} }

// Feed consumes one upstream chunk and returns the pivot chunks it completed. A provider error
// event is returned as an *apierror.Error.
func (d *StreamDecoder) Feed(chunk []byte, endOfStream bool) ([]ChatCompletionChunk, error) {
	var err error
	d.events, err = d.dec.Feed(d.events[:0], chunk)
	if err != nil {
		return nil, fmt.Errorf("openai stream: %w", err)
	}
	if endOfStream {
		d.events, _ = d.dec.End(d.events, wholeData)
	}
	var out []ChatCompletionChunk
	for _, ev := range d.events {
		if d.done {
			break
		}
		data := bytes.TrimSpace(ev.Data)
		if bytes.Equal(data, doneData) {
			d.done = true
			break
		}
		var probe struct {
			Error *json.RawMessage `json:"error"`
		}
		if json.Unmarshal(data, &probe) == nil && probe.Error != nil {
			return out, ProviderError(502, data)
		}
		var c ChatCompletionChunk
		if err := json.Unmarshal(data, &c); err != nil {
			return out, fmt.Errorf("decode openai stream chunk: %w", err)
		}
		c.Model = d.model
		if c.Usage != nil {
			d.usage = c.Usage
		}
		for i := range c.Choices {
			ch := &c.Choices[i]
			if ch.FinishReason != nil {
				d.finish = *ch.FinishReason
			}
			d.content += deltaBytes(&ch.Delta)
		}
		out = append(out, c)
	}
	if endOfStream && !d.done {
		return out, apierror.New(502, apierror.CodeProviderError, "The upstream provider's stream ended before it was complete")
	}
	return out, nil
}

// Usage returns the stream's usage once its usage chunk arrived.
func (d *StreamDecoder) Usage() (Usage, billing.Usage, bool) {
	if d.usage == nil {
		return Usage{}, billing.Usage{}, false
	}
	return *d.usage, d.usage.Billing(), true
}

// UsageFinal reports whether the usage chunk arrived: OpenAI reports usage once, at the end.
func (d *StreamDecoder) UsageFinal() bool { return d.usage != nil }

// FinishReason is the last finish reason seen.
func (d *StreamDecoder) FinishReason() string { return d.finish }

// ContentBytes counts the bytes of text, reasoning, refusal and tool calls (name and arguments)
// in the chunks returned so far: the fields the rewriter counts, here after JSON unescaping.
func (d *StreamDecoder) ContentBytes() int64 { return d.content }

// Done reports whether the provider's [DONE] arrived.
func (d *StreamDecoder) Done() bool { return d.done }

// deltaBytes is the content a delta adds, in bytes.
func deltaBytes(d *Delta) int64 {
	n := len(d.ReasoningContent)
	if d.Content != nil {
		n += len(*d.Content)
	}
	if d.Refusal != nil {
		n += len(*d.Refusal)
	}
	for _, tc := range d.ToolCalls {
		n += len(tc.Function.Name) + len(tc.Function.Arguments)
	}
	return int64(n)
}
