package ratelimit_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate/tollgate/ratelimit"
	"github.com/tollgate/tollgate/ratelimit/internal/redistest"
	"github.com/tollgate/tollgate/ratelimit/limiter"
)

// clock is a test clock that only moves when told to.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newServer returns a Server on the shared Redis with its own key prefix and
// a controllable clock.
func newServer(t testing.TB, limits ratelimit.Limits) (*ratelimit.Server, *clock) {
	t.Helper()
	rdb := redistest.Client(t)
	c := newClock()
	cfg := ratelimit.Config{KeyPrefix: redistest.Prefix(t, rdb), RedisTimeout: time.Second}
	return ratelimit.NewServer(cfg, limiter.New(rdb, limiter.WithClock(c.Now)), limits, discard()), c
}

func staticLimits(t testing.TB, table ratelimit.LimitTable) *ratelimit.StaticLimits {
	t.Helper()
	l, err := ratelimit.NewStaticLimits(table)
	if err != nil {
		t.Fatalf("NewStaticLimits: %v", err)
	}
	return l
}

// descriptor builds a descriptor in the contract's shape; empty key or
// model are left out.
func descriptor(quota ratelimit.Quota, org, key, model string) *ratelimitv3.RateLimitDescriptor {
	entries := []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "quota", Value: string(quota)}, {Key: "org", Value: org}}
	if key != "" {
		entries = append(entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: "key", Value: key})
	}
	if model != "" {
		entries = append(entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: "model", Value: model})
	}
	return &ratelimitv3.RateLimitDescriptor{Entries: entries}
}

// withHits sets the descriptor's hits_addend, as the token rules do.
func withHits(d *ratelimitv3.RateLimitDescriptor, n uint64) *ratelimitv3.RateLimitDescriptor {
	d.HitsAddend = wrapperspb.UInt64(n)
	return d
}

func request(ds ...*ratelimitv3.RateLimitDescriptor) *rlsv3.RateLimitRequest {
	return &rlsv3.RateLimitRequest{Domain: ratelimit.Domain, Descriptors: ds}
}

func call(t testing.TB, s *ratelimit.Server, req *rlsv3.RateLimitRequest) *rlsv3.RateLimitResponse {
	t.Helper()
	resp, err := s.ShouldRateLimit(context.Background(), req)
	if err != nil {
		t.Fatalf("ShouldRateLimit: %v", err)
	}
	if got, want := len(resp.GetStatuses()), len(req.GetDescriptors()); got != want {
		t.Fatalf("%d statuses for %d descriptors", got, want)
	}
	return resp
}

func headers(resp *rlsv3.RateLimitResponse) map[string]string {
	h := make(map[string]string)
	for _, v := range resp.GetResponseHeadersToAdd() {
		h[v.GetKey()] = v.GetValue()
	}
	return h
}
