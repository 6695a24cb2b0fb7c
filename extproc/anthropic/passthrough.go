package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
	"github.com/tollgate/tollgate/extproc/sse"
)

// PassthroughBody builds the body for an Anthropic-kind provider: the client's request as
// received, every field kept, with the provider's model name. It is rebuilt from the parsed
// fields on every call, never edited in place, so a retried attempt cannot inherit bytes from a
// previous one.
//
// One thing is taken out: thinking blocks without a signature. Anthropic signs every thinking
// block it returns and refuses a request whose thinking block's signature does not verify; an
// unsigned one can only come from an answer the gateway translated from another provider (see
// EncodeResponse), which a fallback chain may have served on an earlier turn.
func PassthroughBody(r *Request, upstreamModel string) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(r.fields))
	for k, v := range r.fields {
		out[k] = v
	}
	model, err := json.Marshal(upstreamModel)
	if err != nil {
		return nil, fmt.Errorf("encode anthropic model: %w", err)
	}
	out["model"] = model
	if r.hasUnsignedThinking() {
		if out["messages"], err = withoutUnsignedThinking(r.fields["messages"]); err != nil {
			return nil, fmt.Errorf("encode anthropic messages: %w", err)
		}
	}
	body, err := marshalVerbatim(out)
	if err != nil {
		return nil, fmt.Errorf("encode anthropic request: %w", err)
	}
	return body, nil
}

// marshalVerbatim encodes v without encoding/json's HTML escaping, so that forwarded text
// keeps its bytes ("<" stays "<" rather than becoming "\u003c").
func marshalVerbatim(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// WithMaxTokens returns a copy of r whose max_tokens is n: the gateway always sends the output
// limit its credit hold assumed. r is not modified (every attempt starts from the client's).
//
// When n is below the client's own max_tokens (the model's maximum is lower), a thinking
// budget must stay below it too, or Anthropic refuses the request: the budget is cut to n-1,
// and thinking is turned off when that leaves less than MinThinkingBudget.
func (r *Request) WithMaxTokens(n int64) *Request {
	c := *r
	c.MaxTokens = n
	c.fields = make(map[string]json.RawMessage, len(r.fields))
	for k, v := range r.fields {
		c.fields[k] = v
	}
	c.fields["max_tokens"] = strconv.AppendInt(nil, n, 10)
	if t := r.Thinking; t != nil && t.Type == "enabled" && t.BudgetTokens >= n {
		fit := Thinking{Type: "enabled", BudgetTokens: n - 1}
		if fit.BudgetTokens < MinThinkingBudget {
			fit = Thinking{Type: "disabled"}
		}
		c.Thinking = &fit
		c.fields["thinking"], _ = json.Marshal(fit)
	}
	return &c
}

func (r *Request) hasUnsignedThinking() bool {
	for i := range r.Messages {
		for _, b := range r.Messages[i].Blocks {
			if b.Type == blockThinking && (b.Signature == nil || *b.Signature == "") {
				return true
			}
		}
	}
	return false
}

// withoutUnsignedThinking returns the messages array raw without its unsigned thinking blocks,
// every other byte of every other block kept; a message left with no content goes too (the API
// joins consecutive turns of one role).
func withoutUnsignedThinking(raw json.RawMessage) (json.RawMessage, error) {
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return nil, err
	}
	kept := msgs[:0]
	for _, m := range msgs {
		var blocks []json.RawMessage
		if json.Unmarshal(m["content"], &blocks) != nil {
			kept = append(kept, m) // a string content has no thinking
			continue
		}
		out := blocks[:0]
		for _, b := range blocks {
			var probe struct {
				Type      string `json:"type"`
				Signature string `json:"signature"`
			}
			if json.Unmarshal(b, &probe) == nil && probe.Type == blockThinking && probe.Signature == "" {
				continue
			}
			out = append(out, b)
		}
		if len(out) == 0 {
			continue
		}
		content, err := marshalVerbatim(out)
		if err != nil {
			return nil, err
		}
		m["content"] = content
		kept = append(kept, m)
	}
	return marshalVerbatim(kept)
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
		out = StreamError(out, apierror.New(http.StatusBadGateway, apierror.CodeProviderError,
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
		s.content += deltaBytes(&e)
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

// FinishReason is Anthropic's own stop_reason, as RewriteResponse reports it, once
// message_delta has reported it: the client speaks Anthropic, so nothing is translated.
func (s *StreamRewriter) FinishReason() string { return s.stop }

// Done reports whether message_stop passed: the stream is complete.
func (s *StreamRewriter) Done() bool { return s.done }

func errOrNull(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("message is null")
}
