package anthropic_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tollgate/tollgate/extproc/anthropic"
)

// FuzzStreamDecoder feeds arbitrary bytes, cut at an arbitrary point, to the decoder, the
// rewriter and, with whatever chunks come out, the encoder: none may panic. Memory is bounded
// by the sse decoder's limit.
func FuzzStreamDecoder(f *testing.F) {
	paths, _ := filepath.Glob("testdata/stream/*.upstream.sse")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(len(b)/2))
	}
	f.Fuzz(func(t *testing.T, stream []byte, cut uint16) {
		at := min(int(cut), len(stream))
		d := anthropic.NewStreamDecoder("m")
		e := anthropic.NewStreamEncoder("m")
		var out []byte
		for i, p := range [][]byte{stream[:at], stream[at:]} {
			chunks, err := d.Feed(p, i == 1)
			out = e.Encode(out, chunks)
			if err != nil {
				break
			}
		}
		u, _, _ := d.Usage()
		_ = e.Finish(out, &u)

		r := anthropic.NewStreamRewriter("m")
		if _, err := r.Feed(stream[:at], false); err == nil {
			_, _ = r.Feed(stream[at:], true)
		}
	})
}

// FuzzParseRequest checks that no body makes validation or conversion panic.
func FuzzParseRequest(f *testing.F) {
	paths, _ := filepath.Glob("testdata/client/*.txtar")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if _, body, ok := cutSection(b, "request.json"); ok {
			f.Add(body)
		}
	}
	f.Add([]byte(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":[{"type":"image"}]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := anthropic.ParseRequest(body)
		if err != nil {
			return
		}
		if _, err := anthropic.PassthroughBody(r, "up"); err != nil {
			t.Fatalf("PassthroughBody of a valid request: %v", err)
		}
		_, _ = r.ToPivot()
	})
}

// cutSection returns the text of one txtar section.
func cutSection(archive []byte, name string) (before, section []byte, ok bool) {
	marker := []byte("-- " + name + " --\n")
	for i := 0; i+len(marker) <= len(archive); i++ {
		if string(archive[i:i+len(marker)]) == string(marker) {
			rest := archive[i+len(marker):]
			for j := 0; j+3 <= len(rest); j++ {
				if (j == 0 || rest[j-1] == '\n') && string(rest[j:j+3]) == "-- " {
					return archive[:i], rest[:j], true
				}
			}
			return archive[:i], rest, true
		}
	}
	return nil, nil, false
}
