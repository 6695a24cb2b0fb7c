package sse

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

func decodeAll(t testing.TB, chunks ...[]byte) []Event {
	t.Helper()
	var d Decoder
	var out []Event
	var err error
	for _, c := range chunks {
		if out, err = d.Feed(out, c); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestDecoder(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Event
	}{
		{name: "openai chunks", in: "data: {\"a\":1}\n\ndata: [DONE]\n\n",
			want: []Event{{Data: []byte(`{"a":1}`)}, {Data: []byte("[DONE]")}}},
		{name: "named event", in: "event: message_start\ndata: {}\n\n",
			want: []Event{{Name: "message_start", Data: []byte("{}")}}},
		{name: "crlf and cr endings", in: "data: a\r\n\r\ndata: b\r\rdata: c\n\n",
			want: []Event{{Data: []byte("a")}, {Data: []byte("b")}, {Data: []byte("c")}}},
		{name: "multi-line data joined", in: "data: x\ndata:y\ndata:  z\n\n",
			want: []Event{{Data: []byte("x\ny\n z")}}},
		{name: "comments and unknown fields ignored", in: ": ping\nfoo: bar\nretry: 10\ndata: d\n\n",
			want: []Event{{Data: []byte("d")}}},
		{name: "event without data not dispatched", in: "event: ping\n\ndata: d\n\n",
			want: []Event{{Data: []byte("d")}}},
		{name: "empty data dispatched", in: "data:\n\n", want: []Event{{Data: []byte{}}}},
		{name: "bom stripped", in: "\xEF\xBB\xBFdata: d\n\n", want: []Event{{Data: []byte("d")}}},
		{name: "id kept", in: "id: 7\ndata: d\n\n", want: []Event{{ID: "7", Data: []byte("d")}}},
		{name: "unterminated event held", in: "data: d\n", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every split point must give the same events as the whole input.
			in := []byte(tt.in)
			for i := 0; i <= len(in); i++ {
				got := decodeAll(t, in[:i], in[i:])
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("split at %d: got %q, want %q", i, got, tt.want)
				}
			}
		})
	}
}

func TestDecoderByteAtATime(t *testing.T) {
	in := []byte("event: a\r\ndata: é€😀\r\n\r\ndata: b\n\n")
	var chunks [][]byte
	for i := range in {
		chunks = append(chunks, in[i:i+1])
	}
	got := decodeAll(t, chunks...)
	want := []Event{{Name: "a", Data: []byte("é€😀")}, {Data: []byte("b")}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestPending(t *testing.T) {
	var d Decoder
	if _, err := d.Feed(nil, []byte("data: cut")); err != nil {
		t.Fatal(err)
	}
	if !d.Pending() {
		t.Error("a partial line is pending")
	}
	if _, err := d.Feed(nil, []byte("\n\n")); err != nil {
		t.Fatal(err)
	}
	if d.Pending() {
		t.Error("nothing is pending after the event completed")
	}
}

func TestTooLarge(t *testing.T) {
	d := Decoder{MaxEventBytes: 64}
	_, err := d.Feed(nil, bytes.Repeat([]byte("data: xxxxxxxxxx\n"), 10))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestAppendEventRoundTrip(t *testing.T) {
	events := []Event{{Name: "content_block_delta", Data: []byte(`{"x":"a\nb"}`)}, {Data: []byte("line1\nline2")}, {ID: "9", Data: []byte{}}}
	var wire []byte
	for _, ev := range events {
		wire = AppendEvent(wire, ev)
	}
	if got := decodeAll(t, wire); !reflect.DeepEqual(got, events) {
		t.Fatalf("round trip: got %q, want %q", got, events)
	}
}

// FuzzDecoder checks that, for any input and any way of cutting it, the decoder neither panics
// nor depends on where the cuts fall.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\ndata: [DONE]\n\n"), uint64(1))
	f.Add([]byte("event: x\r\ndata: y\r\n\r\n"), uint64(2))
	f.Add([]byte("\xEF\xBB\xBFdata:\r\r:c\n"), uint64(3))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		whole := decodeAll(t, in)
		rng := rand.New(rand.NewPCG(seed, seed))
		var chunks [][]byte
		for rest := in; len(rest) > 0; {
			n := rng.IntN(len(rest)) + 1
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if split := decodeAll(t, chunks...); !reflect.DeepEqual(whole, split) {
			t.Fatalf("split input decoded differently:\nwhole %q\nsplit %q", whole, split)
		}
		// The end-of-stream rule must not depend on the cuts either, and may only add events.
		wholeEnd, wholeCut := decodeEnd(t, nil, in)
		splitEnd, splitCut := decodeEnd(t, nil, chunks...)
		if !reflect.DeepEqual(wholeEnd, splitEnd) || wholeCut != splitCut {
			t.Fatalf("split input ended differently:\nwhole %q %v\nsplit %q %v", wholeEnd, wholeCut, splitEnd, splitCut)
		}
		if len(wholeEnd) < len(whole) || (len(whole) > 0 && !reflect.DeepEqual(wholeEnd[:len(whole)], whole)) {
			t.Fatalf("End changed the events Feed dispatched:\nfeed %q\nend  %q", whole, wholeEnd)
		}
	})
}

// decodeEnd feeds chunks, then applies the end-of-stream rule.
func decodeEnd(t testing.TB, whole func([]byte) bool, chunks ...[]byte) ([]Event, bool) {
	t.Helper()
	var d Decoder
	var out []Event
	var err error
	for _, c := range chunks {
		if out, err = d.Feed(out, c); err != nil {
			t.Fatal(err)
		}
	}
	return d.End(out, whole)
}

func TestEnd(t *testing.T) {
	jsonOrDone := func(b []byte) bool { return string(b) == "[DONE]" || json.Valid(b) }
	tests := []struct {
		name    string
		in      string
		whole   func([]byte) bool
		want    []Event
		wantCut bool
	}{
		{name: "terminated stream unchanged", in: "data: {\"a\":1}\n\ndata: [DONE]\n\n", whole: jsonOrDone,
			want: []Event{{Data: []byte(`{"a":1}`)}, {Data: []byte("[DONE]")}}},
		{name: "final blank line missing", in: "data: {\"a\":1}\n\ndata: [DONE]\n", whole: jsonOrDone,
			want: []Event{{Data: []byte(`{"a":1}`)}, {Data: []byte("[DONE]")}}},
		{name: "final line ending missing", in: "data: {\"a\":1}\n\ndata: [DONE]", whole: jsonOrDone,
			want: []Event{{Data: []byte(`{"a":1}`)}, {Data: []byte("[DONE]")}}},
		{name: "final crlf without blank line", in: "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n", whole: json.Valid,
			want: []Event{{Name: "message_stop", Data: []byte(`{"type":"message_stop"}`)}}},
		{name: "named final event without line ending", in: "event: message_stop\ndata: {}", whole: json.Valid,
			want: []Event{{Name: "message_stop", Data: []byte(`{}`)}}},
		{name: "multi-line data without blank line", in: "data: {\"a\":\ndata: 1}\n", whole: json.Valid,
			want: []Event{{Data: []byte("{\"a\":\n1}")}}},
		{name: "payload cut inside the line is discarded", in: "data: {\"a\":1}\n\ndata: {\"usage\":{\"n\":1", whole: json.Valid,
			want: []Event{{Data: []byte(`{"a":1}`)}}, wantCut: true},
		{name: "payload cut between data lines is discarded", in: "data: {\"a\":\n", whole: json.Valid,
			want: nil, wantCut: true},
		{name: "done cut short is discarded", in: "data: [DO", whole: jsonOrDone, want: nil, wantCut: true},
		{name: "nil whole accepts any data", in: "data: abc", whole: nil, want: []Event{{Data: []byte("abc")}}},
		{name: "event name without data is cut", in: "data: 1\n\nevent: message_stop\n", whole: json.Valid,
			want: []Event{{Data: []byte("1")}}, wantCut: true},
		{name: "trailing comment is not an event", in: "data: 1\n\n: keep-alive", whole: json.Valid,
			want: []Event{{Data: []byte("1")}}},
		{name: "lone cr ends the last line", in: "data: 1\r", whole: json.Valid, want: []Event{{Data: []byte("1")}}},
		{name: "bom prefix alone", in: "\xEF\xBB", whole: json.Valid, want: nil},
		{name: "empty stream", in: "", whole: json.Valid, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The rule must not depend on where the stream was cut into chunks.
			in := []byte(tt.in)
			for i := 0; i <= len(in); i++ {
				got, cut := decodeEnd(t, tt.whole, in[:i], in[i:])
				if !reflect.DeepEqual(got, tt.want) || cut != tt.wantCut {
					t.Fatalf("split at %d: got %q cut %v, want %q cut %v", i, got, cut, tt.want, tt.wantCut)
				}
			}
		})
	}
}

func TestEndResets(t *testing.T) {
	var d Decoder
	out, _ := d.Feed(nil, []byte("event: a\ndata: 1"))
	out, _ = d.End(out, nil)
	if d.Pending() {
		t.Fatal("End left input pending")
	}
	out, _ = d.Feed(out, []byte("data: 2\n\n"))
	want := []Event{{Name: "a", Data: []byte("1")}, {Data: []byte("2")}}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("got %q, want %q", out, want)
	}
}
