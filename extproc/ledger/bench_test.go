package ledger_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
)

// BenchmarkPlaceHoldSettle measures the ledger's share of one request: a hold before going
// upstream and its settlement after, two round trips. "parallel" puts every request on the
// same org, the worst case for contention on its balance row: each statement holds that row's
// lock until its commit is flushed, so one org's requests are serialised on commit latency.
// "parallel-orgs" gives each goroutine its own org, for the server's throughput without it.
func BenchmarkPlaceHoldSettle(b *testing.B) {
	run := func(b *testing.B, s *ledger.Store, orgID, keyID string, id string) {
		ctx := context.Background()
		h := ledger.Hold{RequestID: id, OrgID: orgID, KeyID: keyID, AmountMicros: 5_000, ExpiresAt: time.Now().Add(time.Minute)}
		if err := s.PlaceHold(ctx, h); err != nil {
			b.Fatal(err)
		}
		u := ledger.Usage{
			RequestID: id, OrgID: orgID, KeyID: keyID, Endpoint: "/v1/chat/completions",
			RequestedModel: "gpt-4o", Model: "openai/gpt-4o", Provider: "openai", Status: 200, FinishReason: "stop",
			PromptTokens: 100, CompletionTokens: 200, CostMicros: 1_100,
			CostItems: map[string]int64{"prompt": 250, "completion": 750}, Latency: time.Second,
		}
		if charged, err := s.Settle(ctx, u); err != nil || !charged {
			b.Fatal(charged, err)
		}
	}

	b.Run("sequential", func(b *testing.B) {
		s, _ := ledgertest.NewStore(b)
		orgID, keyID := newOrg(b, s, 1<<50)
		i := 0
		for b.Loop() {
			i++
			run(b, s, orgID, keyID, fmt.Sprintf("seq-%d", i))
		}
	})
	b.Run("parallel", func(b *testing.B) {
		s, _ := ledgertest.NewStore(b)
		orgID, keyID := newOrg(b, s, 1<<50)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				run(b, s, orgID, keyID, fmt.Sprintf("par-%d", n.Add(1)))
			}
		})
	})
	b.Run("parallel-orgs", func(b *testing.B) {
		s, _ := ledgertest.NewStore(b)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			orgID, keyID := newOrg(b, s, 1<<50)
			for pb.Next() {
				run(b, s, orgID, keyID, fmt.Sprintf("orgs-%d", n.Add(1)))
			}
		})
	})
}

// BenchmarkPlaceHoldLatency measures what the hold adds to a request's path, as the extproc
// sees it: one PlaceHold round trip, reported as p50 and p99 in microseconds. "idle" is one
// request at a time; "contended" has 16 concurrent requests of one org, all queueing on its
// balance row (the worst case for a single busy customer).
func BenchmarkPlaceHoldLatency(b *testing.B) {
	for _, conc := range []int{1, 16} {
		name := "idle"
		if conc > 1 {
			name = fmt.Sprintf("contended-%d", conc)
		}
		b.Run(name, func(b *testing.B) {
			s, _ := ledgertest.NewStore(b)
			orgID, keyID := newOrg(b, s, 1<<50)
			var n atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			// SetParallelism multiplies GOMAXPROCS; conc/2 gives conc callers on this 2-core box,
			// and "idle" runs the loop on one goroutine.
			b.SetParallelism(max(conc/2, 1))
			b.ResetTimer()
			run := func(next func() bool) {
				local := make([]time.Duration, 0, 1024)
				for next() {
					h := ledger.Hold{RequestID: fmt.Sprintf("lat-%d", n.Add(1)), OrgID: orgID, KeyID: keyID,
						AmountMicros: 5_000, ExpiresAt: time.Now().Add(time.Minute)}
					t0 := time.Now()
					if err := s.PlaceHold(context.Background(), h); err != nil {
						b.Error(err)
						return
					}
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}
			if conc == 1 {
				run(b.Loop)
			} else {
				b.RunParallel(func(pb *testing.PB) { run(pb.Next) })
			}
			b.StopTimer()
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
		})
	}
}

// BenchmarkSettleBatch measures SettleBatch alone, at the spool's default batch size.
func BenchmarkSettleBatch(b *testing.B) {
	s, _ := ledgertest.NewStore(b)
	orgs := make([]string, 8)
	for i := range orgs {
		orgs[i], _ = newOrg(b, s, 1<<50)
	}
	const size = 256
	i := 0
	for b.Loop() {
		batch := make([]ledger.Usage, size)
		for j := range batch {
			i++
			batch[j] = usage(fmt.Sprintf("sb-%d", i), orgs[j%len(orgs)], "", 1_000)
		}
		if _, err := s.SettleBatch(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "settlements/s")
}
