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

// PassthroughBody is the body sent to a Gemini provider for a Gemini client's request. It is
// rebuilt from the parsed request every time, never edited in place, so a retried attempt cannot
// inherit a previous attempt's bytes; fields come out in camelCase whatever the client used. The
// model travels in the path (see Path), so upstreamModel does not reach the body; it is taken so
// every protocol's PassthroughBody has one signature.
func PassthroughBody(r *Request, upstreamModel string) ([]byte, error) {
	type plain Request
	b, err := encodeObject(plain(*r), r.Extra)
	if err != nil {
		return nil, fmt.Errorf("encode gemini request: %w", err)
	}
	return b, nil
}

// WithMaxOutputTokens returns a copy of r whose generationConfig.maxOutputTokens is n: the
// gateway always sends the output limit its credit hold assumed. r is not modified (every
// attempt starts from the client's).
func (r *Request) WithMaxOutputTokens(n int64) *Request {
	c := *r
	var g GenerationConfig
	if r.GenerationConfig != nil {
		g = *r.GenerationConfig
	}
	g.MaxOutputTokens = &n
	c.GenerationConfig = &g
	return &c
}

// RewriteResponse passes a Gemini provider's response to a Gemini client: the canonical model
// replaces modelVersion, everything else is kept. It returns the usage and the pivot's finish
// reason (stop, length, tool_calls, content_filter), the form the gateway records for every
// protocol.
func RewriteResponse(body []byte, model string) ([]byte, billing.Usage, string, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, billing.Usage{}, "", fmt.Errorf("decode gemini response: %w", errOrNull(err))
	}
	info, err := inspect(fields)
	if err != nil {
		return nil, billing.Usage{}, "", err
	}
	fields["modelVersion"], _ = json.Marshal(model)
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, billing.Usage{}, "", fmt.Errorf("encode gemini response: %w", err)
	}
	var bu billing.Usage
	if info.usage != nil {
		_, bu = usages(*info.usage)
	}
	return out, bu, info.finish(false), nil
}

// frameInfo is what the gateway reads from a response or stream frame.
type frameInfo struct {
	usage   *UsageMetadata
	reason  string // candidates[0].finishReason, Gemini's
	blocked bool   // promptFeedback.blockReason: the prompt got no answer
	calls   bool   // the frame holds a functionCall part
	content int64  // bytes of the first candidate's text and function calls
}

// finish is the pivot's finish reason; calledTools says whether the answer (all frames of a
// stream) called a function.
func (f frameInfo) finish(calledTools bool) string {
	if f.reason != "" {
		return pivotFinish(f.reason, calledTools || f.calls)
	}
	if f.blocked {
		return openai.FinishContentFilter
	}
	return ""
}

func inspect(fields map[string]json.RawMessage) (frameInfo, error) {
	var r struct {
		Candidates []struct {
			Content *struct {
				Parts []struct {
					Text         string          `json:"text"`
					FunctionCall json.RawMessage `json:"functionCall"`
				} `json:"parts"`
			} `json:"content"`
			FinishReason string `json:"finishReason"`
		} `json:"candidates"`
		PromptFeedback *PromptFeedback `json:"promptFeedback"`
		UsageMetadata  *UsageMetadata  `json:"usageMetadata"`
	}
	// Decoding only the fields read here keeps unknown ones out of the way.
	sub := map[string]json.RawMessage{}
	for _, k := range []string{"candidates", "promptFeedback", "usageMetadata"} {
		if v, ok := fields[k]; ok {
			sub[k] = v
		}
	}
	b, _ := json.Marshal(sub)
	if err := json.Unmarshal(b, &r); err != nil {
		return frameInfo{}, fmt.Errorf("decode gemini response: %w", err)
	}
	info := frameInfo{usage: r.UsageMetadata, blocked: blockFinish(r.PromptFeedback) != ""}
	if len(r.Candidates) > 0 {
		info.reason = r.Candidates[0].FinishReason
		if c := r.Candidates[0].Content; c != nil {
			for _, p := range c.Parts {
				info.calls = info.calls || (len(p.FunctionCall) > 0 && !isNull(p.FunctionCall))
				info.content += int64(len(p.Text))
				if !isNull(p.FunctionCall) {
					info.content += int64(len(p.FunctionCall))
				}
			}
		}
	}
	return info, nil
}

func errOrNull(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("body is null")
}

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
		out = StreamError(out, e)
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

// UsageFinal reports whether the frame with a finish reason passed: its usageMetadata is the
// stream's final count, earlier frames' are running totals.
func (s *StreamRewriter) UsageFinal() bool { return s.done }
