package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
)

func usage(reqID, orgID, keyID string, cost int64) ledger.Usage {
	return ledger.Usage{
		RequestID: reqID, OrgID: orgID, KeyID: keyID, Endpoint: "chat_completions",
		RequestedModel: "gpt-4o-mini", Model: "mock-gpt", Provider: "mock", Region: "global",
		Status: 200, FinishReason: "stop", PromptTokens: 10, CompletionTokens: 20,
		CostMicros: cost, CostItems: map[string]int64{"prompt": cost / 4, "completion": cost - cost/4},
		Latency: 150 * time.Millisecond, TimeToFirstToken: 40 * time.Millisecond,
	}
}

func TestSettleBatch(t *testing.T) {
	s, pool := ledgertest.NewStore(t)
	ctx := context.Background()
	orgA, keyA := newOrg(t, s, 1_000_000)
	orgB, _ := newOrg(t, s, 500_000)

	a1, a2, b1 := requestID("a"), requestID("a"), requestID("b")
	for _, h := range []ledger.Hold{hold(a1, orgA, keyA, 10_000), hold(a2, orgA, keyA, 20_000), hold(b1, orgB, "", 30_000)} {
		if err := s.PlaceHold(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	noHold := requestID("a") // settled without a hold: a replay after the hold expired
	withExcess := usage(a1, orgA, keyA, 1_000)
	withExcess.ExcessMicros = 11
	batch := []ledger.Usage{
		withExcess,
		usage(b1, orgB, "", 3_000),
		usage(a2, orgA, keyA, 2_000),
		usage(a1, orgA, keyA, 9_999), // duplicate within the batch: the first one is the charge
		usage(noHold, orgA, "", 500),
	}
	charged, err := s.SettleBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, true, false, true}; !equal(charged, want) {
		t.Errorf("charged = %v, want %v", charged, want)
	}
	wantMoney(t, s, orgA, 1_000_000-1_000-2_000-500, 0)
	wantMoney(t, s, orgB, 500_000-3_000, 0)

	got, err := s.UsageByRequest(ctx, a1)
	if err != nil {
		t.Fatal(err)
	}
	if got.CostMicros != 1_000 || got.ExcessMicros != 11 || got.KeyID != keyA || got.TimeToFirstToken != 40*time.Millisecond || got.CostItems["completion"] != 750 {
		t.Errorf("usage record = %+v", got)
	}

	// The same settlements delivered again (a spool replay) charge nothing.
	charged, err = s.SettleBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, false, false, false, false}; !equal(charged, want) {
		t.Errorf("replay: charged = %v, want %v", charged, want)
	}
	wantMoney(t, s, orgA, 1_000_000-3_500, 0)
	if n := count(t, pool, `SELECT count(*) FROM ledger_entries WHERE kind = 'usage'`); n != 4 {
		t.Errorf("usage ledger entries = %d, want 4", n)
	}
}

func TestSettleBatchConcurrentDuplicates(t *testing.T) {
	s, pool := ledgertest.NewStore(t)
	orgA, keyA := newOrg(t, s, 10_000_000)
	orgB, keyB := newOrg(t, s, 10_000_000)
	var batch []ledger.Usage
	for i := range 60 {
		org, key := orgA, keyA
		if i%2 == 1 {
			org, key = orgB, keyB
		}
		id := requestID("dup")
		if err := s.PlaceHold(context.Background(), hold(id, org, key, 5_000)); err != nil {
			t.Fatal(err)
		}
		batch = append(batch, usage(id, org, key, 1_000))
	}
	// Eight writers deliver the same settlements in different orders at once, as several
	// instances replaying one spool would.
	const writers = 8
	var wg sync.WaitGroup
	totals := make([]int, writers)
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			b := append([]ledger.Usage(nil), batch...)
			if w%2 == 1 {
				for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
					b[i], b[j] = b[j], b[i]
				}
			}
			for {
				charged, err := s.SettleBatch(context.Background(), b)
				if err != nil && !ledger.Permanent(err) {
					continue // a deadlock or serialisation failure is retried, like the spool does
				}
				errs[w] = err
				for _, c := range charged {
					if c {
						totals[w]++
					}
				}
				return
			}
		})
	}
	wg.Wait()
	sum := 0
	for w := range writers {
		if errs[w] != nil {
			t.Fatalf("writer %d: %v", w, errs[w])
		}
		sum += totals[w]
	}
	if sum != len(batch) {
		t.Errorf("charges reported = %d, want %d", sum, len(batch))
	}
	wantMoney(t, s, orgA, 10_000_000-30*1_000, 0)
	wantMoney(t, s, orgB, 10_000_000-30*1_000, 0)
	if n := count(t, pool, `SELECT count(*) FROM ledger_entries WHERE kind = 'usage'`); n != len(batch) {
		t.Errorf("usage ledger entries = %d, want %d", n, len(batch))
	}
}

func TestSettleBatchErrors(t *testing.T) {
	s, pool := ledgertest.NewStore(t)
	org, key := newOrg(t, s, 1_000_000)
	tests := []struct {
		name string
		u    ledger.Usage
		want error
	}{
		{name: "unknown org", u: usage(requestID("e"), "00000000-0000-0000-0000-000000000001", "", 1), want: ledger.ErrNotFound},
		{name: "malformed org", u: usage(requestID("e"), "acme", "", 1), want: ledger.ErrNotFound},
		{name: "unknown key", u: usage(requestID("e"), org, "00000000-0000-0000-0000-000000000001", 1), want: ledger.ErrNotFound},
		{name: "negative cost", u: usage(requestID("e"), org, key, -1), want: ledger.ErrInvalid},
		{name: "no request id", u: usage("", org, key, 1), want: ledger.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := usage(requestID("good"), org, key, 7)
			_, err := s.SettleBatch(context.Background(), []ledger.Usage{good, tt.u})
			if !errors.Is(err, tt.want) || !ledger.Permanent(err) {
				t.Errorf("err = %v, want %v and permanent", err, tt.want)
			}
		})
	}
	// A failed batch writes nothing, not even its good items.
	wantMoney(t, s, org, 1_000_000, 0)
	if n := count(t, pool, `SELECT count(*) FROM usage_records`); n != 0 {
		t.Errorf("usage records = %d, want 0", n)
	}
	if ledger.Permanent(context.DeadlineExceeded) {
		t.Error("a timeout must be retryable")
	}
}

func TestReleaseHolds(t *testing.T) {
	s, _ := ledgertest.NewStore(t)
	ctx := context.Background()
	orgA, _ := newOrg(t, s, 100_000)
	orgB, _ := newOrg(t, s, 100_000)
	ids := []string{requestID("r"), requestID("r"), requestID("r")}
	for i, id := range ids {
		org := orgA
		if i == 2 {
			org = orgB
		}
		if err := s.PlaceHold(ctx, hold(id, org, "", 10_000)); err != nil {
			t.Fatal(err)
		}
	}
	kept := requestID("r")
	if err := s.PlaceHold(ctx, hold(kept, orgA, "", 1_000)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second call finds nothing to release
		if err := s.ReleaseHolds(ctx, append(ids, "never-held")); err != nil {
			t.Fatal(err)
		}
		wantMoney(t, s, orgA, 100_000, 1_000)
		wantMoney(t, s, orgB, 100_000, 0)
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
