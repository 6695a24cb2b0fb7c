package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
)

func TestPlaceHold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := ledgertest.NewStore(t)
	orgID, keyID := newOrg(t, s, 1_000)
	const unknown = "0b7e8d2a-6c1f-4e7b-9a3d-2f5c8e1b4a60"

	// Steps share one org and run in order; wantHeld is the org's held amount after each.
	tests := []struct {
		name     string
		hold     ledger.Hold
		wantErr  error
		wantHeld int64
	}{
		{name: "fits", hold: hold("r1", orgID, keyID, 600), wantHeld: 600},
		{name: "same request again is a no-op", hold: hold("r1", orgID, keyID, 600), wantHeld: 600},
		{name: "same request, other amount keeps the first", hold: hold("r1", orgID, keyID, 5), wantHeld: 600},
		{name: "does not fit", hold: hold("r2", orgID, keyID, 401), wantErr: ledger.ErrInsufficientCredit, wantHeld: 600},
		{name: "fits exactly", hold: hold("r3", orgID, keyID, 400), wantHeld: 1_000},
		{name: "zero always fits", hold: hold("r4", orgID, "", 0), wantHeld: 1_000},
		{name: "nothing left", hold: hold("r5", orgID, keyID, 1), wantErr: ledger.ErrInsufficientCredit, wantHeld: 1_000},
		{name: "unknown org", hold: hold("r6", unknown, keyID, 1), wantErr: ledger.ErrNotFound, wantHeld: 1_000},
		{name: "unknown key", hold: hold("r7", orgID, unknown, 0), wantErr: ledger.ErrNotFound, wantHeld: 1_000},
		{name: "negative amount", hold: hold("r8", orgID, keyID, -1), wantErr: errAny, wantHeld: 1_000},
		{name: "no request id", hold: hold("", orgID, keyID, 1), wantErr: errAny, wantHeld: 1_000},
		{name: "no expiry", hold: ledger.Hold{RequestID: "r9", OrgID: orgID, AmountMicros: 1}, wantErr: errAny, wantHeld: 1_000},
		{name: "input charge above the hold", hold: ledger.Hold{RequestID: "r11", OrgID: orgID, AmountMicros: 0, InputMicros: 1, ExpiresAt: time.Now().Add(time.Minute)}, wantErr: errAny, wantHeld: 1_000},
		{name: "negative input charge", hold: ledger.Hold{RequestID: "r12", OrgID: orgID, AmountMicros: 0, InputMicros: -1, ExpiresAt: time.Now().Add(time.Minute)}, wantErr: errAny, wantHeld: 1_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.PlaceHold(ctx, tt.hold); !matches(err, tt.wantErr) {
				t.Fatalf("PlaceHold: %v; want %v", err, tt.wantErr)
			}
			wantMoney(t, s, orgID, 1_000, tt.wantHeld)
		})
	}

	t.Run("release", func(t *testing.T) {
		for _, id := range []string{"r1", "r1", "never-held"} { // twice: idempotent
			if err := s.ReleaseHold(ctx, id); err != nil {
				t.Fatalf("ReleaseHold(%s): %v", id, err)
			}
		}
		wantMoney(t, s, orgID, 1_000, 400)
		if err := s.PlaceHold(ctx, hold("r10", orgID, keyID, 600)); err != nil {
			t.Errorf("PlaceHold after release: %v", err)
		}
	})
}

// TestPlaceHoldRace races many requests for credit that covers only some of them: exactly
// floor(credit/amount) must be admitted, and balance - held must never go negative.
func TestPlaceHoldRace(t *testing.T) {
	t.Parallel()
	const (
		racers = 200
		amount = 1_000
		credit = 50*amount + amount/2 // covers 50.5 holds
	)
	ctx := context.Background()
	s, _ := ledgertest.NewStore(t)
	orgID, keyID := newOrg(t, s, credit)

	var admitted, refused atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			err := s.PlaceHold(ctx, hold(fmt.Sprintf("race-%d", i), orgID, keyID, amount))
			switch {
			case err == nil:
				admitted.Add(1)
			case errors.Is(err, ledger.ErrInsufficientCredit):
				refused.Add(1)
			default:
				t.Errorf("PlaceHold: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()

	if got, want := admitted.Load(), int64(credit/amount); got != want {
		t.Errorf("admitted %d holds; want %d", got, want)
	}
	if got := admitted.Load() + refused.Load(); got != racers {
		t.Errorf("%d outcomes; want %d", got, racers)
	}
	o, err := s.Org(ctx, orgID)
	if err != nil {
		t.Fatal(err)
	}
	if avail := o.BalanceMicros - o.HeldMicros; avail < 0 || avail != credit%amount {
		t.Errorf("balance - held = %d; want %d", avail, credit%amount)
	}
	wantMoney(t, s, orgID, credit, admitted.Load()*amount)
}

// TestHoldSettleRace runs whole requests (hold, then settle for less) concurrently; the ledger
// must end consistent with no hold left and no overdraft.
func TestHoldSettleRace(t *testing.T) {
	t.Parallel()
	const (
		racers = 100
		amount = 1_000
		cost   = 400
		credit = 20 * amount
	)
	ctx := context.Background()
	s, _ := ledgertest.NewStore(t)
	orgID, keyID := newOrg(t, s, credit)

	var settled atomic.Int64
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			id := fmt.Sprintf("req-%d", i)
			err := s.PlaceHold(ctx, hold(id, orgID, keyID, amount))
			if errors.Is(err, ledger.ErrInsufficientCredit) {
				return
			}
			if err != nil {
				t.Errorf("PlaceHold: %v", err)
				return
			}
			if _, err := s.Settle(ctx, ledger.Usage{RequestID: id, OrgID: orgID, KeyID: keyID, Status: 200, CostMicros: cost}); err != nil {
				t.Errorf("Settle: %v", err)
				return
			}
			settled.Add(1)
		})
	}
	wg.Wait()
	n := settled.Load()
	if n < credit/amount {
		t.Errorf("only %d requests admitted; at least %d fit", n, credit/amount)
	}
	wantMoney(t, s, orgID, credit-n*cost, 0)
	if bal, _ := s.Balance(ctx, orgID); bal < 0 {
		t.Errorf("balance %d < 0", bal)
	}
}

func TestExpireHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := ledgertest.NewStore(t)
	orgA, keyA := newOrg(t, s, 10_000)
	orgB, _ := newOrg(t, s, 10_000)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	holds := []ledger.Hold{
		{RequestID: "a-old", OrgID: orgA, KeyID: keyA, AmountMicros: 100, InputMicros: 30, ExpiresAt: now.Add(-time.Hour)},
		{RequestID: "a-due", OrgID: orgA, KeyID: keyA, AmountMicros: 200, InputMicros: 20, ExpiresAt: now},
		{RequestID: "a-live", OrgID: orgA, KeyID: keyA, AmountMicros: 400, InputMicros: 400, ExpiresAt: now.Add(time.Second)},
		{RequestID: "b-old", OrgID: orgB, AmountMicros: 800, ExpiresAt: now.Add(-time.Minute)},
	}
	for _, h := range holds {
		if err := s.PlaceHold(ctx, h); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name               string
		at                 time.Time
		want               []ledger.Hold
		balanceA, balanceB int64
		heldA, heldB       int64
	}{
		{name: "first sweep charges each expired hold its input", at: now, want: []ledger.Hold{holds[0], holds[3], holds[1]},
			balanceA: 10_000 - 30 - 20, heldA: 400, balanceB: 10_000},
		{name: "second sweep finds nothing", at: now, balanceA: 9_950, heldA: 400, balanceB: 10_000},
		{name: "later sweep", at: now.Add(time.Hour), want: []ledger.Hold{holds[2]}, balanceA: 9_550, balanceB: 10_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ExpireHolds(ctx, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("expired %+v; want %+v", got, tt.want)
			}
			for i := range got {
				w := tt.want[i]
				if got[i].RequestID != w.RequestID || got[i].OrgID != w.OrgID || got[i].KeyID != w.KeyID ||
					got[i].AmountMicros != w.AmountMicros || got[i].InputMicros != w.InputMicros ||
					!got[i].ExpiresAt.Equal(w.ExpiresAt) || !got[i].Charged {
					t.Errorf("expired[%d] = %+v; want %+v, charged", i, got[i], w)
				}
			}
			wantMoney(t, s, orgA, tt.balanceA, tt.heldA)
			wantMoney(t, s, orgB, tt.balanceB, tt.heldB)
		})
	}
	u, err := s.UsageByRequest(ctx, "a-due")
	if err != nil || u.CostMicros != 20 || u.FinishReason != "hold_expired" || u.Status != 0 || u.KeyID != keyA {
		t.Errorf("usage of an expired hold = %+v, %v; want a 20 µUSD hold_expired record", u, err)
	}

	// A request whose hold expired still settles in full: its real settlement replaces the input
	// charge (30) and the difference is an adjustment. Once: a replay changes nothing.
	for range 2 {
		if _, err := s.Settle(ctx, ledger.Usage{RequestID: "a-old", OrgID: orgA, KeyID: keyA, Status: 200, CostMicros: 50}); err != nil {
			t.Fatalf("Settle after expiry: %v", err)
		}
		wantMoney(t, s, orgA, 9_550-20, 0)
	}
	if u, err := s.UsageByRequest(ctx, "a-old"); err != nil || u.CostMicros != 50 || u.Status != 200 {
		t.Errorf("usage after the late settlement = %+v, %v", u, err)
	}
	if n := count(t, pool, `SELECT count(*) FROM ledger_entries WHERE request_id = 'a-old' AND kind = 'adjustment' AND amount_micros = -20`); n != 1 {
		t.Errorf("%d adjustments of -20 for the late settlement; want 1", n)
	}
	// A late release (a request that failed, whose release waited in a spool) refunds the input
	// charge, once.
	for range 2 {
		if err := s.ReleaseHold(ctx, "a-due"); err != nil {
			t.Fatal(err)
		}
		wantMoney(t, s, orgA, 9_530+20, 0)
	}
	// Neither a release nor a settlement touches a request settled for real.
	if err := s.ReleaseHold(ctx, "a-old"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Settle(ctx, ledger.Usage{RequestID: "a-due", OrgID: orgA, Status: 200, CostMicros: 1}); err != nil {
		t.Fatal(err)
	}
	wantMoney(t, s, orgA, 9_550, 0)
}

// TestExpireRacesSettlement races sweepers against real settlements of the same requests, whose
// holds have all expired: whoever wins, each request ends charged exactly its real cost, held
// returns to zero and the balance reconciles.
func TestExpireRacesSettlement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := ledgertest.NewStore(t)
	const n, amount, input, cost = 60, 1_000, 100, 300
	org, key := newOrg(t, s, n*amount)
	past := time.Now().Add(-time.Minute)
	for i := range n {
		h := ledger.Hold{RequestID: fmt.Sprintf("race-%d", i), OrgID: org, KeyID: key, AmountMicros: amount, InputMicros: input, ExpiresAt: past}
		if err := s.PlaceHold(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 5 {
				if _, err := s.ExpireHolds(ctx, time.Now()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range n {
		wg.Go(func() {
			u := ledger.Usage{RequestID: fmt.Sprintf("race-%d", i), OrgID: org, KeyID: key, Status: 200, CostMicros: cost}
			var err error
			if i%2 == 0 {
				_, err = s.Settle(ctx, u)
			} else {
				_, err = s.SettleBatch(ctx, []ledger.Usage{u})
			}
			for err != nil && !ledger.Permanent(err) { // a deadlock victim retries, as the spool does
				_, err = s.Settle(ctx, u)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := s.ExpireHolds(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	wantMoney(t, s, org, n*amount-n*cost, 0)
	if got := count(t, pool, `SELECT count(*) FROM usage_records WHERE cost_micros = $1 AND NOT provisional`, cost); got != n {
		t.Errorf("%d requests settled at their real cost; want %d", got, n)
	}
	if got := count(t, pool, `SELECT count(*) FROM ledger_entries WHERE kind = 'usage'`); got != n {
		t.Errorf("%d usage entries; want one per request, %d", got, n)
	}
}
