package openai

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/sse"
)

// PassthroughBody builds the body sent to an OpenAI-kind provider for an OpenAI client's request.
// The client's request is already the pivot, so this is BuildRequest's body.
func PassthroughBody(r *ChatRequest, upstreamModel string) ([]byte, error) {
	return BuildRequest(r, upstreamModel)
}

// RewriteResponse takes a non-streaming chat completion from an OpenAI-kind provider, puts the
// canonical model id in "model", and reports its usage (zero when it reported none) and its
// finish reason. Every other field passes unchanged.
func RewriteResponse(body []byte, model string) ([]byte, billing.Usage, string, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, billing.Usage{}, "", fmt.Errorf("decode openai response: %w", errOrNull(err))
	}
	a, err := inspect(fields)
	if err != nil {
		return nil, billing.Usage{}, "", err
	}
	fields["model"], _ = json.Marshal(model)
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, billing.Usage{}, "", fmt.Errorf("encode openai response: %w", err)
	}
	return out, a.usage.Billing(), a.finish, nil
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

	// seen accumulates what the stream reported: usage from its usage chunk, the last finish
	// reason, the content passed so far.
	seen answer
	done bool
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
		if s.done {
			continue // nothing follows [DONE]
		}
		if bytes.Equal(bytes.TrimSpace(ev.Data), doneData) {
			s.done = true
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
		if !s.done {
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
	a, err := inspect(fields)
	if err != nil {
		return nil, err
	}
	if a.hasUsage {
		s.seen.usage, s.seen.hasUsage = a.usage, true
	}
	if a.finish != "" {
		s.seen.finish = a.finish
	}
	s.seen.content += a.content
	if !s.includeUsage {
		if a.hasUsage && isEmptyArray(fields["choices"]) {
			return nil, nil // the usage-only chunk exists only because the gateway asked for it
		}
		delete(fields, "usage")
	}
	fields["model"], _ = json.Marshal(s.model)
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encode openai stream chunk: %w", err)
	}
	return out, nil
}

// Usage returns the stream's usage once its usage chunk arrived.
func (s *StreamRewriter) Usage() (Usage, billing.Usage, bool) {
	return s.seen.usage, s.seen.usage.Billing(), s.seen.hasUsage
}

// UsageFinal reports whether the usage chunk arrived: OpenAI reports usage once, at the end.
func (s *StreamRewriter) UsageFinal() bool { return s.seen.hasUsage }

// FinishReason is the last finish reason seen.
func (s *StreamRewriter) FinishReason() string { return s.seen.finish }

// ContentBytes counts the bytes of text, reasoning, refusal and tool calls (name and arguments)
// passed to the client so far, as written in JSON: an upper bound of the text's bytes.
func (s *StreamRewriter) ContentBytes() int64 { return s.seen.content }

// Done reports whether the provider's [DONE] arrived.
func (s *StreamRewriter) Done() bool { return s.done }

func isEmptyArray(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("[]")) || isNull(raw)
}

// answer is what the gateway learns from a provider's answer, or a stream's chunks so far.
type answer struct {
	usage    Usage
	hasUsage bool
	finish   string
	// content counts the bytes of the choices' text, reasoning, refusal and tool-call name and
	// arguments (message or delta), from which an answer without usage is estimated.
	content int64
}

// inspect reads usage, the last choice's finish reason and the content's size from a response
// or chunk.
func inspect(fields map[string]json.RawMessage) (answer, error) {
	var res answer
	if raw, ok := fields["usage"]; ok && !isNull(raw) {
		// Usage that does not decode (counts written 1e12, or as strings) is no usage: the
		// answer still reaches the client, and the gateway estimates what it cost.
		var u Usage
		if json.Unmarshal(raw, &u) == nil {
			res.usage, res.hasUsage = u, true
		}
	}
	if raw, ok := fields["choices"]; ok && !isNull(raw) {
		type body struct {
			Content          textLen `json:"content"`
			ReasoningContent textLen `json:"reasoning_content"`
			Refusal          textLen `json:"refusal"`
			ToolCalls        []struct {
				Function struct {
					Name      textLen `json:"name"`
					Arguments textLen `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		}
		var choices []struct {
			FinishReason *string `json:"finish_reason"`
			Message      body    `json:"message"`
			Delta        body    `json:"delta"`
		}
		if err := json.Unmarshal(raw, &choices); err != nil {
			return res, fmt.Errorf("decode openai choices: %w", err)
		}
		for _, c := range choices {
			if c.FinishReason != nil {
				res.finish = *c.FinishReason
			}
			for _, b := range []*body{&c.Message, &c.Delta} {
				res.content += int64(b.Content + b.ReasoningContent + b.Refusal)
				for _, tc := range b.ToolCalls {
					res.content += int64(tc.Function.Name + tc.Function.Arguments)
				}
			}
		}
	}
	return res, nil
}

func errOrNull(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("body is null")
}

// textLen decodes a JSON string as its length in bytes as written, escapes included (an upper
// bound of the text's bytes), without allocating the string: it is read from every streamed
// chunk. null is 0; any other value (some compatible hosts send content as an array of parts)
// counts whole.
type textLen int64

func (n *textLen) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) >= 2 && b[0] == '"':
		*n = textLen(len(b) - 2)
	case string(b) != "null":
		*n = textLen(len(b))
	}
	return nil
}
