package standin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
)

// chunk is one data callback of an upstream body, as Envoy's codec would deliver it.
type chunk struct {
	data []byte
	eos  bool  // end_stream on this callback
	err  error // the body failed (the stream is reset)
}

// splitter cuts body data at random byte boundaries from a seeded PRNG, so a processor's
// SSE parser sees events split anywhere, as TCP segments and HTTP/2 frames would split them.
// It mixes tiny pieces (to cut inside "data:" and "\n\n") with large ones.
type splitter struct {
	rng *rand.Rand
}

func (sp splitter) next(n int) int {
	switch sp.rng.IntN(3) {
	case 0:
		return 1 + sp.rng.IntN(min(n, 8))
	case 1:
		return 1 + sp.rng.IntN(min(n, 64))
	default:
		return 1 + sp.rng.IntN(n)
	}
}

// readBody starts the upstream body reader: it emits the body in randomly split chunks and
// ends with end_stream, which rides on the last data chunk when the length is known
// (content-length) and comes as an empty chunk otherwise (the HTTP/1 chunked terminator,
// docs/envoy.md section 1.3). It stops the route and per-try timers when the body is complete. The
// goroutine exits at the end of the body or when the upstream context ends; finish waits
// for it.
func (s *stream) readBody(body io.ReadCloser, length int64) <-chan chunk {
	ch := make(chan chunk)
	sp := splitter{rng: s.rng}
	ctx := s.upCtx
	s.bodyReaders.Add(1)
	go func() {
		defer s.bodyReaders.Done()
		defer close(ch)
		defer body.Close()
		emit := func(c chunk) bool {
			select {
			case ch <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		fail := func(err error) {
			if cause := context.Cause(ctx); cause != nil {
				err = cause
			}
			emit(chunk{err: err})
		}
		buf := make([]byte, 32<<10)
		remaining := length // < 0: unknown
		for {
			n, err := body.Read(buf)
			if n > 0 {
				s.attemptTimers.progress() // the per-try idle timer restarts on data
			}
			data := buf[:n]
			for len(data) > 0 {
				k := sp.next(len(data))
				piece := bytes.Clone(data[:k])
				data = data[k:]
				eos := false
				if remaining >= 0 {
					remaining -= int64(k)
					eos = remaining <= 0
				}
				if eos {
					s.upstreamComplete()
				}
				if !emit(chunk{data: piece, eos: eos}) || eos {
					return
				}
			}
			switch {
			case errors.Is(err, io.EOF) && remaining < 0:
				s.upstreamComplete()
				emit(chunk{eos: true})
				return
			case errors.Is(err, io.EOF):
				fail(io.ErrUnexpectedEOF)
				return
			case err != nil:
				fail(err)
				return
			}
		}
	}()
	return ch
}
