// Package sse is the gateway's only reader and writer of server-sent events.
//
// Provider streams reach the gateway in chunks whose boundaries are TCP and HTTP/2 artefacts:
// a chunk may end inside an event, inside a line, between the CR and LF of a line ending, or
// inside a UTF-8 character. Decoder holds back whatever is incomplete and yields an event only
// once its terminating blank line has arrived, following the WHATWG event-stream grammar
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream).
//
// # End of stream
//
// The one place the gateway departs from that grammar is the end of the stream, and every
// decoder and rewriter goes through Decoder.End to apply it. WHATWG says that at end of file
// "any pending data must be discarded (if the file ends in the middle of an event, before the
// final empty line, the incomplete event is not dispatched)": right for a browser, which will
// reconnect and ask again. The gateway never reconnects, and Envoy hands it exactly the bytes the
// provider sent (the end_of_stream chunk is often empty), so a provider that omits the final
// blank line, or even the final line ending, would otherwise lose its last event, which is
// usually the one that carries the finish reason, the final usage or OpenAI's [DONE]: the client
// would be told a complete answer was cut short and the request would be billed from an estimate
// instead of the provider's count.
//
// So at end of stream, held-back input is an event when it is whole:
//
//   - whole lines (each ended by CR, LF or CRLF) without the blank line after them form an event
//     as if the blank line had come;
//   - a final line without its line ending is taken as a line too, because a provider that drops
//     the blank line often drops the line ending with it;
//   - but the event is dispatched only if the caller's whole check accepts its data (JSON that
//     parses, or [DONE]). Bytes cut inside a line cannot be told from a short line by SSE alone,
//     and a truncated JSON object never parses, so a payload cut short is discarded, exactly as
//     WHATWG would discard it: the stream then lacks its protocol's last event, and the caller
//     treats it as cut (an error event for the client, usage charged as the larger of the
//     provider's last figure and an estimate from the bytes delivered), never as malformed.
//
// Whole events are unaffected: a stream whose bytes all end in blank lines decodes the same with
// or without End, at any split.
package sse

import (
	"bytes"
	"errors"
	"fmt"
)

// Event is one dispatched server-sent event.
type Event struct {
	// Name is the "event:" field; empty means the default, "message".
	Name string
	// Data is the "data:" lines joined with "\n".
	Data []byte
	ID   string
}

// ErrTooLarge is returned when buffered, undispatched input exceeds the decoder's limit.
var ErrTooLarge = errors.New("sse: event exceeds size limit")

// DefaultMaxEventBytes bounds the memory one stream's pending event may hold.
const DefaultMaxEventBytes = 8 << 20

// Decoder turns a byte stream fed in arbitrary pieces into events. It is not safe for concurrent
// use; one stream owns one decoder.
type Decoder struct {
	// MaxEventBytes bounds the undispatched input held; 0 means DefaultMaxEventBytes.
	MaxEventBytes int

	buf     []byte // unconsumed input: at most one partial line
	skipLF  bool   // the previous chunk ended with CR; a leading LF belongs to that line ending
	started bool   // a leading BOM has been dealt with
	cur     Event
	data    bytes.Buffer
	hasData bool
	pending int // bytes of the event under construction, for the size limit
}

// Feed consumes p and appends every event it completes to dst, returning the extended slice.
// Event Data may alias no input: it is safe to keep.
func (d *Decoder) Feed(dst []Event, p []byte) ([]Event, error) {
	if d.skipLF && len(p) > 0 {
		d.skipLF = false
		if p[0] == '\n' {
			p = p[1:]
		}
	}
	d.buf = append(d.buf, p...)
	if !d.started {
		if len(d.buf) < 3 && bytes.HasPrefix([]byte("\xEF\xBB\xBF"), d.buf) {
			return dst, nil // could still be a BOM
		}
		d.buf = bytes.TrimPrefix(d.buf, []byte("\xEF\xBB\xBF"))
		d.started = true
	}
	start := 0
	for {
		i := bytes.IndexAny(d.buf[start:], "\r\n")
		if i < 0 {
			break
		}
		line := d.buf[start : start+i]
		next := start + i + 1
		if d.buf[start+i] == '\r' {
			if next < len(d.buf) {
				if d.buf[next] == '\n' {
					next++
				}
			} else {
				d.skipLF = true
			}
		}
		start = next
		if ev, ok := d.line(line); ok {
			dst = append(dst, ev)
		}
	}
	d.buf = append(d.buf[:0], d.buf[start:]...)
	max := d.MaxEventBytes
	if max == 0 {
		max = DefaultMaxEventBytes
	}
	if d.pending+len(d.buf) > max {
		return dst, fmt.Errorf("%w (%d bytes pending)", ErrTooLarge, d.pending+len(d.buf))
	}
	return dst, nil
}

// Pending reports whether input that does not yet form a complete event is held. At the end of
// a stream, End decides what becomes of it.
func (d *Decoder) Pending() bool {
	return len(d.buf) > 0 || d.hasData || d.cur.Name != "" || d.cur.ID != ""
}

// End applies the end-of-stream rule (see the package doc) to the input Feed held back and
// appends the final event, if it is whole, to dst. whole judges a final event's Data; nil
// accepts any. cut reports that held-back input was discarded: the stream ended inside an event.
// The decoder is reset; feeding it again starts a new stream.
func (d *Decoder) End(dst []Event, whole func(data []byte) bool) (out []Event, cut bool) {
	if len(d.buf) > 0 && d.started {
		// The final line without its line ending. (Unstarted, buf is a lone prefix of a BOM.)
		d.line(d.buf)
	}
	incomplete := d.hasData || d.cur.Name != "" || d.cur.ID != ""
	ev, ok := d.dispatch()
	*d = Decoder{MaxEventBytes: d.MaxEventBytes}
	if ok && (whole == nil || whole(ev.Data)) {
		return append(dst, ev), false
	}
	return dst, incomplete
}

func (d *Decoder) line(line []byte) (Event, bool) {
	if len(line) == 0 {
		return d.dispatch()
	}
	d.pending += len(line) + 1
	if line[0] == ':' {
		return Event{}, false // comment
	}
	field, value, found := bytes.Cut(line, []byte(":"))
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(field) {
	case "event":
		d.cur.Name = string(value)
	case "data":
		if d.hasData {
			d.data.WriteByte('\n')
		}
		d.data.Write(value)
		d.hasData = true
	case "id":
		if !bytes.ContainsRune(value, 0) {
			d.cur.ID = string(value)
		}
	}
	// "retry" only concerns reconnecting browsers; the gateway never reconnects a stream.
	return Event{}, false
}

func (d *Decoder) dispatch() (Event, bool) {
	ev, ok := d.cur, d.hasData
	if ok {
		ev.Data = append([]byte{}, d.data.Bytes()...)
	}
	d.cur, d.hasData, d.pending = Event{}, false, 0
	d.data.Reset()
	// Per the spec an event with no data is not dispatched; its name is discarded.
	return ev, ok
}

// AppendEvent appends ev in wire form to dst. Data containing newlines becomes several data
// lines, so any payload without a CR round-trips through Decoder.
func AppendEvent(dst []byte, ev Event) []byte {
	if ev.Name != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, ev.Name...)
		dst = append(dst, '\n')
	}
	if ev.ID != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, ev.ID...)
		dst = append(dst, '\n')
	}
	data := ev.Data
	for {
		line, rest, more := bytes.Cut(data, []byte("\n"))
		dst = append(dst, "data: "...)
		dst = append(dst, line...)
		dst = append(dst, '\n')
		if !more {
			break
		}
		data = rest
	}
	return append(dst, '\n')
}

// AppendData appends a nameless event carrying data, the OpenAI and Gemini framing.
func AppendData(dst, data []byte) []byte { return AppendEvent(dst, Event{Data: data}) }
