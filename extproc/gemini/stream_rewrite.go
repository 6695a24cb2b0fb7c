package gemini

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
	"github.com/tollgate/tollgate/extproc/sse"
)

// StreamRewriter passes a Gemini provider's stream to a Gemini client, one upstream chunk at a
// time (cut anywhere): every frame is re-emitted with the canonical model in modelVersion, and
// the usage and finish reason are read on the way. A provider error frame passes as it is (it is
// already in the client's shape). Not safe for concurrent use.
type StreamRewriter struct {
	model  string
	dec    sse.Decoder
	events []sse.Event

	usage *UsageMetadata
	// content counts the bytes of text and function calls passed to the client, from which a
	// stream cut before its final frame is estimated.
	content int64
	finish  string
	calls   bool // a functionCall part went by: STOP then means tool_calls
	done    bool
	failed  bool // an error frame went to the client
}

// NewStreamRewriter returns a rewriter naming model in every frame.
func NewStreamRewriter(model string) *StreamRewriter { return &StreamRewriter{model: model} }

// Feed consumes one upstream chunk and returns the bytes to send the client in its place
// (possibly none). At end of stream, a stream the provider cut short — no finish reason and no
// error frame — is closed with an error frame, so the client does not take it as complete.
func (s *StreamRewriter) Feed(chunk []byte, endOfStream bool) ([]byte, error) {
	var out []byte
	var err error
	s.events, err = s.dec.Feed(s.events[:0], chunk)
	if err != nil {
		return nil, fmt.Errorf("gemini stream: %w", err)
	}
	if endOfStream {
		s.events, _ = s.dec.End(s.events, json.Valid)
	}
	for _, ev := range s.events {
		b, err := s.rewrite(ev.Data)
		if err != nil {
			return out, err
		}
		if b != nil {
			out = sse.AppendData(out, b)
		}
	}
	if endOfStream && !s.done && !s.failed {
		e := apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider's stream ended before it was complete")
		out = StreamErrorFrame(out, e)
		s.failed = true
	}
	return out, nil
}

func (s *StreamRewriter) rewrite(data []byte) ([]byte, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("decode gemini stream frame: %w", errOrNull(err))
	}
	if _, isErr := fields["error"]; isErr {
		// Forwarded in the gateway's words: the provider's may name the operator's account.
		s.failed = true
		g := parseGoogleError(data)
		if g == nil {
			return nil, fmt.Errorf("decode gemini stream frame: malformed error object")
		}
		return ErrorBody(streamError(data, g)), nil
	}
	info, err := inspect(fields)
	if err != nil {
		return nil, err
	}
	if info.usage != nil {
		s.usage = info.usage
	}
	s.calls = s.calls || info.calls
	s.content += info.content
	if f := info.finish(s.calls); f != "" {
		s.finish, s.done = f, true
	}
	fields["modelVersion"], _ = json.Marshal(s.model)
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encode gemini stream frame: %w", err)
	}
	return out, nil
}

// Usage reports the last usageMetadata seen; ok is false if no frame carried any.
func (s *StreamRewriter) Usage() (openai.Usage, billing.Usage, bool) {
	if s.usage == nil {
		return openai.Usage{}, billing.Usage{}, false
	}
	u, b := usages(*s.usage)
	return u, b, true
}

// FinishReason is the pivot's finish reason, "" until a frame carried one.
func (s *StreamRewriter) FinishReason() string { return s.finish }

// ContentBytes counts the bytes of text and function calls passed to the client so far.
func (s *StreamRewriter) ContentBytes() int64 { return s.content }

// Done reports whether a frame with a finish reason was seen: its usageMetadata is final.
func (s *StreamRewriter) Done() bool { return s.done }
