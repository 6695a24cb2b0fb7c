package ledger_test

import (
	"context"
	"fmt"
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
