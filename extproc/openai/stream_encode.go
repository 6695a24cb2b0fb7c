package openai

import (
	"encoding/json"

	"github.com/tollgate/tollgate/extproc/sse"
)

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
