package anthropic_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
	"github.com/tollgate/tollgate/extproc/sse"
)

// decoded is everything a StreamDecoder reports for one stream.
type decoded struct {
	Chunks  []openai.ChatCompletionChunk `json:"chunks"`
	Error   *apierror.Error              `json:"error,omitempty"`
	Usage   openai.Usage                 `json:"usage"`
	Billing billing.Usage                `json:"billing"`
	Finish  string                       `json:"finish"`
	Done    bool                         `json:"done"`
	// ContentBytes stays out of the goldens, which predate it; cuts are compared with it.
	ContentBytes int64 `json:"-"`
}

// pieces cuts b at the given offsets, the way Envoy hands over body chunks.
func pieces(b []byte, cuts []int) [][]byte {
	var out [][]byte
	prev := 0
	for _, c := range cuts {
		out = append(out, b[prev:c])
		prev = c
	}
	return append(out, b[prev:])
}

func decodeStream(t *testing.T, upstream []byte, cuts []int) decoded {
	t.Helper()
	d := anthropic.NewStreamDecoder("claude-canonical")
	var res decoded
	feed := func(p []byte, eos bool) bool {
		chunks, err := d.Feed(p, eos)
		for _, c := range chunks {
			c.Created = 0 // the decoder's start time
			res.Chunks = append(res.Chunks, c)
		}
		if err != nil {
			if !errors.As(err, &res.Error) {
				t.Fatalf("Feed: %v", err)
			}
			return false
		}
		return true
	}
	ok := true
	for _, p := range pieces(upstream, cuts) {
		if ok = feed(p, false); !ok {
			break
		}
	}
	if ok {
		feed(nil, true) // Envoy's final, often empty, end_of_stream chunk
	}
	res.Usage, res.Billing, _ = d.Usage()
	res.Finish, res.Done = d.FinishReason(), d.Done()
	res.ContentBytes = d.ContentBytes()
	return res
}

func rewriteStream(t *testing.T, upstream []byte, cuts []int) ([]byte, *anthropic.StreamRewriter) {
	t.Helper()
	r := anthropic.NewStreamRewriter("claude-canonical")
	var out []byte
	for _, p := range pieces(upstream, cuts) {
		b, err := r.Feed(p, false)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	b, err := r.Feed(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	return append(out, b...), r
}

func encodeStream(chunks []openai.ChatCompletionChunk, parts []int, streamErr *apierror.Error) []byte {
	e := anthropic.NewStreamEncoder("claude-canonical")
	var out []byte
	prev := 0
	for _, p := range append(parts, len(chunks)) {
		out = e.Encode(out, chunks[prev:p])
		prev = p
	}
	if streamErr != nil {
		return anthropic.StreamError(out, streamErr)
	}
	return e.Finish(out, nil)
}

// splits yields every single cut point of b and, from a fixed seed, random multi-cut splits.
func splits(n int) [][]int {
	var out [][]int
	for i := 0; i <= n; i++ {
		out = append(out, []int{i})
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for range 50 {
		var cuts []int
		for c := 0; ; {
			c += 1 + rng.IntN(32)
			if c >= n {
				break
			}
			cuts = append(cuts, c)
		}
		out = append(out, cuts)
	}
	return out
}

func upstreamFixtures(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("testdata/stream/*.upstream.sse")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no stream fixtures: %v", err)
	}
	return paths
}

func TestStreamDecoderGolden(t *testing.T) {
	for _, in := range upstreamFixtures(t) {
		base := strings.TrimSuffix(in, ".upstream.sse")
		t.Run(filepath.Base(base), func(t *testing.T) {
			upstream, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want := decodeStream(t, upstream, nil)
			goldenFile(t, base+".decoded.json", indentJSON(t, mustJSON(t, want)))
			for _, cuts := range splits(len(upstream)) {
				if got := decodeStream(t, upstream, cuts); !reflect.DeepEqual(got, want) {
					t.Fatalf("cut at %v: got %s", cuts, mustJSON(t, got))
				}
			}
		})
	}
}

func TestStreamRewriterGolden(t *testing.T) {
	for _, in := range upstreamFixtures(t) {
		base := strings.TrimSuffix(in, ".upstream.sse")
		t.Run(filepath.Base(base), func(t *testing.T) {
			upstream, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, r := rewriteStream(t, upstream, nil)
			goldenFile(t, base+".rewritten.sse", want)
			// The rewriter reads the same usage as the decoder.
			dec := decodeStream(t, upstream, nil)
			u, bu, _ := r.Usage()
			if !reflect.DeepEqual(u, dec.Usage) || bu != dec.Billing || r.Done() != dec.Done {
				t.Errorf("rewriter usage %+v %+v done %v; decoder %+v %+v done %v", u, bu, r.Done(), dec.Usage, dec.Billing, dec.Done)
			}
			if dec.Done && anthropicFinish(r.FinishReason()) != dec.Finish {
				t.Errorf("stop reason %q vs finish %q", r.FinishReason(), dec.Finish)
			}
			if r.ContentBytes() != dec.ContentBytes {
				t.Errorf("rewriter content bytes %d, decoder %d", r.ContentBytes(), dec.ContentBytes)
			}
			for _, cuts := range splits(len(upstream)) {
				if got, _ := rewriteStream(t, upstream, cuts); !bytes.Equal(got, want) {
					t.Fatalf("cut at %v:\n%s", cuts, got)
				}
			}
			// Every rewritten event names the canonical model, if it names one.
			if bytes.Contains(want, []byte("claude-sonnet-4-5-20250929")) {
				t.Errorf("provider model leaked:\n%s", want)
			}
		})
	}
}

func anthropicFinish(stop string) string {
	switch stop {
	case "max_tokens":
		return "length"
	case "tool_use":
		return "tool_calls"
	}
	return "stop"
}

// TestStreamEncoderGolden renders the decoded fixtures back as Anthropic streams: the pivot
// round trip. Chunks handed over in any grouping give the same bytes, and the result decodes
// (cut anywhere) to the same content.
func TestStreamEncoderGolden(t *testing.T) {
	for _, in := range upstreamFixtures(t) {
		base := strings.TrimSuffix(in, ".upstream.sse")
		t.Run(filepath.Base(base), func(t *testing.T) {
			upstream, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			dec := decodeStream(t, upstream, nil)
			checkEncoder(t, base+".encoded.sse", dec.Chunks, dec.Error)
		})
	}
	paths, _ := filepath.Glob("testdata/encode/*.chunks.jsonl")
	if len(paths) == 0 {
		t.Fatal("no encoder fixtures")
	}
	for _, in := range paths {
		base := strings.TrimSuffix(in, ".chunks.jsonl")
		t.Run(filepath.Base(base), func(t *testing.T) {
			checkEncoder(t, base+".encoded.sse", readChunks(t, in), nil)
		})
	}
}

func checkEncoder(t *testing.T, golden string, chunks []openai.ChatCompletionChunk, streamErr *apierror.Error) {
	t.Helper()
	want := encodeStream(chunks, nil, streamErr)
	goldenFile(t, golden, want)
	for k := 0; k <= len(chunks); k++ {
		if got := encodeStream(chunks, []int{k}, streamErr); !bytes.Equal(got, want) {
			t.Fatalf("chunks split at %d:\n%s", k, got)
		}
	}
	one := make([]int, 0, len(chunks))
	for k := 1; k < len(chunks); k++ {
		one = append(one, k)
	}
	if got := encodeStream(chunks, one, streamErr); !bytes.Equal(got, want) {
		t.Fatalf("one chunk per call:\n%s", got)
	}
	checkGrammar(t, want)
	if streamErr != nil {
		return
	}
	wantMsg := accumulate(chunks)
	for _, cuts := range splits(len(want)) {
		got := decodeStream(t, want, cuts)
		if got.Error != nil {
			t.Fatalf("re-decoding at %v: %v", cuts, got.Error)
		}
		if msg := accumulate(got.Chunks); !reflect.DeepEqual(msg, wantMsg) {
			t.Fatalf("re-decoded at %v:\n%+v\nwant\n%+v", cuts, msg, wantMsg)
		}
	}
}

// checkGrammar checks the event order @anthropic-ai/sdk's MessageStream relies on: message_start
// first; each block started, then only deltas for it, then stopped, at consecutive indexes;
// message_delta, then message_stop last (or an error event).
func checkGrammar(t *testing.T, stream []byte) {
	t.Helper()
	var d sse.Decoder
	events, err := d.Feed(nil, stream)
	if err != nil || d.Pending() {
		t.Fatalf("encoded stream does not decode: %v", err)
	}
	open, next := -1, 0
	for i, ev := range events {
		var e struct {
			Type  string `json:"type"`
			Index int    `json:"index"`
		}
		if err := json.Unmarshal(ev.Data, &e); err != nil || e.Type != ev.Name {
			t.Fatalf("event %d: name %q, data %s", i, ev.Name, ev.Data)
		}
		switch {
		case i == 0 && e.Type != "message_start":
			t.Fatalf("first event is %s", e.Type)
		case e.Type == "content_block_start":
			if open != -1 || e.Index != next {
				t.Fatalf("event %d: block %d starts while %d is open (next %d)", i, e.Index, open, next)
			}
			open = e.Index
		case e.Type == "content_block_delta" && e.Index != open:
			t.Fatalf("event %d: delta for block %d, open %d", i, e.Index, open)
		case e.Type == "content_block_stop":
			if e.Index != open {
				t.Fatalf("event %d: stop for block %d, open %d", i, e.Index, open)
			}
			open, next = -1, next+1
		case e.Type == "message_delta" && open != -1:
			t.Fatalf("event %d: message_delta with block %d open", i, open)
		}
	}
	last := events[len(events)-1].Name
	if last != "message_stop" && last != "error" {
		t.Fatalf("last event is %s", last)
	}
}

// message is the content a stream of pivot chunks adds up to.
type message struct {
	Content, Reasoning string
	Calls              map[int]openai.FunctionCall
	IDs                map[int]string
	Finish             string
	Usage              *openai.Usage
}

func accumulate(chunks []openai.ChatCompletionChunk) message {
	m := message{Calls: map[int]openai.FunctionCall{}, IDs: map[int]string{}}
	for _, c := range chunks {
		if c.Usage != nil {
			u := *c.Usage
			if u.PromptTokensDetails == nil {
				u.PromptTokensDetails = &openai.PromptTokensDetails{}
			}
			m.Usage = &u
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				m.Content += *ch.Delta.Content
			}
			if ch.Delta.Refusal != nil {
				m.Content += *ch.Delta.Refusal
			}
			m.Reasoning += ch.Delta.ReasoningContent
			for _, tc := range ch.Delta.ToolCalls {
				i := *tc.Index
				f := m.Calls[i]
				f.Name += tc.Function.Name
				f.Arguments += tc.Function.Arguments
				m.Calls[i] = f
				m.IDs[i] += tc.ID
			}
			if ch.FinishReason != nil {
				m.Finish = *ch.FinishReason
			}
		}
	}
	if m.Finish == "" || m.Finish == "content_filter" {
		m.Finish = "stop" // what an Anthropic stream without a reason, or a refusal, turns into
	}
	if m.Usage != nil {
		m.Usage.TotalTokens = m.Usage.PromptTokens + m.Usage.CompletionTokens
	}
	return m
}

func readChunks(t *testing.T, path string) []openai.ChatCompletionChunk {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []openai.ChatCompletionChunk
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var c openai.ChatCompletionChunk
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func TestStreamDecoderStructuredOutput(t *testing.T) {
	stream := `event: message_start
data: {"type":"message_start","message":{"id":"msg_s","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":400,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_s","name":"tollgate_structured_output","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"name\": \"Al"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"ice\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":20}}

event: message_stop
data: {"type":"message_stop"}

`
	got := accumulate(decodeStream(t, []byte(stream), nil).Chunks)
	if got.Content != `{"name": "Alice"}` || len(got.Calls) != 0 || got.Finish != "stop" {
		t.Errorf("got %+v", got)
	}
}

// TestStreamContentBytes checks the content count a cut stream's charge is estimated from, on
// both sides: text, thinking and tool input in bytes (not characters), and nothing else.
func TestStreamContentBytes(t *testing.T) {
	const stream = `event: message_start
data: {"type":"message_start","message":{"id":"msg_c","type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"h\u00e9h"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"c2lnbmF0dXJl"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_c","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":30}}

event: message_stop
data: {"type":"message_stop"}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"after the end"}}

`
	const want = 4 + 5 + 7 // "héh" is four bytes; the signature and what follows message_stop count nothing
	for _, cuts := range [][]int{nil, {1}, {len(stream) / 2}, {len(stream) - 1}} {
		if got := decodeStream(t, []byte(stream), cuts).ContentBytes; got != want {
			t.Errorf("decoder, cut at %v: ContentBytes = %d, want %d", cuts, got, want)
		}
		if _, r := rewriteStream(t, []byte(stream), cuts); r.ContentBytes() != want {
			t.Errorf("rewriter, cut at %v: ContentBytes = %d, want %d", cuts, r.ContentBytes(), want)
		}
	}
}

func TestStreamDecoderErrors(t *testing.T) {
	tests := []struct {
		name       string
		stream     string
		wantStatus int
		wantCode   string
	}{
		{"overloaded", "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n", 503, apierror.CodeServiceUnavailable},
		{"rate limit", "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n", 429, apierror.CodeRateLimit},
		{"api error", "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}\n\n", 502, apierror.CodeProviderError},
		{"invalid request mid-stream", "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}\n\n", 502, apierror.CodeProviderError},
		{"ended early", "event: ping\ndata: {\"type\":\"ping\"}\n\n", 502, apierror.CodeProviderError},
		{"ended inside an event", "event: message_start\ndata: {\"type\":", 502, apierror.CodeProviderError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeStream(t, []byte(tt.stream), nil)
			if got.Error == nil || got.Error.Status != tt.wantStatus || got.Error.Code != tt.wantCode {
				t.Errorf("error = %v, want %d %s", got.Error, tt.wantStatus, tt.wantCode)
			}
		})
	}
	// A malformed event is the provider's fault but not an API error: the caller decides.
	d := anthropic.NewStreamDecoder("m")
	if _, err := d.Feed([]byte("event: message_start\ndata: {not json}\n\n"), false); err == nil {
		t.Error("malformed event: no error")
	} else if errors.As(err, new(*apierror.Error)) {
		t.Errorf("malformed event: %v is an API error", err)
	}
	// Unknown event types are skipped, as the reference asks.
	d = anthropic.NewStreamDecoder("m")
	if chunks, err := d.Feed([]byte("event: future_event\ndata: {\"type\":\"future_event\",\"x\":1}\n\n"), false); err != nil || len(chunks) != 0 {
		t.Errorf("unknown event: %v %v", chunks, err)
	}
}

func TestStreamDecoderSizeLimit(t *testing.T) {
	d := anthropic.NewStreamDecoder("m")
	big := append([]byte("event: content_block_delta\ndata: "), bytes.Repeat([]byte("a"), sse.DefaultMaxEventBytes+1)...)
	if _, err := d.Feed(big, false); !errors.Is(err, sse.ErrTooLarge) {
		t.Errorf("err = %v, want sse.ErrTooLarge", err)
	}
}

func TestStreamEncoderEmpty(t *testing.T) {
	e := anthropic.NewStreamEncoder("claude-x")
	out := e.Finish(nil, &openai.Usage{PromptTokens: 5, CompletionTokens: 0})
	checkGrammar(t, out)
	if again := e.Finish(nil, nil); len(again) != 0 {
		t.Errorf("second Finish wrote %s", again)
	}
	if !bytes.Contains(out, []byte(`"usage":{"input_tokens":5,`)) || !bytes.Contains(out, []byte(`"model":"claude-x"`)) {
		t.Errorf("got %s", out)
	}
}

// endVariants takes a stream whose last event ends in its blank line and returns it without that
// blank line, without the last line ending, and with the last line cut inside its JSON, plus the
// stream without its last event, which the cut one must behave like (package sse, End).
func endVariants(t *testing.T, in []byte) (noBlank, noEOL, cut, withoutLast []byte) {
	t.Helper()
	s := string(in)
	if !strings.HasSuffix(s, "\n\n") {
		t.Fatalf("fixture does not end in a blank line")
	}
	eol := strings.TrimRight(s, "\r\n")
	return []byte(s[:len(s)-1]), []byte(eol), []byte(eol[:len(eol)-3]),
		[]byte(s[:strings.LastIndex(eol, "\n\n")+2])
}

// TestEndOfStreamRule checks the one end-of-stream rule on Anthropic streams: a last event
// without its blank line, or even its line ending, is still an event; one cut inside its data
// line is discarded and the stream is treated as cut, at every split point.
func TestEndOfStreamRule(t *testing.T) {
	for _, name := range []string{"basic", "thinking", "tool_use"} {
		t.Run(name, func(t *testing.T) {
			upstream, err := os.ReadFile("testdata/stream/" + name + ".upstream.sse")
			if err != nil {
				t.Fatal(err)
			}
			noBlank, noEOL, cut, withoutLast := endVariants(t, upstream)
			wantDec := decodeStream(t, upstream, nil)
			wantOut, _ := rewriteStream(t, upstream, nil)
			cutDec := decodeStream(t, withoutLast, nil)
			cutOut, _ := rewriteStream(t, withoutLast, nil)
			if !wantDec.Done || cutDec.Done || cutDec.Error == nil {
				t.Fatalf("fixture: whole done %v, cut done %v error %v", wantDec.Done, cutDec.Done, cutDec.Error)
			}
			for _, tc := range []struct {
				name    string
				in      []byte
				dec     decoded
				rewrite []byte
			}{
				{"no final blank line", noBlank, wantDec, wantOut},
				{"no final line ending", noEOL, wantDec, wantOut},
				{"last line cut", cut, cutDec, cutOut},
			} {
				for i := 0; i <= len(tc.in); i++ {
					if got := decodeStream(t, tc.in, []int{i}); !reflect.DeepEqual(got, tc.dec) {
						t.Fatalf("%s: decoder split at %d: got %s", tc.name, i, mustJSON(t, got))
					}
					if got, _ := rewriteStream(t, tc.in, []int{i}); !bytes.Equal(got, tc.rewrite) {
						t.Fatalf("%s: rewriter split at %d:\n%s", tc.name, i, got)
					}
				}
			}
		})
	}
}
