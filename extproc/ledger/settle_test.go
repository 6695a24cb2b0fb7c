package ledger_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
)

func TestSettle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := ledgertest.NewStore(t)
	orgID, keyID := newOrg(t, s, 10_000)
	const unknown = "0b7e8d2a-6c1f-4e7b-9a3d-2f5c8e1b4a60"

	// Steps share one org and run in order.
	tests := []struct {
		name        string
		holdMicros  int64 // a hold placed first, if > 0
		usage       ledger.Usage
		wantCharged bool
		wantErr     error
		wantBalance int64
	}{
		{name: "no hold", usage: ledger.Usage{RequestID: "s1", CostMicros: 1_000},
			wantCharged: true, wantBalance: 9_000},
		{name: "again is a no-op", usage: ledger.Usage{RequestID: "s1", CostMicros: 1_000},
			wantBalance: 9_000},
		{name: "again with another cost is still a no-op", usage: ledger.Usage{RequestID: "s1", CostMicros: 7},
			wantBalance: 9_000},
		{name: "releases its hold", holdMicros: 3_000, usage: ledger.Usage{RequestID: "s2", CostMicros: 2_500},
			wantCharged: true, wantBalance: 6_500},
		{name: "free request", holdMicros: 100, usage: ledger.Usage{RequestID: "s3"},
			wantCharged: true, wantBalance: 6_500},
		{name: "cost above its hold is still charged", holdMicros: 1_000, usage: ledger.Usage{RequestID: "s4", CostMicros: 1_500},
			wantCharged: true, wantBalance: 5_000},
		{name: "negative cost", usage: ledger.Usage{RequestID: "s5", CostMicros: -1},
			wantErr: errAny, wantBalance: 5_000},
		{name: "no request id", usage: ledger.Usage{CostMicros: 1},
			wantErr: errAny, wantBalance: 5_000},
		{name: "unknown org", usage: ledger.Usage{RequestID: "s6", OrgID: unknown, CostMicros: 1},
			wantErr: ledger.ErrNotFound, wantBalance: 5_000},
		{name: "unknown key", usage: ledger.Usage{RequestID: "s7", KeyID: unknown, CostMicros: 1},
			wantErr: ledger.ErrNotFound, wantBalance: 5_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.usage
			if u.OrgID == "" {
				u.OrgID = orgID
			}
			if u.KeyID == "" {
				u.KeyID = keyID
			}
			u.Status = 200
			if tt.holdMicros > 0 {
				if err := s.PlaceHold(ctx, hold(u.RequestID, orgID, keyID, tt.holdMicros)); err != nil {
					t.Fatal(err)
				}
			}
			charged, err := s.Settle(ctx, u)
			if !matches(err, tt.wantErr) {
				t.Fatalf("Settle: %v; want %v", err, tt.wantErr)
			}
			if charged != tt.wantCharged {
				t.Errorf("charged = %v; want %v", charged, tt.wantCharged)
			}
			wantMoney(t, s, orgID, tt.wantBalance, 0)
		})
	}
	if got := count(t, pool, `SELECT count(*) FROM ledger_entries WHERE kind = 'usage'`); got != 4 {
		t.Errorf("%d usage entries; want 4", got)
	}
	if got := count(t, pool, `SELECT count(*) FROM usage_records`); got != 4 {
		t.Errorf("%d usage records; want 4", got)
	}

	// A settled request cannot be held again (a late retry of PlaceHold must not strand credit).
	if err := s.PlaceHold(ctx, hold("s1", orgID, keyID, 100)); err != nil {
		t.Errorf("PlaceHold of a settled request: %v; want nil", err)
	}
	wantMoney(t, s, orgID, 5_000, 0)
}

func TestSettleConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	const dupes = 20
	ctx := context.Background()
	s, pool := ledgertest.NewStore(t)
	orgID, keyID := newOrg(t, s, 10_000)
	if err := s.PlaceHold(ctx, hold("dup", orgID, keyID, 5_000)); err != nil {
		t.Fatal(err)
	}

	var charged atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range dupes {
		wg.Go(func() {
			<-start
			ok, err := s.Settle(ctx, ledger.Usage{RequestID: "dup", OrgID: orgID, KeyID: keyID, Status: 200, CostMicros: 1_234})
			if err != nil {
				t.Errorf("Settle: %v", err)
			}
			if ok {
				charged.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()

	if got := charged.Load(); got != 1 {
		t.Errorf("%d calls charged; want 1", got)
	}
	wantMoney(t, s, orgID, 10_000-1_234, 0)
	if got := count(t, pool, `SELECT count(*) FROM ledger_entries WHERE request_id = 'dup'`); got != 1 {
		t.Errorf("%d ledger entries for the request; want 1", got)
	}
}

// TestSettleSurvivesCancel checks that a client going away cannot lose a charge.
func TestSettleSurvivesCancel(t *testing.T) {
	t.Parallel()
	s, _ := ledgertest.NewStore(t)
	orgID, keyID := newOrg(t, s, 1_000)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	charged, err := s.Settle(ctx, ledger.Usage{RequestID: "gone", OrgID: orgID, KeyID: keyID, Status: 200, CostMicros: 10})
	if err != nil || !charged {
		t.Fatalf("Settle with a cancelled context = %v, %v; want true, nil", charged, err)
	}
	wantMoney(t, s, orgID, 990, 0)
}

func TestUsageByRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := ledgertest.NewStore(t)
	orgID, keyID := newOrg(t, s, 1_000_000)
	created := time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

	tests := []struct {
		name string
		in   ledger.Usage
		want ledger.Usage // zero: same as in
	}{
		{name: "full", in: ledger.Usage{
			RequestID: "u1", OrgID: orgID, KeyID: keyID, Endpoint: "/v1/chat/completions",
			RequestedModel: "gpt-4o", Model: "openai/gpt-4o", Provider: "openai", Region: "us",
			Status: 200, FinishReason: "stop", Streamed: true,
			PromptTokens: 1, CompletionTokens: 2, CachedReadTokens: 3, CacheWriteTokens: 4, ReasoningTokens: 5,
			CostMicros: 1_100, ExcessMicros: 7, CostItems: map[string]int64{"prompt": 400, "completion": 600},
			Latency: 1500 * time.Millisecond, TimeToFirstToken: 250 * time.Millisecond, CreatedAt: created,
			Attempts: []ledger.Attempt{{Backend: "openai/gpt-4o", Status: 503, LatencyMs: 40}, {Backend: "azure/gpt-4o", Status: 200, LatencyMs: 900}},
		}},
		{name: "minimal", in: ledger.Usage{RequestID: "u2", OrgID: orgID, Status: 502, CreatedAt: created},
			want: ledger.Usage{RequestID: "u2", OrgID: orgID, Status: 502, CostItems: map[string]int64{}, CreatedAt: created}},
		{name: "sub-millisecond durations are truncated", in: ledger.Usage{
			RequestID: "u3", OrgID: orgID, Status: 200, CostItems: map[string]int64{},
			Latency: 2_999 * time.Microsecond, TimeToFirstToken: 1_500 * time.Microsecond, CreatedAt: created},
			want: ledger.Usage{RequestID: "u3", OrgID: orgID, Status: 200, CostItems: map[string]int64{},
				Latency: 2 * time.Millisecond, TimeToFirstToken: time.Millisecond, CreatedAt: created}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Settle(ctx, tt.in); err != nil {
				t.Fatal(err)
			}
			got, err := s.UsageByRequest(ctx, tt.in.RequestID)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want.RequestID == "" {
				want = tt.in
			}
			if !equalUsage(got, want) {
				t.Errorf("UsageByRequest =\n%+v\nwant\n%+v", got, want)
			}
		})
	}

	t.Run("created now by default", func(t *testing.T) {
		before := time.Now().Add(-time.Minute) // generous: the server's clock, not ours
		if _, err := s.Settle(ctx, ledger.Usage{RequestID: "u4", OrgID: orgID, Status: 200}); err != nil {
			t.Fatal(err)
		}
		got, err := s.UsageByRequest(ctx, "u4")
		if err != nil {
			t.Fatal(err)
		}
		if got.CreatedAt.Before(before) {
			t.Errorf("CreatedAt = %v; want about now", got.CreatedAt)
		}
	})

	if _, err := s.UsageByRequest(ctx, "nope"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("UsageByRequest(unknown): %v; want ErrNotFound", err)
	}
}

func equalUsage(a, b ledger.Usage) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) || !maps.Equal(a.CostItems, b.CostItems) {
		return false
	}
	a.CreatedAt, b.CreatedAt = time.Time{}, time.Time{}
	a.CostItems, b.CostItems = nil, nil
	return reflect.DeepEqual(a, b)
}
