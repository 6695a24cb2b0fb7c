package ratelimit_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/ratelimit"
	"github.com/tollgate/tollgate/ratelimit/internal/redistest"
	"github.com/tollgate/tollgate/ratelimit/limiter"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRedisOutage hangs, then kills a private Redis under two servers, one
// failing open and one failing closed, and restarts it: with empty memory,
// so recovery also goes through the NOSCRIPT fallback.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := ratelimit.OpenRedis("redis://" + srv.Addr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	lim := limiter.New(rdb)
	limits := staticLimits(t, ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{{Org: "acme"}: {RPM: 1000}}})

	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// Generous, so that a loaded test machine does not look like an outage.
	timeout := 2 * time.Second
	open := ratelimit.NewServer(ratelimit.Config{FailOpen: true, RedisTimeout: timeout}, lim, limits, log)
	closed := ratelimit.NewServer(ratelimit.Config{FailOpen: false, RedisTimeout: timeout}, lim, limits, log)
	servers := []struct {
		name string
		s    *ratelimit.Server
	}{{"fail-open", open}, {"fail-closed", closed}}
	req := request(descriptor("rpm", "acme", "", ""))

	limited := func(resp *rlsv3.RateLimitResponse, err error) error {
		switch {
		case err != nil:
			return err
		case resp.GetStatuses()[0].GetCurrentLimit() == nil:
			return errors.New("answered without a limit")
		}
		return nil
	}

	for _, sv := range servers {
		if err := limited(sv.s.ShouldRateLimit(context.Background(), req)); err != nil {
			t.Fatalf("%s, Redis up: %v", sv.name, err)
		}
	}

	// A hung Redis: connections stay open and nothing answers. Each call
	// must end at the Redis deadline, well inside Envoy's timeout.
	srv.Pause()
	hung := []struct {
		name string
		s    *ratelimit.Server
	}{
		{"fail-open", ratelimit.NewServer(ratelimit.Config{FailOpen: true, RedisTimeout: 20 * time.Millisecond}, lim, limits, discard())},
		{"fail-closed", ratelimit.NewServer(ratelimit.Config{RedisTimeout: 20 * time.Millisecond}, lim, limits, discard())},
	}
	for _, sv := range hung {
		// A caller with no deadline of its own: only RedisTimeout ends it.
		resp, err := sv.s.ShouldRateLimit(context.Background(), req)
		switch {
		case sv.name == "fail-open" && (err != nil || resp.GetStatuses()[0].GetCurrentLimit() != nil):
			t.Errorf("fail-open, Redis hung: %v, %v; want a plain OK", resp, err)
		case sv.name == "fail-closed" && status.Code(err) != codes.Unavailable:
			t.Errorf("fail-closed, Redis hung: error %v, want Unavailable", err)
		}
	}
	srv.Resume()

	srv.Kill()
	for range 5 {
		resp, err := open.ShouldRateLimit(context.Background(), req)
		if err != nil {
			t.Fatalf("fail-open, Redis down: %v", err)
		}
		if resp.GetOverallCode() != ok || resp.GetStatuses()[0].GetCurrentLimit() != nil || len(resp.GetResponseHeadersToAdd()) != 0 {
			t.Fatalf("fail-open, Redis down: %v, want a plain OK", resp)
		}
		_, err = closed.ShouldRateLimit(context.Background(), req)
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("fail-closed, Redis down: error %v, want Unavailable", err)
		}
	}
	// Five failures per server, one log line each: the outage log is
	// throttled.
	if n := strings.Count(logs.String(), "redis unavailable"); n != len(servers) {
		t.Errorf("%d log lines for 10 failed decisions on 2 servers, want 2:\n%s", n, logs.String())
	}

	srv.Restart()
	for _, sv := range servers {
		err := redistest.Eventually(10*time.Second, func() error {
			return limited(sv.s.ShouldRateLimit(context.Background(), req))
		})
		if err != nil {
			t.Errorf("%s did not recover: %v", sv.name, err)
		}
	}
}
