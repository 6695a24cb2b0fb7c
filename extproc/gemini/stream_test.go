package gemini

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
)

// decodeResult is everything a StreamDecoder reports for one stream, as compared across splits.
type decodeResult struct {
	Chunks []openai.ChatCompletionChunk
	Usage  *openai.Usage `json:",omitempty"`
	Finish string
	Done   bool
	Err    string `json:",omitempty"`
}

// cutsAll lists the single cut points and seeded random multi-cut splits of an n-byte input.
func cutsAll(n int) [][]int {
	all := [][]int{nil}
	for i := 0; i <= n; i++ {
		all = append(all, []int{i})
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for range 50 {
		var cuts []int
		for c := 0; ; {
			c += 1 + rng.IntN(24)
			if c >= n {
				break
			}
			cuts = append(cuts, c)
		}
		all = append(all, cuts)
	}
	return all
}

func pieces(in []byte, cuts []int) [][]byte {
	var out [][]byte
	prev := 0
	for _, c := range append(cuts, len(in)) {
		out = append(out, in[prev:c])
		prev = c
	}
	return out
}

func decodeSplit(in []byte, cuts []int) decodeResult {
	d := NewStreamDecoder("canonical-model")
	d.created = 0
	var res decodeResult
	feed := append(pieces(in, cuts), nil) // Envoy's final, often empty, end_of_stream chunk
	for i, p := range feed {
		chunks, err := d.Feed(p, i == len(feed)-1)
		res.Chunks = append(res.Chunks, chunks...)
		if err != nil {
			res.Err = err.Error()
			break
		}
	}
	if u, _, ok := d.Usage(); ok {
		res.Usage = &u
	}
	res.Finish, res.Done = d.FinishReason(), d.Done()
	return res
}

func rewriteSplit(in []byte, cuts []int) (string, error) {
	r := NewStreamRewriter("canonical-model")
	var out []byte
	feed := append(pieces(in, cuts), nil)
	for i, p := range feed {
		b, err := r.Feed(p, i == len(feed)-1)
		out = append(out, b...)
		if err != nil {
			return "", err
		}
	}
	_, bu, _ := r.Usage()
	return fmt.Sprintf("%s-- state: finish=%q done=%v billing=%+v\n", out, r.FinishReason(), r.Done(), bu), nil
}

// TestStreamGolden feeds every captured stream to the decoder and the rewriter cut at every
// byte, at random multi-cut splits, and with CRLF line endings (Google's own framing): every way
// must give the golden result. The decoded chunks are then re-encoded for a Gemini client, fed
// to the encoder split at every chunk boundary.
func TestStreamGolden(t *testing.T) {
	for _, path := range fixtures(t, "stream") {
		t.Run(fixtureName(path), func(t *testing.T) {
			a := readArchive(t, path)
			in := a.sections["upstream.sse"]
			crlf := []byte(strings.ReplaceAll(string(in), "\n", "\r\n"))

			want := decodeSplit(in, nil)
			golden(t, path, a, "decoded.json", mustJSON(t, want))
			wantJSON := string(mustJSON(t, want))
			for _, input := range [][]byte{in, crlf} {
				for _, cuts := range cutsAll(len(input)) {
					if got := string(mustJSON(t, decodeSplit(input, cuts))); got != wantJSON {
						t.Fatalf("decoder split %v differs:\n%s", cuts, got)
					}
				}
			}

			wantRewrite, err := rewriteSplit(in, nil)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, path, a, "rewritten.sse", []byte(wantRewrite))
			for _, input := range [][]byte{in, crlf} {
				for _, cuts := range cutsAll(len(input)) {
					if got, err := rewriteSplit(input, cuts); err != nil || got != wantRewrite {
						t.Fatalf("rewriter split %v differs (%v):\n%s", cuts, err, got)
					}
				}
			}

			if want.Err != "" {
				return // nothing to re-encode: the client gets an error frame instead
			}
			encode := func(split int) []byte {
				e := NewStreamEncoder("canonical-model", true)
				out := e.Encode(nil, want.Chunks[:split])
				out = e.Encode(out, want.Chunks[split:])
				return e.Finish(out, want.Usage)
			}
			enc := encode(0)
			golden(t, path, a, "encoded.sse", enc)
			for i := range want.Chunks {
				if got := encode(i); !bytes.Equal(got, enc) {
					t.Fatalf("encoder split at chunk %d differs:\n%s", i, got)
				}
			}
			assertGenAIParses(t, enc)
		})
	}
}

// assertGenAIParses checks frames the way @google/genai reads them: "data: " then one JSON
// object per line, events ended by a blank line, no [DONE].
func assertGenAIParses(t *testing.T, stream []byte) {
	t.Helper()
	events := strings.Split(strings.TrimSuffix(string(stream), "\n\n"), "\n\n")
	for _, ev := range events {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("frame %q is not one data line", ev)
		}
		var r GenerateContentResponse
		if err := json.Unmarshal([]byte(data), &r); err != nil || len(r.Candidates) != 1 {
			t.Fatalf("frame %q: %v", data, err)
		}
	}
}

// TestStreamEncoderToolFragments streams a tool call in OpenAI-style fragments: the client must
// get it whole, once, in the final frame.
func TestStreamEncoderToolFragments(t *testing.T) {
	idx0, idx1 := 0, 1
	chunk := func(tc ...openai.ToolCall) openai.ChatCompletionChunk {
		return openai.ChatCompletionChunk{ID: "c1", Choices: []openai.ChunkChoice{{Delta: openai.Delta{ToolCalls: tc}}}}
	}
	stop := openai.FinishToolCalls
	chunks := []openai.ChatCompletionChunk{
		chunk(openai.ToolCall{Index: &idx0, ID: "call_a", Type: "function", Function: openai.FunctionCall{Name: "get_weather"}}),
		chunk(openai.ToolCall{Index: &idx0, Function: openai.FunctionCall{Arguments: `{"loc`}}),
		chunk(openai.ToolCall{Index: &idx1, ID: "call_b", Function: openai.FunctionCall{Name: "get_time", Arguments: `{}`}}),
		chunk(openai.ToolCall{Index: &idx0, Function: openai.FunctionCall{Arguments: `ation":"Paris"}`}}),
		{ID: "c1", Choices: []openai.ChunkChoice{{FinishReason: &stop}}},
		{ID: "c1", Choices: []openai.ChunkChoice{}, Usage: &openai.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}},
	}
	e := NewStreamEncoder("m", true)
	out := e.Encode(nil, chunks)
	if len(out) != 0 {
		t.Fatalf("fragments leaked before the end: %s", out)
	}
	out = e.Finish(out, nil)
	want := `data: {"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"id":"call_a","name":"get_weather","args":{"location":"Paris"}}},{"functionCall":{"id":"call_b","name":"get_time","args":{}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4,"totalTokenCount":7},"modelVersion":"m","responseId":"c1"}` + "\n\n"
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func TestStreamDecoderErrors(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		status int
		code   string
	}{
		{"error frame", "data: {\"error\":{\"code\":429,\"message\":\"quota\",\"status\":\"RESOURCE_EXHAUSTED\"}}\n\n", 429, apierror.CodeRateLimit},
		{"error frame without code", "data: {\"error\":{\"message\":\"boom\"}}\n\n", 502, apierror.CodeProviderError},
		{"cut short", "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\n", 502, apierror.CodeProviderError},
		{"empty stream", "", 502, apierror.CodeProviderError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewStreamDecoder("m")
			_, err := d.Feed([]byte(tt.stream), true)
			e, ok := err.(*apierror.Error)
			if !ok || e.Status != tt.status || e.Code != tt.code {
				t.Fatalf("err = %v, want %d %s", err, tt.status, tt.code)
			}
		})
	}
	// Garbage is an error but not a client-visible one.
	if _, err := NewStreamDecoder("m").Feed([]byte("data: {nope\n\n"), false); err == nil {
		t.Error("malformed frame: no error")
	}
}

// FuzzStreamDecoder: any input, cut anywhere, must not panic and must decode the same however
// it is cut.
func FuzzStreamDecoder(f *testing.F) {
	f.Add([]byte("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]},\"finishReason\":\"STOP\"}]}\n\n"), uint16(5))
	f.Add([]byte("data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}}}]}}]}\r\n\r\n"), uint16(17))
	f.Add([]byte("data: {\"error\":{\"code\":500}}\n\n"), uint16(0))
	f.Add([]byte(":comment\ndata: {}\n\n"), uint16(3))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		c := int(cut) % (len(in) + 1)
		whole := decodeSplit(in, nil)
		split := decodeSplit(in, []int{c})
		if whole.Err == "" && split.Err == "" && string(mustJSON(t, whole)) != string(mustJSON(t, split)) {
			t.Fatalf("split at %d differs", c)
		}
	})
}

// FuzzParseRequest: any body must not panic; an accepted body must convert and rebuild stably.
func FuzzParseRequest(f *testing.F) {
	for _, path := range []string{"client/function_calling", "client/parallel_calls_ids", "client/system_instruction_snake", "client/json_schema"} {
		a := readArchive(f, "testdata/"+path+".txtar")
		f.Add(a.sections["request.json"])
	}
	f.Add([]byte(`{"contents":[{"parts":[{"text":"x"}]}],"generation_config":{"temperature":null}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body, "m", true)
		if err != nil {
			if _, ok := err.(*apierror.Error); !ok {
				t.Fatalf("error %T is not *apierror.Error", err)
			}
			return
		}
		up, err := PassthroughBody(r, "m")
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseRequest(up, "m", true)
		if err != nil {
			t.Fatalf("rebuilt body refused: %v\n%s", err, up)
		}
		if up2, _ := PassthroughBody(r2, "m"); !bytes.Equal(up, up2) {
			t.Fatalf("rebuild not stable:\n%s\n%s", up, up2)
		}
		if _, err := r.ToPivot(); err != nil {
			if _, ok := err.(*apierror.Error); !ok {
				t.Fatalf("ToPivot error %T is not *apierror.Error", err)
			}
		}
	})
}

// TestEndOfStreamRule checks the one end-of-stream rule (package sse, End) on Gemini streams:
// the last frame without its blank line, or without its line ending (LF or CRLF framing), is
// still a frame; one cut inside its JSON is discarded, and the stream is then cut short.
func TestEndOfStreamRule(t *testing.T) {
	for _, name := range []string{"text", "function_call"} {
		t.Run(name, func(t *testing.T) {
			in := readArchive(t, "testdata/stream/"+name+".txtar").sections["upstream.sse"]
			for _, nl := range []string{"\n", "\r\n"} {
				s := strings.ReplaceAll(string(in), "\n", nl)
				eol := strings.TrimRight(s, "\r\n")
				withoutLast := s[:strings.LastIndex(eol, nl+nl)+2*len(nl)]
				wantDec := string(mustJSON(t, decodeSplit([]byte(s), nil)))
				wantOut, err := rewriteSplit([]byte(s), nil)
				if err != nil {
					t.Fatal(err)
				}
				cut := decodeSplit([]byte(withoutLast), nil)
				cutOut, err := rewriteSplit([]byte(withoutLast), nil)
				if err != nil || cut.Done || cut.Err == "" {
					t.Fatalf("fixture: cut stream done %v err %q (%v)", cut.Done, cut.Err, err)
				}
				cutDec := string(mustJSON(t, cut))
				for _, tc := range []struct {
					name     string
					in       string
					dec, out string
				}{
					{"no final blank line", s[:len(s)-len(nl)], wantDec, wantOut},
					{"no final line ending", eol, wantDec, wantOut},
					{"last line cut", eol[:len(eol)-3], cutDec, cutOut},
				} {
					b := []byte(tc.in)
					for i := 0; i <= len(b); i++ {
						if got := string(mustJSON(t, decodeSplit(b, []int{i}))); got != tc.dec {
							t.Fatalf("%s %q: decoder split at %d:\n%s", tc.name, nl, i, got)
						}
						if got, err := rewriteSplit(b, []int{i}); err != nil || got != tc.out {
							t.Fatalf("%s %q: rewriter split at %d (%v):\n%s", tc.name, nl, i, err, got)
						}
					}
				}
			}
		})
	}
}

// streamState is what the gateway reads from every protocol's stream decoders and rewriters.
type streamState interface {
	Usage() (openai.Usage, billing.Usage, bool)
	UsageFinal() bool
	FinishReason() string
	ContentBytes() int64
	Done() bool
}

var (
	_ streamState = (*StreamDecoder)(nil)
	_ streamState = (*StreamRewriter)(nil)
)

// TestStreamContentBytes checks that the decoder counts the content it hands out (text,
// thoughts, function names and arguments) and that both stream types report the usage final
// exactly when the frame with a finish reason passed.
func TestStreamContentBytes(t *testing.T) {
	for _, path := range fixtures(t, "stream") {
		t.Run(fixtureName(path), func(t *testing.T) {
			in := readArchive(t, path).sections["upstream.sse"]
			d := NewStreamDecoder("m")
			r := NewStreamRewriter("m")
			var want int64
			var calls bool
			for i, p := range [][]byte{in, nil} {
				chunks, _ := d.Feed(p, i == 1)
				if _, err := r.Feed(p, i == 1); err != nil {
					t.Fatal(err)
				}
				for _, c := range chunks {
					delta := c.Choices[0].Delta
					want += int64(len(delta.ReasoningContent))
					if delta.Content != nil {
						want += int64(len(*delta.Content))
					}
					for _, tc := range delta.ToolCalls {
						calls = true
						want += int64(len(tc.Function.Name) + len(tc.Function.Arguments))
					}
				}
			}
			if got := d.ContentBytes(); got != want {
				t.Errorf("decoder ContentBytes = %d, want %d", got, want)
			}
			// Without function calls (whose JSON framing the rewriter also counts) both count
			// the same text.
			if !calls && r.ContentBytes() != d.ContentBytes() {
				t.Errorf("rewriter ContentBytes = %d, decoder %d", r.ContentBytes(), d.ContentBytes())
			}
			if d.UsageFinal() != d.Done() || r.UsageFinal() != r.Done() {
				t.Errorf("UsageFinal: decoder %v (done %v), rewriter %v (done %v)", d.UsageFinal(), d.Done(), r.UsageFinal(), r.Done())
			}
		})
	}
}
