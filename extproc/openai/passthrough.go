package openai

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/sse"
)

var doneData = []byte("[DONE]")

// wholeData is the end-of-stream test (sse.Decoder.End) for a final event that lacks its blank
// line: its data must be [DONE] or JSON that parses, else it was cut short.
func wholeData(data []byte) bool {
	data = bytes.TrimSpace(data)
	return bytes.Equal(data, doneData) || json.Valid(data)
}

// StreamRewriter rewrites an OpenAI-kind provider's chat-completion stream for the client, one
// upstream chunk at a time: the canonical model goes into every chunk, and the usage the gateway
// forced on is removed again when the client did not ask for it. It holds back partial events, so
// it may be fed chunks cut anywhere. Not safe for concurrent use.
type StreamRewriter struct {
	model        string
	includeUsage bool
	dec          sse.Decoder
	events       []sse.Event

	// Result accumulates what the stream reported: usage from its usage chunk, the last finish
	// reason.
	Result Result
	// Done is set once the provider's [DONE] arrived.
	Done bool
	// Chunks counts content chunks passed to the client.
	Chunks int
}

// NewStreamRewriter returns a rewriter naming model in every chunk; includeUsage is the client's
// stream_options.include_usage.
func NewStreamRewriter(model string, includeUsage bool) *StreamRewriter {
	return &StreamRewriter{model: model, includeUsage: includeUsage}
}

// Feed consumes one upstream chunk and returns the bytes to send the client in its place (possibly
// none). At end of stream, Feed also closes the client's stream: a stream the provider cut short
// ends with an error event in OpenAI's shape, followed by [DONE].
func (s *StreamRewriter) Feed(chunk []byte, endOfStream bool) ([]byte, error) {
	var err error
	s.events, err = s.dec.Feed(s.events[:0], chunk)
	if err == nil && endOfStream {
		s.events, _ = s.dec.End(s.events, wholeData)
	}
	var out []byte
	for _, ev := range s.events {
		if s.Done {
			continue // nothing follows [DONE]
		}
		if bytes.Equal(bytes.TrimSpace(ev.Data), doneData) {
			s.Done = true
			continue // re-emitted at the very end, after anything the gateway adds
		}
		b, ferr := s.rewrite(ev.Data)
		if ferr != nil {
			return out, ferr
		}
		if b != nil {
			out = sse.AppendData(out, b)
		}
	}
	if err != nil {
		return out, fmt.Errorf("openai stream: %w", err)
	}
	if endOfStream {
		if !s.Done {
			e := apierror.New(502, apierror.CodeProviderError, "The upstream provider's stream ended before it was complete")
			out = sse.AppendData(out, ErrorBody(e))
		}
		out = sse.AppendData(out, doneData)
	}
	return out, nil
}

func (s *StreamRewriter) rewrite(data []byte) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("decode openai stream chunk: %w", errOrNull(err))
	}
	if _, isErr := fields["error"]; isErr {
		// Already in the client's shape, but in the provider's words, which may name the
		// operator's account: re-worded like any provider error.
		return ErrorBody(ProviderError(502, data)), nil
	}
	res, err := inspect(fields)
	if err != nil {
		return nil, err
	}
	if res.HasUsage {
		s.Result.Usage, s.Result.HasUsage = res.Usage, true
	}
	if res.FinishReason != "" {
		s.Result.FinishReason = res.FinishReason
	}
	s.Result.ContentBytes += res.ContentBytes
	if !s.includeUsage {
		if res.HasUsage && isEmptyArray(fields["choices"]) {
			return nil, nil // the usage-only chunk exists only because the gateway asked for it
		}
		delete(fields, "usage")
	}
	s.Chunks++
	fields["model"], _ = json.Marshal(s.model)
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encode openai stream chunk: %w", err)
	}
	return out, nil
}

func isEmptyArray(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("[]")) || isNull(raw)
}
