package gemini

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
	"github.com/tollgate/tollgate/extproc/sse"
)

// StreamDecoder turns a Gemini provider's streamGenerateContent?alt=sse stream into pivot
// chunks, one upstream chunk at a time; chunks may be cut anywhere. Each part of a frame becomes
// one chunk (thought → reasoning_content, text → content, functionCall → one whole tool call
// with its own index), so the order of the parts survives. usageMetadata is cumulative in every
// frame: the last one wins. No usage chunk is emitted: the client's encoder asks Usage. Not safe
// for concurrent use.
type StreamDecoder struct {
	model   string
	created int64
	dec     sse.Decoder
	events  []sse.Event

	id      string
	started bool // the assistant role went out
	calls   int
	content int64 // bytes of text, thoughts and function calls decoded
	usage   *UsageMetadata
	finish  string
	done    bool
}

// NewStreamDecoder returns a decoder naming model in every chunk.
func NewStreamDecoder(model string) *StreamDecoder {
	return &StreamDecoder{model: model, created: time.Now().Unix()}
}

// Feed consumes one upstream chunk and returns the pivot chunks it completes. An error object
// in the stream is returned as the provider's *apierror.Error; so is a stream that ends
// (endOfStream) before a frame with a finish reason arrived, since the answer is then cut short.
func (d *StreamDecoder) Feed(chunk []byte, endOfStream bool) ([]openai.ChatCompletionChunk, error) {
	var out []openai.ChatCompletionChunk
	var err error
	d.events, err = d.dec.Feed(d.events[:0], chunk)
	if err != nil {
		return nil, fmt.Errorf("gemini stream: %w", err)
	}
	if endOfStream {
		d.events, _ = d.dec.End(d.events, json.Valid)
	}
	for _, ev := range d.events {
		if out, err = d.frame(out, ev.Data); err != nil {
			return out, err
		}
	}
	if endOfStream && !d.done {
		return out, apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider's stream ended before it was complete")
	}
	return out, nil
}

func (d *StreamDecoder) frame(out []openai.ChatCompletionChunk, data []byte) ([]openai.ChatCompletionChunk, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return out, nil
	}
	var f struct {
		GenerateContentResponse
		Error *googleError `json:"error"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return out, fmt.Errorf("decode gemini stream frame: %w", err)
	}
	if f.Error != nil {
		return out, streamError(data, f.Error)
	}
	if d.id == "" {
		d.id = f.ResponseID
	}
	if f.UsageMetadata != nil {
		d.usage = f.UsageMetadata
	}
	finish := blockFinish(f.PromptFeedback)
	if len(f.Candidates) > 0 {
		c := &f.Candidates[0]
		if c.Content != nil {
			for _, p := range c.Content.Parts {
				if delta, ok := d.delta(p, f.ResponseID); ok {
					out = append(out, d.chunk(delta, nil))
				}
			}
		}
		if c.FinishReason != "" {
			finish = pivotFinish(c.FinishReason, d.calls > 0)
		}
	}
	if finish != "" && !d.done {
		d.finish, d.done = finish, true
		out = append(out, d.chunk(openai.Delta{}, &finish))
	}
	return out, nil
}

func (d *StreamDecoder) delta(p Part, responseID string) (openai.Delta, bool) {
	switch {
	case p.FunctionCall != nil:
		idx := d.calls
		d.calls++
		args := compactOr(p.FunctionCall.Args, "{}")
		d.content += int64(len(p.FunctionCall.Name) + len(args))
		return openai.Delta{ToolCalls: []openai.ToolCall{{
			Index:    &idx,
			ID:       callID(p.FunctionCall.ID, responseID, idx),
			Type:     "function",
			Function: openai.FunctionCall{Name: p.FunctionCall.Name, Arguments: args},
		}}}, true
	case p.Text != nil && *p.Text == "":
		return openai.Delta{}, false // Gemini's last frame often holds an empty text part
	case p.Text != nil && p.Thought:
		d.content += int64(len(*p.Text))
		return openai.Delta{ReasoningContent: *p.Text}, true
	case p.Text != nil:
		d.content += int64(len(*p.Text))
		return openai.Delta{Content: p.Text}, true
	}
	return openai.Delta{}, false
}

func (d *StreamDecoder) chunk(delta openai.Delta, finish *string) openai.ChatCompletionChunk {
	if !d.started {
		delta.Role = "assistant"
		d.started = true
	}
	return openai.ChatCompletionChunk{
		ID:      completionID(d.id),
		Object:  "chat.completion.chunk",
		Created: d.created,
		Model:   d.model,
		Choices: []openai.ChunkChoice{{Delta: delta, FinishReason: finish}},
	}
}

// Usage reports the last usageMetadata seen, in the pivot's and billing's terms; ok is false if
// no frame carried any.
func (d *StreamDecoder) Usage() (openai.Usage, billing.Usage, bool) {
	if d.usage == nil {
		return openai.Usage{}, billing.Usage{}, false
	}
	u, b := usages(*d.usage)
	return u, b, true
}

// FinishReason is the pivot's finish reason, "" until a frame carried one.
func (d *StreamDecoder) FinishReason() string { return d.finish }

// ContentBytes counts the bytes of text, thoughts and function calls (name and arguments)
// decoded so far, from which a stream cut before its final frame is estimated.
func (d *StreamDecoder) ContentBytes() int64 { return d.content }

// Done reports whether a frame with a finish reason (or a prompt block) was seen.
func (d *StreamDecoder) Done() bool { return d.done }

// UsageFinal reports whether the frame with a finish reason passed: its usageMetadata is the
// stream's final count, earlier frames' are running totals.
func (d *StreamDecoder) UsageFinal() bool { return d.done }
