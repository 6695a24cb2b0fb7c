package ratelimit_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate/tollgate/ratelimit"
	"github.com/tollgate/tollgate/ratelimit/internal/redistest"
	"github.com/tollgate/tollgate/ratelimit/limiter"
)

// serveGRPC serves s on a real 127.0.0.1 socket and returns a client.
func serveGRPC(t *testing.T, s *ratelimit.Server) rlsv3.RateLimitServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	rlsv3.RegisterRateLimitServiceServer(gs, s)
	done := make(chan error, 1)
	go func() { done <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.GracefulStop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return rlsv3.NewRateLimitServiceClient(conn)
}

// fixedLimits gives every descriptor the same limit: a Limits written by
// hand, as a database-backed source would be.
type fixedLimits ratelimit.Limit

func (f fixedLimits) Limit(context.Context, ratelimit.Descriptor) (ratelimit.Limit, bool) {
	return ratelimit.Limit(f), true
}

func TestGRPCExactLimitUnderConcurrency(t *testing.T) {
	const limit, callers = 50, 200
	rdb := redistest.Client(t)
	// Redis' own clock, as in production. 50 requests per day drain one
	// every 28 minutes, so however slow the machine, no 51st gets in.
	limits := fixedLimits{PerUnit: limit, Unit: 24 * time.Hour, Name: "test"}
	cfg := ratelimit.Config{KeyPrefix: redistest.Prefix(t, rdb), RedisTimeout: 5 * time.Second}
	client := serveGRPC(t, ratelimit.NewServer(cfg, limiter.New(rdb), limits, discard()))

	var okCount, overCount atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, err := client.ShouldRateLimit(ctx, request(descriptor("rpm", "acme", "k1", "")))
			if err != nil {
				t.Errorf("ShouldRateLimit: %v", err)
				return
			}
			switch resp.GetOverallCode() {
			case ok:
				okCount.Add(1)
			case over:
				overCount.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if okCount.Load() != limit || overCount.Load() != callers-limit {
		t.Errorf("%d OK and %d OVER_LIMIT, want exactly %d and %d", okCount.Load(), overCount.Load(), limit, callers-limit)
	}

	// The generated client sees the whole answer: statuses and headers.
	resp, err := client.ShouldRateLimit(context.Background(), request(descriptor("rpm", "acme", "k1", ""), descriptor("rpm", "acme", "k2", "")))
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := resp.GetStatuses()[0], resp.GetStatuses()[1]
	if resp.GetOverallCode() != over || k1.GetCode() != over || k2.GetCode() != ok {
		t.Errorf("overall %v, k1 %v, k2 %v; want OVER_LIMIT, OVER_LIMIT, OK", resp.GetOverallCode(), k1.GetCode(), k2.GetCode())
	}
	if cl := k1.GetCurrentLimit(); cl.GetRequestsPerUnit() != limit || cl.GetUnit() != rlsv3.RateLimitResponse_RateLimit_DAY || cl.GetName() != "test" {
		t.Errorf("current_limit %v", cl)
	}
	h := headers(resp)
	if h["x-ratelimit-remaining-requests"] != "0" || h["retry-after"] == "" || len(resp.GetRawBody()) == 0 {
		t.Errorf("headers %v, body %q: want remaining 0, a retry-after and a body", h, resp.GetRawBody())
	}
}
