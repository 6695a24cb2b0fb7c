package openai

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/sse"
)

// This file converts between OpenAI's wire format and the pivot when the other side speaks
// another protocol: an OpenAI-kind provider serving an Anthropic or Gemini client (decode), and
// an OpenAI client served by an Anthropic or Gemini provider (encode).

// DecodeCompletion reads an OpenAI-kind provider's non-streaming response into the pivot, naming
// model, and returns its usage for billing.
func DecodeCompletion(body []byte, model string) (*ChatCompletion, billing.Usage, error) {
	var c ChatCompletion
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, billing.Usage{}, fmt.Errorf("decode openai response: %w", err)
	}
	if len(c.Choices) == 0 {
		return nil, billing.Usage{}, fmt.Errorf("decode openai response: no choices")
	}
	c.Model = model
	var u billing.Usage
	if c.Usage != nil {
		u = c.Usage.Billing()
	}
	return &c, u, nil
}

// EncodeCompletion renders a pivot response for an OpenAI client, naming model.
func EncodeCompletion(c *ChatCompletion, model string) []byte {
	out := *c
	out.Model, out.Object = model, "chat.completion"
	for i := range out.Choices {
		if out.Choices[i].Logprobs == nil {
			out.Choices[i].Logprobs = json.RawMessage("null")
		}
	}
	b, _ := json.Marshal(out)
	return b
}

// StreamDecoder reads an OpenAI-kind provider's stream into pivot chunks. It may be fed chunks
// cut anywhere. Not safe for concurrent use.
type StreamDecoder struct {
	model  string
	dec    sse.Decoder
	events []sse.Event
	usage  *Usage
	finish string
	done   bool
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
		for _, ch := range c.Choices {
			if ch.FinishReason != nil {
				d.finish = *ch.FinishReason
			}
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

// FinishReason is the last finish reason seen.
func (d *StreamDecoder) FinishReason() string { return d.finish }

// Done reports whether the provider's [DONE] arrived.
func (d *StreamDecoder) Done() bool { return d.done }

// StreamEncoder renders pivot chunks as OpenAI's stream for a client. Not safe for concurrent use.
type StreamEncoder struct {
	model        string
	includeUsage bool
	id           string
	created      int64
}

// NewStreamEncoder returns an encoder naming model; includeUsage is the client's
// stream_options.include_usage.
func NewStreamEncoder(model string, includeUsage bool) *StreamEncoder {
	return &StreamEncoder{model: model, includeUsage: includeUsage}
}

// Encode appends chunks to dst as OpenAI SSE events.
func (e *StreamEncoder) Encode(dst []byte, chunks []ChatCompletionChunk) []byte {
	for _, c := range chunks {
		if len(c.Choices) == 0 && c.Usage != nil {
			continue // usage goes out once, in Finish
		}
		c.Model, c.Object, c.Usage = e.model, "chat.completion.chunk", nil
		if e.id == "" {
			e.id, e.created = c.ID, c.Created
		}
		b, _ := json.Marshal(c)
		dst = sse.AppendData(dst, b)
	}
	return dst
}

// Finish ends the client's stream: the usage chunk when the client asked for it, then [DONE].
func (e *StreamEncoder) Finish(dst []byte, u *Usage) []byte {
	if e.includeUsage && u != nil {
		b, _ := json.Marshal(ChatCompletionChunk{
			ID: e.id, Object: "chat.completion.chunk", Created: e.created, Model: e.model,
			Choices: []ChunkChoice{}, Usage: u,
		})
		dst = sse.AppendData(dst, b)
	}
	return sse.AppendData(dst, doneData)
}

// StreamError appends an error event in OpenAI's shape and ends the stream.
func StreamError(dst []byte, e *apierror.Error) []byte {
	dst = sse.AppendData(dst, ErrorBody(e))
	return sse.AppendData(dst, doneData)
}

// UsageFinal reports whether the usage chunk arrived: OpenAI reports usage once, at the end.
func (d *StreamDecoder) UsageFinal() bool { return d.usage != nil }
