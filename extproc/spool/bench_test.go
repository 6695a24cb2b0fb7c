package spool

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
)

// countingStore counts batches on their way to the real ledger.
type countingStore struct {
	*ledger.Store
	batches, rows atomic.Int64
}

func (c *countingStore) SettleBatch(ctx context.Context, us []ledger.Usage) ([]bool, error) {
	c.batches.Add(1)
	c.rows.Add(int64(len(us)))
	return c.Store.SettleBatch(ctx, us)
}

// BenchmarkPipelineSettle measures settlements per second sustained into Postgres through the
// whole pipeline: Settle (spool append + group-commit fsync) by many concurrent callers, then
// the writer's batches (default policy: up to 256 records or 5 ms) until every one is in
// Postgres. The clock stops only when the spool is drained, so settlements/s is end to end.
// Holds are placed beforehand, outside the timer, so each settlement also releases one.
func BenchmarkPipelineSettle(b *testing.B) {
	for _, orgs := range []int{1, 16} {
		b.Run(fmt.Sprintf("orgs=%d", orgs), func(b *testing.B) {
			s, _ := ledgertest.NewStore(b)
			ctx := context.Background()
			orgIDs := make([]string, orgs)
			for i := range orgIDs {
				id, err := s.CreateOrg(ctx, ledger.OrgOptions{Name: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.AddCredits(ctx, id, 1<<50, "bench"); err != nil {
					b.Fatal(err)
				}
				orgIDs[i] = id
			}
			store := &countingStore{Store: s}
			p, err := Open(Config{Dir: b.TempDir()}, store, quiet())
			if err != nil {
				b.Fatal(err)
			}
			var seq atomic.Int64
			usageFor := func(i int64) ledger.Usage {
				u := testUsage(fmt.Sprintf("bench_%d", i))
				u.OrgID = orgIDs[int(i)%orgs]
				return u
			}
			b.SetParallelism(32) // 64 concurrent callers on 2 cores: a busy extproc
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := p.Settle(ctx, usageFor(seq.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			for p.Pending() > 0 {
				select {
				case <-p.progress:
				case <-time.After(time.Second):
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "settlements/s")
			if n := store.batches.Load(); n > 0 {
				b.ReportMetric(float64(store.rows.Load())/float64(n), "rows/batch")
			}
			b.ReportMetric(float64(p.flushes.Load()), "fsyncs")
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := p.Close(cctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
