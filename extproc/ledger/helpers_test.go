package ledger_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/extproc/ledger"
)

// seq makes request ids unique within a test binary run.
var seq atomic.Int64

func requestID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, seq.Add(1))
}

// newOrg creates an org holding creditMicros and a standard key for it.
func newOrg(t testing.TB, s *ledger.Store, creditMicros int64) (orgID, keyID string) {
	t.Helper()
	ctx := context.Background()
	orgID, err := s.CreateOrg(ctx, ledger.OrgOptions{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if creditMicros > 0 {
		if _, err := s.AddCredits(ctx, orgID, creditMicros, "test credit"); err != nil {
			t.Fatal(err)
		}
	}
	_, keyID, err = s.CreateKey(ctx, orgID, ledger.KeyStandard, "test")
	if err != nil {
		t.Fatal(err)
	}
	return orgID, keyID
}

// wantMoney asserts an org's balance and held amount, and that the balance reconciles with
// its ledger entries.
func wantMoney(t testing.TB, s *ledger.Store, orgID string, balance, held int64) {
	t.Helper()
	o, err := s.Org(context.Background(), orgID)
	if err != nil {
		t.Fatal(err)
	}
	if o.BalanceMicros != balance || o.HeldMicros != held {
		t.Errorf("balance, held = %d, %d; want %d, %d", o.BalanceMicros, o.HeldMicros, balance, held)
	}
	mat, sum, err := s.Reconcile(context.Background(), orgID)
	if err != nil {
		t.Fatal(err)
	}
	if mat != sum {
		t.Errorf("Reconcile: materialised %d != ledger sum %d", mat, sum)
	}
	if mat, sum, err := s.ReconcileHolds(context.Background(), orgID); err != nil || mat != sum {
		t.Errorf("ReconcileHolds: materialised %d, open holds %d, %v", mat, sum, err)
	}
}

// count runs a count(*) query in the test's schema.
func count(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func hold(reqID, orgID, keyID string, amount int64) ledger.Hold {
	return ledger.Hold{RequestID: reqID, OrgID: orgID, KeyID: keyID, AmountMicros: amount, ExpiresAt: time.Now().Add(time.Minute)}
}
