package standin_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// TestClientDisconnect: a client that goes away mid-response cancels the upstream request
// and the ext_proc stream.
//
// Envoy: a downstream reset destroys the stream's filters: the router resets the upstream
// request (router.cc Filter::onDestroy) and ext_proc closes its gRPC stream (ext_proc.cc
// Filter::onDestroy → closeStream).
func TestClientDisconnect(t *testing.T) {
	upstreamGone := make(chan struct{})
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(upstreamGone)
	})
	proc, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		r := continueAll(m)
		if m.GetResponseHeaders() != nil {
			r.ModeOverride = &extprocv3.ProcessingMode{ResponseBodyMode: extprocv3.ProcessingMode_STREAMED}
		}
		return r
	}))
	px := startProxy(t, testBootstrap(t, addr, up))

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, px.url("/"), nil)
	req.Header.Set("x-tollgate-cluster", "model_0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := resp.Body.Read(buf); err != nil { // the stream is flowing
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()

	deadline := time.After(10 * time.Second)
	select {
	case <-upstreamGone:
	case <-deadline:
		t.Fatal("upstream request was not cancelled")
	}
	select {
	case err := <-proc.ended:
		if err == nil {
			t.Errorf("ext_proc stream ended without being cancelled")
		}
	case <-deadline:
		t.Fatal("ext_proc stream was not closed")
	}
	if info := px.nextInfo(t); info.ResponseCode != 200 {
		t.Errorf("stream info = %+v", info)
	}
}
