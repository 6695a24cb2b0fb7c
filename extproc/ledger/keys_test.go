package ledger_test

import (
	"context"
	"errors"
	"reflect"
	"regexp"
	"testing"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
)

var keyFormat = regexp.MustCompile(`^tg_[A-Za-z0-9_-]{43}$`)

func TestKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := ledgertest.NewStore(t)
	orgID, err := s.CreateOrg(ctx, ledger.OrgOptions{Name: "acme", MarkupBps: 1000, NoSubscription: true})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		org     string
		kind    ledger.KeyKind
		wantErr error
	}{
		{name: "standard", org: orgID, kind: ledger.KeyStandard},
		{name: "management", org: orgID, kind: ledger.KeyManagement},
		{name: "unknown kind", org: orgID, kind: "admin", wantErr: errAny},
		{name: "unknown org", org: "0b7e8d2a-6c1f-4e7b-9a3d-2f5c8e1b4a60", kind: ledger.KeyStandard, wantErr: ledger.ErrNotFound},
		{name: "malformed org", org: "acme", kind: ledger.KeyStandard, wantErr: ledger.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, keyID, err := s.CreateKey(ctx, tt.org, tt.kind, tt.name)
			if !matches(err, tt.wantErr) {
				t.Fatalf("CreateKey: %v; want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !keyFormat.MatchString(key) {
				t.Errorf("key %q does not match %v", key, keyFormat)
			}

			got, err := s.LookupKey(ctx, ledger.HashKey(key))
			if err != nil {
				t.Fatalf("LookupKey: %v", err)
			}
			want := ledger.Principal{KeyID: keyID, OrgID: orgID, Kind: tt.kind, MarkupBps: 1000, GatewayEnabled: true}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LookupKey = %+v; want %+v", got, want)
			}

			// Stored: the hash and a display prefix. The key itself appears in no column.
			var prefix string
			var hash []byte
			if err := pool.QueryRow(ctx, `SELECT prefix, hash FROM api_keys WHERE id = $1`, keyID).Scan(&prefix, &hash); err != nil {
				t.Fatal(err)
			}
			if want := ledger.HashKey(key); string(hash) != string(want[:]) {
				t.Errorf("stored hash %x; want %x", hash, want)
			}
			if prefix != key[:10] {
				t.Errorf("prefix %q; want %q", prefix, key[:10])
			}
			if n := count(t, pool, `SELECT count(*) FROM api_keys k
				WHERE strpos(k::text, $1) > 0 OR strpos(k::text, $2) > 0`, key, key[10:]); n != 0 {
				t.Errorf("the key's secret part appears in %d api_keys rows", n)
			}

			if err := s.RevokeKey(ctx, keyID); err != nil {
				t.Fatalf("RevokeKey: %v", err)
			}
			if err := s.RevokeKey(ctx, keyID); err != nil {
				t.Errorf("RevokeKey again: %v; want nil", err)
			}
			if _, err := s.LookupKey(ctx, ledger.HashKey(key)); !errors.Is(err, ledger.ErrNotFound) {
				t.Errorf("LookupKey after revoke: %v; want ErrNotFound", err)
			}
		})
	}

	if _, err := s.LookupKey(ctx, ledger.HashKey("tg_unknown")); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("LookupKey(unknown): %v; want ErrNotFound", err)
	}
	for _, id := range []string{"0b7e8d2a-6c1f-4e7b-9a3d-2f5c8e1b4a60", "nope"} {
		if err := s.RevokeKey(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("RevokeKey(%q): %v; want ErrNotFound", id, err)
		}
	}
}

func TestLookupKeyTouchesLastUsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := ledgertest.NewStore(t)
	orgID, _ := newOrg(t, s, 0)
	key, keyID, err := s.CreateKey(ctx, orgID, ledger.KeyStandard, "")
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM api_keys WHERE id = $1 AND last_used_at IS NULL`, keyID); n != 1 {
		t.Fatal("a new key has last_used_at set")
	}
	if _, err := s.LookupKey(ctx, ledger.HashKey(key)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM api_keys WHERE id = $1 AND last_used_at IS NOT NULL`, keyID); n != 1 {
		t.Error("LookupKey left last_used_at unset")
	}
}

func TestKeysAreDistinct(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := ledgertest.NewStore(t)
	orgID, _ := newOrg(t, s, 0)
	seen := map[string]bool{}
	for range 20 {
		key, _, err := s.CreateKey(ctx, orgID, ledger.KeyStandard, "")
		if err != nil {
			t.Fatal(err)
		}
		if seen[key] {
			t.Fatalf("key %s issued twice", key)
		}
		seen[key] = true
	}
}
