package openai

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/billing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// feedSplit feeds upstream to a fresh rewriter cut at the given points, the way Envoy hands over
// body chunks, and returns the concatenated client stream.
func feedSplit(t *testing.T, upstream []byte, includeUsage bool, cuts []int) ([]byte, *StreamRewriter) {
	t.Helper()
	r := NewStreamRewriter("gpt-5.4", includeUsage)
	var out []byte
	prev := 0
	for _, c := range append(cuts, len(upstream)) {
		b, err := r.Feed(upstream[prev:c], false)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
		prev = c
	}
	b, err := r.Feed(nil, true) // Envoy's final, empty end_of_stream chunk
	if err != nil {
		t.Fatal(err)
	}
	return append(out, b...), r
}

func TestStreamRewriterGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/stream/*.upstream.sse")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, in := range inputs {
		for _, includeUsage := range []bool{true, false} {
			name := strings.TrimSuffix(filepath.Base(in), ".upstream.sse")
			suffix := ".no_usage.sse"
			if includeUsage {
				suffix = ".usage.sse"
			}
			t.Run(name+suffix, func(t *testing.T) {
				upstream, err := os.ReadFile(in)
				if err != nil {
					t.Fatal(err)
				}
				got, r := feedSplit(t, upstream, includeUsage, nil)
				golden := strings.TrimSuffix(in, ".upstream.sse") + suffix
				if *update {
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("client stream differs from %s:\n%s", golden, got)
				}
				// Every cut point, and random multi-cut splits, must give the same bytes.
				for i := 0; i <= len(upstream); i++ {
					if split, _ := feedSplit(t, upstream, includeUsage, []int{i}); !bytes.Equal(split, want) {
						t.Fatalf("split at %d differs:\n%s", i, split)
					}
				}
				rng := rand.New(rand.NewPCG(1, 2))
				for range 50 {
					var cuts []int
					for c := 0; ; {
						c += 1 + rng.IntN(40)
						if c >= len(upstream) {
							break
						}
						cuts = append(cuts, c)
					}
					if split, _ := feedSplit(t, upstream, includeUsage, cuts); !bytes.Equal(split, want) {
						t.Fatalf("split at %v differs", cuts)
					}
				}
				if u, _, ok := r.Usage(); !ok || !r.UsageFinal() || u.TotalTokens != 15 || r.FinishReason() != "stop" || !r.Done() {
					t.Errorf("usage %+v (%v, final %v), finish %q, done %v", u, ok, r.UsageFinal(), r.FinishReason(), r.Done())
				}
			})
		}
	}
}

func TestStreamRewriterErrors(t *testing.T) {
	tests := []struct {
		name     string
		upstream string
		wantErr  bool
		wantTail string
	}{
		{name: "cut before done", upstream: "data: {\"choices\":[]}\n\n", wantTail: "ended before it was complete\",\"type\":\"provider_error\",\"param\":null,\"code\":\"provider_error\"}}\n\ndata: [DONE]\n\n"},
		{name: "malformed frame", upstream: "data: {\"choices\": nope}\n\n", wantErr: true},
		{name: "provider error event reworded", upstream: "data: {\"error\":{\"message\":\"boom at 10.0.0.7 for org-AbC123dEf456\"}}\n\ndata: [DONE]\n\n",
			wantTail: "data: {\"error\":{\"message\":\"The upstream provider failed (status 502)\",\"type\":\"provider_error\",\"param\":null,\"code\":\"provider_error\"}}\n\ndata: [DONE]\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewStreamRewriter("m", false)
			out, err := r.Feed([]byte(tt.upstream), true)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !strings.HasSuffix(string(out), tt.wantTail) {
				t.Errorf("out = %q, want suffix %q", out, tt.wantTail)
			}
		})
	}
}

// decodeSplit feeds upstream to a fresh pivot decoder cut at i, then Envoy's empty end_of_stream
// chunk, and reports the chunks and the error it ended with.
func decodeSplit(upstream []byte, i int) (string, bool) {
	d := NewStreamDecoder("gpt-5.4")
	var got []ChatCompletionChunk
	var last error
	for n, p := range [][]byte{upstream[:i], upstream[i:], nil} {
		c, err := d.Feed(p, n == 2)
		got = append(got, c...)
		if err != nil {
			last = err
			break
		}
	}
	b, _ := json.Marshal(got)
	return fmt.Sprintf("%s err=%v", b, last), d.Done()
}

// TestEndOfStreamRule checks the one end-of-stream rule (package sse, End) on OpenAI streams: a
// final [DONE] without its blank line, or without its line ending, still ends the stream; one cut
// inside the line is discarded, and the stream is then one the provider cut short.
func TestEndOfStreamRule(t *testing.T) {
	upstream, err := os.ReadFile("testdata/stream/basic.upstream.sse")
	if err != nil {
		t.Fatal(err)
	}
	s := string(upstream)
	eol := strings.TrimRight(s, "\r\n")
	withoutLast := []byte(s[:strings.LastIndex(eol, "\n\n")+2])
	wantOut, _ := feedSplit(t, upstream, true, nil)
	cutOut, _ := feedSplit(t, withoutLast, true, nil)
	wantDec, done := decodeSplit(upstream, 0)
	cutDec, cutDone := decodeSplit(withoutLast, 0)
	if !done || cutDone || !bytes.Contains(cutOut, []byte(`"code":"provider_error"`)) {
		t.Fatalf("fixture: done %v, cut done %v, cut stream:\n%s", done, cutDone, cutOut)
	}
	for _, tc := range []struct {
		name    string
		in      string
		out     []byte
		dec     string
		wantCut bool
	}{
		{"no final blank line", s[:len(s)-1], wantOut, wantDec, false},
		{"no final line ending", eol, wantOut, wantDec, false},
		{"final line with crlf", eol + "\r\n", wantOut, wantDec, false},
		{"last line cut", eol[:len(eol)-2], cutOut, cutDec, true},
	} {
		in := []byte(tc.in)
		for i := 0; i <= len(in); i++ {
			if got, _ := feedSplit(t, in, true, []int{i}); !bytes.Equal(got, tc.out) {
				t.Fatalf("%s: rewriter split at %d:\n%s", tc.name, i, got)
			}
			if got, done := decodeSplit(in, i); got != tc.dec || done == tc.wantCut {
				t.Fatalf("%s: decoder split at %d: done %v\n%s", tc.name, i, done, got)
			}
		}
	}
}

// TestStreamTypesAgree checks that the decoder and the rewriter, fed the same provider stream,
// report the same usage, finish reason, content size and end: extproc meters either the same way.
func TestStreamTypesAgree(t *testing.T) {
	const (
		textOnly  = "testdata/stream/basic.upstream.sse"
		toolCalls = `data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"think"}}]}

data: {"id":"c","choices":[{"index":0,"delta":{"refusal":"no"}}]}

data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"get","arguments":"{\"a\""}}]}}]}

data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}

data: {"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}

data: [DONE]

`
		noUsage = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n"
		cut     = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"
	)
	fixture, err := os.ReadFile(textOnly)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		upstream   string
		usage      bool
		total      int64
		finish     string
		content    int64
		done       bool
		decoderErr bool // the decoder reports a stream cut short as an error; the rewriter writes it
	}{
		{name: "text", upstream: string(fixture), usage: true, total: 15, finish: "stop", content: int64(len("Héllo" + " 世界")), done: true},
		// `{"a"` is written `{\"a\"` (6 bytes, escapes counted) and decodes to 4 bytes.
		{name: "reasoning refusal and tools", upstream: toolCalls, usage: true, total: 14, finish: "tool_calls", content: int64(len("think" + "no" + "get" + `{"a"` + ":1}")), done: true},
		{name: "no usage", upstream: noUsage, finish: "length", content: 2, done: true},
		{name: "cut short", upstream: cut, content: 2, decoderErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewStreamDecoder("m")
			_, derr := d.Feed([]byte(tt.upstream), true)
			if (derr != nil) != tt.decoderErr {
				t.Fatalf("decoder err = %v, want error %v", derr, tt.decoderErr)
			}
			r := NewStreamRewriter("m", false)
			if _, err := r.Feed([]byte(tt.upstream), true); err != nil {
				t.Fatal(err)
			}
			for _, s := range []struct {
				name string
				st   interface {
					Usage() (Usage, billing.Usage, bool)
					UsageFinal() bool
					FinishReason() string
					ContentBytes() int64
					Done() bool
				}
				content int64
			}{
				{"decoder", d, tt.content},
				{"rewriter", r, tt.content + rewriterEscapes(tt.upstream)},
			} {
				u, bu, ok := s.st.Usage()
				if ok != tt.usage || s.st.UsageFinal() != tt.usage || u.TotalTokens != tt.total || bu != u.Billing() {
					t.Errorf("%s: usage %+v %+v, seen %v, final %v; want total %d, seen %v", s.name, u, bu, ok, s.st.UsageFinal(), tt.total, tt.usage)
				}
				if s.st.FinishReason() != tt.finish || s.st.ContentBytes() != s.content || s.st.Done() != tt.done {
					t.Errorf("%s: finish %q, content %d, done %v; want %q, %d, %v", s.name, s.st.FinishReason(), s.st.ContentBytes(), s.st.Done(), tt.finish, s.content, tt.done)
				}
			}
		})
	}
}

// rewriterEscapes is how many more bytes the rewriter counts than the decoder: the rewriter
// counts strings as written, so each backslash escape adds one byte.
func rewriterEscapes(upstream string) int64 { return int64(strings.Count(upstream, `\"`)) }
