package extproc

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate/tollgate/extproc/ledger"
)

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds the process CPU per operation. The gRPC client playing Envoy shares the process
// with the server, so this is an upper bound on the server's own cost.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

// benchRequest is a chat request of about 2 KB.
var benchRequest = `{"model":"gpt","temperature":0.5,"messages":[{"role":"system","content":"` + strings.Repeat("You are helpful. ", 50) +
	`"},{"role":"user","content":"` + strings.Repeat("Tell me about Envoy. ", 50) + `"}]}`

const benchResponse = `{"id":"c","object":"chat.completion","created":1767225600,"model":"gpt-5.4-2026-03-01","choices":[{"index":0,"message":{"role":"assistant","content":"Envoy is a proxy."},"finish_reason":"stop"}],"usage":{"prompt_tokens":420,"completion_tokens":5,"total_tokens":425}}`

func drain(h *harness) {
	h.ledger.settled = make(chan ledger.Usage, 1024)
	go func() {
		for range h.ledger.settled {
		}
	}()
}

// BenchmarkBufferedRequest drives one non-streaming chat completion per iteration over a real
// socket with the messages Envoy sends: on the router filter's stream request headers and body,
// then one attempt's stream (request headers, translated there, the hold placed), then the
// router filter's response headers and body (auth and ledger are in-memory fakes).
func BenchmarkBufferedRequest(b *testing.B) {
	h := newHarness(b)
	drain(h)
	benchBuffered(b, h)
}

func benchBuffered(b *testing.B, h *harness) {
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		s := h.open(b)
		s.requestHeaders(false, chatHeaders()...)
		attempt(b, h, s.requestBody(benchRequest))
		s.responseHeaders(false, ":status", "200", "content-type", "application/json")
		s.responseBody([]byte(benchResponse), true)
		_ = s.s.CloseSend()
	}
	reportCPU(b, start)
}

// BenchmarkStreamedChunk measures one streamed chunk: a 500-chunk stream per iteration, reported
// per chunk.
func BenchmarkStreamedChunk(b *testing.B) {
	h := newHarness(b)
	drain(h)
	benchStream(b, h)
}

func benchStream(b *testing.B, h *harness) {
	chunk := []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" word\"},\"finish_reason\":null}],\"usage\":null}\n\n")
	const chunks = 500
	b.ReportAllocs()
	start := cpuTime()
	var n int
	for b.Loop() {
		s := h.open(b)
		s.requestHeaders(false, chatHeaders()...)
		attempt(b, h, s.requestBody(`{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		s.responseHeaders(false, ":status", "200", "content-type", "text/event-stream")
		for range chunks {
			s.responseBody(chunk, false)
		}
		s.responseBody([]byte("data: [DONE]\n\n"), true)
		_ = s.s.CloseSend()
		n += chunks
	}
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(n)/1000, "cpu-µs/chunk")
}

// noopProcessor answers every message with an empty reply of the matching kind: the floor that
// gRPC itself costs, against which BenchmarkBufferedRequest and BenchmarkStreamedChunk compare.
type noopProcessor struct {
	extprocv3.UnimplementedExternalProcessorServer
}

func (noopProcessor) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := s.Recv()
		if err != nil {
			return nil
		}
		resp := &extprocv3.ProcessingResponse{}
		switch req.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			resp.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_RequestBody:
			resp.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			resp.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}
		default:
			resp.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}
		}
		if err := s.Send(resp); err != nil {
			return nil
		}
	}
}

func noopHarness(b *testing.B) *harness {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, noopProcessor{})
	go func() { _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(); gs.Stop() })
	return &harness{client: extprocv3.NewExternalProcessorClient(conn)}
}

// BenchmarkNoopBufferedRequest is BenchmarkBufferedRequest against a processor that does nothing.
func BenchmarkNoopBufferedRequest(b *testing.B) { benchBuffered(b, noopHarness(b)) }

// BenchmarkNoopStreamedChunk is BenchmarkStreamedChunk against a processor that does nothing.
func BenchmarkNoopStreamedChunk(b *testing.B) { benchStream(b, noopHarness(b)) }

// attempt runs the first attempt of the request routed, on its own stream, as the cluster's
// upstream filter does.
func attempt(b *testing.B, h *harness, routed *extprocv3.ProcessingResponse) {
	a := h.open(b)
	a.send(attemptRequest(routedID(routed), primaryBackend, chatHeaders()[4:]...))
	_ = a.s.CloseSend()
}
