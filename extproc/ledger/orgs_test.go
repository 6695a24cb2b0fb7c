package ledger_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
)

func TestOrgs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := ledgertest.NewStore(t)

	tests := []struct {
		name    string
		opts    ledger.OrgOptions
		want    ledger.Org // ID filled in from CreateOrg
		wantErr bool
	}{
		{name: "defaults", opts: ledger.OrgOptions{Name: "a"},
			want: ledger.Org{Name: "a", SubscriptionActive: true, GatewayEnabled: true}},
		{name: "markup", opts: ledger.OrgOptions{Name: "b", MarkupBps: 550},
			want: ledger.Org{Name: "b", MarkupBps: 550, SubscriptionActive: true, GatewayEnabled: true}},
		{name: "no subscription", opts: ledger.OrgOptions{Name: "c", NoSubscription: true},
			want: ledger.Org{Name: "c", GatewayEnabled: true}},
		{name: "gateway disabled", opts: ledger.OrgOptions{Name: "d", GatewayDisabled: true},
			want: ledger.Org{Name: "d", SubscriptionActive: true}},
		{name: "negative markup", opts: ledger.OrgOptions{Name: "e", MarkupBps: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := s.CreateOrg(ctx, tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("CreateOrg: %v; want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got, err := s.Org(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.ID = id
			if got != tt.want {
				t.Errorf("Org = %+v; want %+v", got, tt.want)
			}
		})
	}

	for _, id := range []string{"0b7e8d2a-6c1f-4e7b-9a3d-2f5c8e1b4a60", "not-a-uuid", ""} {
		if _, err := s.Org(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("Org(%q): %v; want ErrNotFound", id, err)
		}
	}
}

func TestCredits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := ledgertest.NewStore(t)
	orgID, _ := newOrg(t, s, 0)
	const unknown = "0b7e8d2a-6c1f-4e7b-9a3d-2f5c8e1b4a60"

	tests := []struct {
		name        string
		org         string
		topup       int64 // AddCredits if != 0
		adjust      int64 // else Adjust
		wantBalance int64
		wantErr     error // errors.Is target; errAny for any error
	}{
		{name: "first topup", org: orgID, topup: 5_000_000, wantBalance: 5_000_000},
		{name: "second topup", org: orgID, topup: 1, wantBalance: 5_000_001},
		{name: "negative adjustment", org: orgID, adjust: -2_000_001, wantBalance: 3_000_000},
		{name: "positive adjustment", org: orgID, adjust: 7, wantBalance: 3_000_007},
		{name: "zero topup", org: orgID, topup: 0, adjust: 0, wantErr: errAny},
		{name: "negative topup", org: orgID, topup: -5, wantErr: errAny},
		{name: "unknown org", org: unknown, topup: 5, wantErr: ledger.ErrNotFound},
		{name: "malformed org", org: "x", topup: 5, wantErr: ledger.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got int64
			var err error
			if tt.topup != 0 || tt.adjust == 0 {
				got, err = s.AddCredits(ctx, tt.org, tt.topup, "card")
			} else {
				got, err = s.Adjust(ctx, tt.org, tt.adjust, "support ticket 42")
			}
			if !matches(err, tt.wantErr) {
				t.Fatalf("err = %v; want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got != tt.wantBalance {
				t.Errorf("balance = %d; want %d", got, tt.wantBalance)
			}
			if bal, err := s.Balance(ctx, tt.org); err != nil || bal != tt.wantBalance {
				t.Errorf("Balance = %d, %v; want %d", bal, err, tt.wantBalance)
			}
		})
	}
	wantMoney(t, s, orgID, 3_000_007, 0)
	if got := count(t, pool, `SELECT count(*) FROM ledger_entries WHERE kind = 'topup'`); got != 2 {
		t.Errorf("%d topup rows; want 2", got)
	}
	if _, err := s.Balance(ctx, unknown); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Balance(unknown): %v; want ErrNotFound", err)
	}
	if _, _, err := s.Reconcile(ctx, unknown); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Reconcile(unknown): %v; want ErrNotFound", err)
	}
}

// errAny stands for "some error" in tables of expected errors.
var errAny = errors.New("any error")

func matches(err, want error) bool {
	switch want {
	case nil:
		return err == nil
	case errAny:
		return err != nil
	}
	return errors.Is(err, want)
}
