package standin_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// streamedConfig sets response_body_mode STREAMED in the filter configuration.
func streamedConfig(ep *extprocv3.ExternalProcessor) {
	ep.ProcessingMode.ResponseBodyMode = extprocv3.ProcessingMode_STREAMED
}

// TestStreamedPipelining: in STREAMED mode chunk N+1 goes to the processor before the
// reply to chunk N arrives; replies apply to the queued chunks first in, first out; header
// mutations in body replies are ignored.
//
// Envoy: ext_proc.cc handleDataStreamedMode (send, then queue); processor_state.cc
// handleStreamedBodyResponse (front of the queue, no header mutation).
func TestStreamedPipelining(t *testing.T) {
	const n = 6
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range n {
			io.WriteString(w, "event-"+strconv.Itoa(i)+";")
			w.(http.Flusher).Flush()
		}
	})
	proc, addr := startProcessor(t, func(srv extprocsvc.ExternalProcessor_ProcessServer) error {
		var pending []*extprocsvc.ProcessingRequest
		answer := func(m *extprocsvc.ProcessingRequest) error {
			return srv.Send(matching(m, &extprocsvc.CommonResponse{
				HeaderMutation: &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("x-ignored", "1")}},
				BodyMutation:   bodyMutation("[" + string(m.GetResponseBody().GetBody()) + "]"),
			}))
		}
		for {
			m, err := srv.Recv()
			if err != nil {
				return nil
			}
			if m.GetResponseBody() == nil {
				srv.Send(continueAll(m))
				continue
			}
			// Hold the first chunk's reply until the second chunk has arrived.
			pending = append(pending, m)
			if len(pending) < 2 && !m.GetResponseBody().GetEndOfStream() {
				continue
			}
			for _, p := range pending {
				if err := answer(p); err != nil {
					return nil
				}
			}
			pending = nil
		}
	})
	b := testBootstrap(t, addr, up)
	editExtProc(t, b, streamedConfig)
	px := startProxy(t, b)
	resp, got := do(t, http.MethodGet, px.url("/"), "", "x-tollgate-cluster", "model_0")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if resp.Header.Get("x-ignored") != "" {
		t.Errorf("a header mutation in a STREAMED body reply was applied")
	}
	var want strings.Builder
	var chunks int
	for _, m := range proc.messages() {
		if b := m.GetResponseBody(); b != nil {
			chunks++
			want.WriteString("[" + string(b.GetBody()) + "]")
		}
	}
	if chunks < 2 {
		t.Fatalf("only %d chunks", chunks)
	}
	if got != want.String() {
		t.Errorf("client got %q, want the replies in order %q", got, want.String())
	}
}

// TestStreamedContentLength: content-length is removed when the mode at the time headers
// are sent is STREAMED, and the processor cannot set it then; a mode_override to STREAMED
// in the response_headers reply does not remove it (the processor must).
//
// Envoy: ext_proc.cc Filter::encodeHeaders (shouldRemoveContentLength after onHeaders);
// mutation_utils.cc applyHeaderMutations (remove_content_length skips the set); research
// doc sections 1.7 and 7.
func TestStreamedContentLength(t *testing.T) {
	const body = "0123456789"
	tests := []struct {
		name       string
		configured bool // STREAMED in the filter config, else BUFFERED + mode_override
		remove     bool
		setCL      bool
		wantCL     int64 // as the client sees it; -1: none (chunked)
	}{
		{"configured STREAMED removes it", true, false, true, -1},
		{"override keeps it", false, false, false, int64(len(body))},
		{"override and remove", false, true, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				io.WriteString(w, body)
			})
			proc, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				if m.GetResponseHeaders() == nil {
					return continueAll(m)
				}
				hm := &extprocsvc.HeaderMutation{}
				if tt.remove {
					hm.RemoveHeaders = []string{"content-length"}
				}
				if tt.setCL {
					hm.SetHeaders = []*corev3.HeaderValueOption{setHeader("content-length", "999")}
				}
				r := matching(m, &extprocsvc.CommonResponse{HeaderMutation: hm})
				if !tt.configured {
					r.ModeOverride = &extprocv3.ProcessingMode{ResponseBodyMode: extprocv3.ProcessingMode_STREAMED}
				}
				return r
			}))
			b := testBootstrap(t, addr, up)
			if tt.configured {
				editExtProc(t, b, streamedConfig)
			}
			px := startProxy(t, b)
			resp, got := do(t, http.MethodGet, px.url("/"), "", "x-tollgate-cluster", "model_0")
			if resp.StatusCode != 200 || got != body {
				t.Fatalf("got %d %q", resp.StatusCode, got)
			}
			if resp.ContentLength != tt.wantCL {
				t.Errorf("client content-length = %d, want %d", resp.ContentLength, tt.wantCL)
			}
			px.nextInfo(t)
			rh := proc.messages()[1].GetResponseHeaders()
			if cl, _ := headerValue(rh.GetHeaders(), "content-length"); cl != strconv.Itoa(len(body)) {
				t.Errorf("processor saw content-length %q, want the upstream's", cl)
			}
		})
	}
}

// TestStreamedEndOfStream: a body of unknown length (chunked) ends with an empty
// end_of_stream chunk; with content-length, end_of_stream rides on the last data chunk.
//
// Envoy: HTTP/1 codec delivers the chunked terminator as an empty data callback with
// end_stream (docs/envoy.md section 1.3); ext_proc.cc setupBodyChunk.
func TestStreamedEndOfStream(t *testing.T) {
	for _, known := range []bool{false, true} {
		t.Run("content-length="+strconv.FormatBool(known), func(t *testing.T) {
			up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				if known {
					w.Header().Set("Content-Length", "12")
				}
				io.WriteString(w, "hello world!")
				if !known {
					w.(http.Flusher).Flush() // otherwise net/http computes a content-length
				}
			})
			proc, addr := startProcessor(t, replyEach(continueAll))
			b := testBootstrap(t, addr, up)
			editExtProc(t, b, streamedConfig)
			px := startProxy(t, b)
			if resp, got := do(t, http.MethodGet, px.url("/"), "", "x-tollgate-cluster", "model_0"); resp.StatusCode != 200 || got != "hello world!" {
				t.Fatalf("got %d %q", resp.StatusCode, got)
			}
			px.nextInfo(t)
			var bodies []*extprocsvc.HttpBody
			for _, m := range proc.messages() {
				if b := m.GetResponseBody(); b != nil {
					bodies = append(bodies, b)
				}
			}
			last := bodies[len(bodies)-1]
			for _, b := range bodies[:len(bodies)-1] {
				if b.GetEndOfStream() {
					t.Fatalf("end_of_stream before the last chunk")
				}
			}
			if !last.GetEndOfStream() || (len(last.GetBody()) == 0) == known {
				t.Errorf("last chunk = %q end_of_stream=%v", last.GetBody(), last.GetEndOfStream())
			}
		})
	}
}

// TestStreamedChunksAreFlushed: each processed chunk reaches the client at once. The
// upstream sends its second event only after the client has read the first, so a stand-in
// that buffered would deadlock (and the test fail at its deadline).
//
// Envoy forwards every data frame as it is processed (processor_state.cc
// injectDataToFilterChain); docs/envoy.md section 2.
func TestStreamedChunksAreFlushed(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	})
	_, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		if b := m.GetResponseBody(); b != nil {
			return matching(m, &extprocsvc.CommonResponse{BodyMutation: bodyMutation(strings.ToUpper(string(b.GetBody())))})
		}
		return continueAll(m)
	}))
	b := testBootstrap(t, addr, up)
	editExtProc(t, b, streamedConfig)
	px := startProxy(t, b)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, px.url("/"), nil)
	req.Header.Set("x-tollgate-cluster", "model_0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n')
	if err != nil || first != "DATA: ONE\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	close(release)
	rest, err := io.ReadAll(rd)
	if err != nil || string(rest) != "\nDATA: TWO\n\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

// TestBodySplitting: upstream bodies reach the processor cut at random byte boundaries
// from the seeded PRNG (Options.SplitSeed), so an SSE parser sees events split anywhere.
func TestBodySplitting(t *testing.T) {
	body := strings.Repeat("data: {\"x\":1}\n\n", 40)
	var boundaries [][]int
	for _, seed := range []int64{11, 12, 13} {
		up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			io.WriteString(w, body)
		})
		proc, addr := startProcessor(t, replyEach(continueAll))
		b := testBootstrap(t, addr, up)
		editExtProc(t, b, streamedConfig)
		px := startProxySeed(t, b, seed)
		if resp, got := do(t, http.MethodGet, px.url("/"), "", "x-tollgate-cluster", "model_0"); resp.StatusCode != 200 || got != body {
			t.Fatalf("seed %d: got %d, body intact %v", seed, resp.StatusCode, got == body)
		}
		px.nextInfo(t)
		var sizes []int
		for _, m := range proc.messages() {
			if b := m.GetResponseBody(); b != nil {
				sizes = append(sizes, len(b.GetBody()))
			}
		}
		if len(sizes) < 4 {
			t.Errorf("seed %d: %d chunks, want the body cut up", seed, len(sizes))
		}
		boundaries = append(boundaries, sizes)
	}
	if slices.Equal(boundaries[0], boundaries[1]) && slices.Equal(boundaries[1], boundaries[2]) {
		t.Errorf("three seeds cut the body identically: %v", boundaries[0])
	}
}
