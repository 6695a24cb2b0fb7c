package ratelimit_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
	"github.com/tollgate/tollgate/ratelimit"
	"github.com/tollgate/tollgate/ratelimit/internal/redistest"
	"github.com/tollgate/tollgate/ratelimit/limiter"
)

// BenchmarkShouldRateLimit measures whole decisions against the local Redis
// (REDIS_URL): descriptor parsing, limit lookup, the one EVALSHA round trip
// and the response with its headers, without gRPC. Serial runs show latency,
// parallel runs throughput. Besides ns/op and allocs/op it reports p50 and
// p99 latency per call, decisions (descriptors) per second, and this
// process's CPU per call.
func BenchmarkShouldRateLimit(b *testing.B) {
	rdb := redistest.Client(b)
	table := ratelimit.LimitTable{Defaults: map[string]ratelimit.Rates{}}
	for i := range 100 {
		// Limits high enough that every call is admitted and writes.
		table.Defaults[fmt.Sprintf("model-%03d", i)] = ratelimit.Rates{RPM: 1 << 40}
	}
	limits := staticLimits(b, table)
	cfg := ratelimit.Config{KeyPrefix: redistest.Prefix(b, rdb), RedisTimeout: time.Second}
	lim := limiter.New(rdb)
	if err := lim.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	s := ratelimit.NewServer(cfg, lim, limits, discard())

	// The floor: one bare round trip on the same client.
	b.Run("baseline=ping", func(b *testing.B) {
		measure(b, 0, false, func() error { return rdb.Ping(context.Background()).Err() })
	})
	for _, tc := range []struct {
		descriptors int
		parallel    bool
	}{{1, false}, {10, false}, {100, false}, {1, true}, {10, true}} {
		descs := make([]*ratelimitv3.RateLimitDescriptor, tc.descriptors)
		for i := range descs {
			descs[i] = descriptor("rpm", "bench", "", fmt.Sprintf("model-%03d", i))
		}
		req := request(descs...)
		name := fmt.Sprintf("descriptors=%d", tc.descriptors)
		if tc.parallel {
			name += "/parallel"
		}
		b.Run(name, func(b *testing.B) {
			measure(b, tc.descriptors, tc.parallel, func() error {
				resp, err := s.ShouldRateLimit(context.Background(), req)
				if err == nil && resp.GetOverallCode() != ok {
					err = fmt.Errorf("overall %v", resp.GetOverallCode())
				}
				return err
			})
		})
	}

	// The same ten descriptors naming an org Tollgate issued (the model defaults apply to
	// org-and-model scopes), checked through IssuedIDs (Postgres once, then its cache), as
	// production runs.
	store, pool := ledgertest.NewStore(b)
	org, err := store.CreateOrg(context.Background(), ledger.OrgOptions{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	cfg.IDs = ratelimit.NewIssuedIDs(pool)
	checked := ratelimit.NewServer(cfg, lim, limits, discard())
	descs := make([]*ratelimitv3.RateLimitDescriptor, 10)
	for i := range descs {
		descs[i] = descriptor("rpm", org, "", fmt.Sprintf("model-%03d", i))
	}
	req := request(descs...)
	b.Run("descriptors=10/issued-ids", func(b *testing.B) {
		measure(b, 10, false, func() error {
			resp, err := checked.ShouldRateLimit(context.Background(), req)
			if err == nil && resp.GetStatuses()[0].GetCurrentLimit() == nil {
				err = fmt.Errorf("not limited: %v", resp)
			}
			return err
		})
	})
}

// measure runs call b.N times, serially or from GOMAXPROCS goroutines, and
// reports per-call latency percentiles and decisions (descriptors decided)
// per second alongside ns/op and allocs/op.
func measure(b *testing.B, decisionsPerCall int, parallel bool, call func() error) {
	b.ReportAllocs()
	var (
		mu  sync.Mutex
		all = make([]time.Duration, 0, b.N)
	)
	run := func(next func() bool) {
		local := make([]time.Duration, 0, 1024)
		for next() {
			start := time.Now()
			if err := call(); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(start))
		}
		mu.Lock()
		all = append(all, local...)
		mu.Unlock()
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	if parallel {
		b.RunParallel(func(pb *testing.PB) { run(pb.Next) })
	} else {
		n := 0
		run(func() bool { n++; return n <= b.N })
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()

	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	if decisionsPerCall > 0 {
		b.ReportMetric(float64(len(all)*decisionsPerCall)/elapsed.Seconds(), "decisions/s")
	}
	// This process's CPU (server and Redis client, not Redis itself), the
	// figure docs/design.md compares with envoyproxy/ratelimit.
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/op")
}

// cpuTime is the user plus system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
