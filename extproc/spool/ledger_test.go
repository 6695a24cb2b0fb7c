package spool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

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

// switchStore is the real ledger, or — while down is set — a ledger whose pool points at a port
// where no Postgres listens, so that every write fails as it does in an outage.
type switchStore struct {
	up, dead *ledger.Store
	down     atomic.Bool
}

func (s *switchStore) cur() *ledger.Store {
	if s.down.Load() {
		return s.dead
	}
	return s.up
}

func (s *switchStore) PlaceHold(ctx context.Context, h ledger.Hold) error {
	return s.cur().PlaceHold(ctx, h)
}

func (s *switchStore) SettleBatch(ctx context.Context, us []ledger.Usage) ([]bool, error) {
	return s.cur().SettleBatch(ctx, us)
}

func (s *switchStore) ReleaseHolds(ctx context.Context, ids []string) error {
	return s.cur().ReleaseHolds(ctx, ids)
}

// TestSpoolFailureIntoPostgres: with the spool's disk failing, settlements reach the real
// ledger directly; with Postgres down as well they wait in memory (the alarm up) and are charged
// exactly once when it returns. The balance reconciles throughout.
func TestSpoolFailureIntoPostgres(t *testing.T) {
	s, pool := ledgertest.NewStore(t)
	ctx := context.Background()
	org, err := s.CreateOrg(ctx, ledger.OrgOptions{Name: "spool-fault"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddCredits(ctx, org, 1_000_000, "test"); err != nil {
		t.Fatal(err)
	}
	deadPool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(deadPool.Close)
	store := &switchStore{up: s, dead: ledger.New(deadPool)}
	const n = 20
	for i := range n {
		h := ledger.Hold{RequestID: fmt.Sprintf("req_%d", i), OrgID: org, AmountMicros: 1_000, InputMicros: 10, ExpiresAt: time.Now().Add(time.Hour)}
		if err := s.PlaceHold(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	var logs logBuffer
	p, fail := openFaulty(t, fastRetries(t.TempDir()), store, &logs)
	fail.Store(true)
	settle := func(i int) {
		u := testUsage(fmt.Sprintf("req_%d", i))
		u.OrgID, u.CostMicros = org, 100
		if _, err := p.Settle(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n / 2 {
		settle(i)
	}
	// Settle returns once the pipeline owns each charge; the rescuer may be the one writing it.
	waitFor(t, "settled directly with the spool failing", func() bool {
		return count(t, pool, `SELECT count(*) FROM usage_records`) == n/2
	})

	store.down.Store(true)
	for i := n / 2; i < n; i++ {
		settle(i)
	}
	if got, cost := p.Stranded(); got != n/2 || cost != n/2*100 {
		t.Errorf("Stranded = %d, %d µUSD; want %d, %d", got, cost, n/2, n/2*100)
	}
	store.down.Store(false)
	waitFor(t, "stranded settlements applied", func() bool { s, _ := p.Stranded(); return s == 0 && p.Pending() == 0 })
	fail.Store(false)
	closeDrained(t, p)

	if got := count(t, pool, `SELECT count(*) FROM ledger_entries WHERE kind = 'usage'`); got != n {
		t.Errorf("%d usage entries, want %d", got, n)
	}
	var balance, held int64
	if err := pool.QueryRow(ctx, `SELECT balance_micros, held_micros FROM org_balances WHERE org_id = $1`, org).Scan(&balance, &held); err != nil {
		t.Fatal(err)
	}
	if balance != 1_000_000-n*100 || held != 0 {
		t.Errorf("balance, held = %d, %d; want %d, 0", balance, held, 1_000_000-n*100)
	}
	if mat, sum, err := s.Reconcile(ctx, org); err != nil || mat != sum {
		t.Errorf("Reconcile = %d, %d, %v", mat, sum, err)
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
