package spool

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

// lossyStore is the real ledger behind a connection that drops every reply while lose is set:
// the batch is committed, but the pipeline sees an error — the case that makes idempotency
// necessary.
type lossyStore struct {
	*ledger.Store
	lose atomic.Int32 // replies still to drop
}

func (l *lossyStore) SettleBatch(ctx context.Context, us []ledger.Usage) ([]bool, error) {
	charged, err := l.Store.SettleBatch(ctx, us)
	if err == nil && l.lose.Add(-1) >= 0 {
		return nil, errors.New("read tcp: connection reset by peer")
	}
	return charged, err
}

// TestPipelineIntoPostgres runs the pipeline against the real ledger: concurrent settlements
// and releases, lost replies, a restart with records still spooled, and replays of the same
// records. Every request must be charged exactly once, and the balance must reconcile.
func TestPipelineIntoPostgres(t *testing.T) {
	s, pool := ledgertest.NewStore(t)
	ctx := context.Background()
	org, err := s.CreateOrg(ctx, ledger.OrgOptions{Name: "spool"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddCredits(ctx, org, 10_000_000, "test"); err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := range n + 20 {
		h := ledger.Hold{RequestID: fmt.Sprintf("req_%d", i), OrgID: org, AmountMicros: 1_000, ExpiresAt: time.Now().Add(time.Hour)}
		if err := s.PlaceHold(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	store := &lossyStore{Store: s}
	store.lose.Store(2)
	dir := t.TempDir()
	p := open(t, Config{Dir: dir, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond}, store)
	var wg sync.WaitGroup
	for i := range n + 20 {
		wg.Go(func() {
			id := fmt.Sprintf("req_%d", i)
			var err error
			if i >= n {
				err = p.ReleaseHold(ctx, id) // failed before any usage
			} else {
				u := testUsage(id)
				u.OrgID, u.CostMicros = org, 100
				_, err = p.Settle(ctx, u)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	closeDrained(t, p)

	// Replay the whole history again, as if every applied mark had been lost.
	line := func(r record) []byte {
		b, err := encodeLine(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var lines [][]byte
	for i := range n {
		u := testUsage(fmt.Sprintf("req_%d", i))
		u.OrgID, u.CostMicros = org, 100
		lines = append(lines, line(record{Seq: uint64(i + 1), Op: opSettle, Usage: toJSON(u)}))
	}
	f, _, err := rewrite(dir, lines)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	p = open(t, Config{Dir: dir}, s)
	closeDrained(t, p)

	var entries, records int
	var balance, held int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ledger_entries WHERE kind = 'usage'`).Scan(&entries); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM usage_records`).Scan(&records); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT balance_micros, held_micros FROM org_balances WHERE org_id = $1`, org).Scan(&balance, &held); err != nil {
		t.Fatal(err)
	}
	if entries != n || records != n {
		t.Errorf("usage entries, records = %d, %d; want %d each", entries, records, n)
	}
	if want := int64(10_000_000 - n*100); balance != want || held != 0 {
		t.Errorf("balance, held = %d, %d; want %d, 0", balance, held, want)
	}
	mat, sum, err := s.Reconcile(ctx, org)
	if err != nil || mat != sum {
		t.Errorf("Reconcile = %d, %d, %v", mat, sum, err)
	}
}
