package gemini

import (
	"encoding/json"
	"strings"

	"github.com/tollgate/tollgate/extproc/openai"
	"github.com/tollgate/tollgate/extproc/sse"
)

// StreamEncoder renders a pivot stream for a Gemini client as `data: {GenerateContentResponse}`
// frames, the framing streamGenerateContent?alt=sse uses and @google/genai parses (one JSON
// object per frame, no [DONE]).
//
// Text and reasoning deltas go out at once as text and thought parts. Tool calls do not: the
// pivot streams their arguments in fragments while Gemini always sends a whole functionCall, so
// fragments are accumulated and the complete calls go out in the final frame, with the finish
// reason and usageMetadata. Not safe for concurrent use.
type StreamEncoder struct {
	model    string
	thoughts bool
	id       string
	calls    []*pendingCall
	byIdx    map[int]*pendingCall
	finish   string
	usage    *openai.Usage
}

type pendingCall struct {
	id, name string
	args     strings.Builder
}

// NewStreamEncoder returns an encoder naming model in every frame's modelVersion; thoughts is
// whether the client asked for thought parts (ShowThoughts), else reasoning deltas are left out.
func NewStreamEncoder(model string, thoughts bool) *StreamEncoder {
	return &StreamEncoder{model: model, thoughts: thoughts, byIdx: map[int]*pendingCall{}}
}

// Encode appends the frames for chunks to dst.
func (e *StreamEncoder) Encode(dst []byte, chunks []openai.ChatCompletionChunk) []byte {
	for i := range chunks {
		ch := &chunks[i]
		if e.id == "" {
			e.id = ch.ID
		}
		if ch.Usage != nil {
			u := *ch.Usage
			e.usage = &u
		}
		for j := range ch.Choices {
			c := &ch.Choices[j]
			if c.Index != 0 {
				continue // the gateway serves one candidate
			}
			d := &c.Delta
			if d.ReasoningContent != "" && e.thoughts {
				dst = e.frame(dst, []Part{{Text: ptr(d.ReasoningContent), Thought: true}}, "", nil)
			}
			text := ""
			if d.Content != nil {
				text = *d.Content
			}
			if d.Refusal != nil {
				text += *d.Refusal
			}
			if text != "" {
				dst = e.frame(dst, []Part{{Text: ptr(text)}}, "", nil)
			}
			for _, tc := range d.ToolCalls {
				e.addFragment(tc)
			}
			if c.FinishReason != nil && *c.FinishReason != "" {
				e.finish = *c.FinishReason
			}
		}
	}
	return dst
}

func (e *StreamEncoder) addFragment(tc openai.ToolCall) {
	var call *pendingCall
	switch {
	case tc.Index != nil:
		call = e.byIdx[*tc.Index]
		if call == nil {
			call = &pendingCall{}
			e.byIdx[*tc.Index] = call
			e.calls = append(e.calls, call)
		}
	case tc.ID != "" || len(e.calls) == 0:
		// No index: a fragment with an id starts a call, one without continues the last.
		call = &pendingCall{}
		e.calls = append(e.calls, call)
	default:
		call = e.calls[len(e.calls)-1]
	}
	if tc.ID != "" {
		call.id = tc.ID
	}
	if tc.Function.Name != "" {
		call.name = tc.Function.Name
	}
	call.args.WriteString(tc.Function.Arguments)
}

// Finish appends the final frame: the accumulated function calls, the finish reason (omitted if
// the pivot stream never gave one) and usageMetadata from u, else from the stream's own usage
// chunk.
func (e *StreamEncoder) Finish(dst []byte, u *openai.Usage) []byte {
	if u == nil {
		u = e.usage
	}
	var parts []Part
	for i, c := range e.calls {
		id := c.id
		if id == "" {
			id = callID("", "", i)
		}
		parts = append(parts, functionCallPart(id, c.name, c.args.String()))
	}
	if len(parts) == 0 {
		parts = []Part{{Text: ptr("")}} // Gemini's own last frame carries an empty text part
	}
	e.calls, e.byIdx = nil, map[int]*pendingCall{}
	return e.frame(dst, parts, geminiFinish(e.finish), u)
}

func (e *StreamEncoder) frame(dst []byte, parts []Part, finish string, u *openai.Usage) []byte {
	resp := GenerateContentResponse{
		Candidates:   []Candidate{{Content: &Content{Role: RoleModel, Parts: parts}, FinishReason: finish}},
		ModelVersion: e.model,
		ResponseID:   e.id,
	}
	if u != nil {
		resp.UsageMetadata = usageMetadata(*u)
	}
	b, _ := json.Marshal(resp)
	return sse.AppendData(dst, b)
}
