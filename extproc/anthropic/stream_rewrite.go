package anthropic

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
	"github.com/tollgate/tollgate/extproc/sse"
)

// StreamRewriter passes an Anthropic-kind provider's event stream through to an Anthropic
// client: the canonical model goes into message_start, every event is otherwise forwarded as
// it came (re-framed, so the client only ever receives whole events), and usage and the stop
// reason are read on the way. It may be fed chunks cut anywhere. Not safe for concurrent use.
type StreamRewriter struct {
	model  string
	dec    sse.Decoder
	events []sse.Event

	usage usageCounts
	stop  string
	// content counts the bytes of text, thinking and tool input passed to the client, from which
	// a stream cut before its final usage is estimated.
	content int64
	done    bool // message_stop passed
	failed  bool // the provider sent an error event
}

// NewStreamRewriter returns a rewriter naming model (the canonical id) in message_start.
func NewStreamRewriter(model string) *StreamRewriter { return &StreamRewriter{model: model} }

// Feed consumes one upstream chunk and returns the bytes to send the client in its place
// (possibly none). At end of stream, a stream that stopped before message_stop, without an
// error event of its own, is closed with an error event so that the client's SDK does not
// take a truncated answer for a complete one.
func (s *StreamRewriter) Feed(chunk []byte, endOfStream bool) ([]byte, error) {
	var err error
	s.events, err = s.dec.Feed(s.events[:0], chunk)
	if err == nil && endOfStream {
		s.events, _ = s.dec.End(s.events, json.Valid)
	}
	var out []byte
	for _, ev := range s.events {
		if s.done {
			break // nothing follows message_stop
		}
		data, rerr := s.rewrite(ev)
		if rerr != nil {
			return out, rerr
		}
		out = sse.AppendEvent(out, sse.Event{Name: ev.Name, ID: ev.ID, Data: data})
	}
	if err != nil {
		return out, fmt.Errorf("anthropic stream: %w", err)
	}
	if endOfStream && !s.done && !s.failed {
		out = StreamErrorEvent(out, apierror.New(http.StatusBadGateway, apierror.CodeProviderError,
			"The upstream provider's stream ended before it was complete"))
	}
	return out, nil
}

func (s *StreamRewriter) rewrite(ev sse.Event) ([]byte, error) {
	e, err := decodeEvent(ev)
	if err != nil {
		return nil, err
	}
	switch e.Type {
	case evMessageStart:
		if e.Message != nil {
			s.usage.apply(&e.Message.Usage)
		}
		return s.renameModel(ev.Data)
	case evMessageDelta:
		s.usage.apply(e.Usage)
		s.usage.final = s.usage.final || e.Usage != nil
		if e.Delta.StopReason != nil {
			s.stop = *e.Delta.StopReason
		}
	case evContentBlockDelta:
		s.content += int64(len(e.Delta.Text) + len(e.Delta.Thinking) + len(e.Delta.PartialJSON))
	case evMessageStop:
		s.done = true
	case evError:
		// Forwarded in the gateway's words: the provider's may name the operator's account.
		s.failed = true
		return ErrorBody(providerError(0, e.Error.Type, e.Error.Message)), nil
	}
	return ev.Data, nil
}

// renameModel rebuilds message_start with the canonical model, keeping every other field.
func (s *StreamRewriter) renameModel(data []byte) ([]byte, error) {
	var ev map[string]json.RawMessage
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("decode anthropic message_start: %w", err)
	}
	if err := json.Unmarshal(ev["message"], &msg); err != nil || msg == nil {
		return nil, fmt.Errorf("decode anthropic message_start message: %w", errOrNull(err))
	}
	msg["model"], _ = json.Marshal(s.model)
	var err error
	if ev["message"], err = marshalVerbatim(msg); err != nil {
		return nil, fmt.Errorf("encode anthropic message_start: %w", err)
	}
	out, err := marshalVerbatim(ev)
	if err != nil {
		return nil, fmt.Errorf("encode anthropic message_start: %w", err)
	}
	return out, nil
}

// Usage reports the usage read so far, as OpenAI counts and as billing items, and whether
// there was any. It is final once Done.
func (s *StreamRewriter) Usage() (openai.Usage, billing.Usage, bool) {
	return s.usage.openAI(), s.usage.billing(), s.usage.seen
}

// UsageFinal reports whether message_delta has reported the usage: before it, the output count
// is message_start's placeholder.
func (s *StreamRewriter) UsageFinal() bool { return s.usage.final }

// ContentBytes counts the bytes of text, thinking and tool input passed to the client so far.
func (s *StreamRewriter) ContentBytes() int64 { return s.content }

// StopReason is Anthropic's stop_reason, once message_delta has reported it.
func (s *StreamRewriter) StopReason() string { return s.stop }

// Done reports whether message_stop passed: the stream is complete.
func (s *StreamRewriter) Done() bool { return s.done }

func errOrNull(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("message is null")
}
