package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
)

// fakeStore answers from a map and counts lookups.
type fakeStore struct {
	mu      sync.Mutex
	keys    map[[32]byte]ledger.Principal
	err     error
	lookups int
}

func (f *fakeStore) LookupKey(_ context.Context, h [32]byte) (ledger.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.err != nil {
		return ledger.Principal{}, f.err
	}
	p, ok := f.keys[h]
	if !ok {
		return ledger.Principal{}, ledger.ErrNotFound
	}
	return p, nil
}

func TestCache(t *testing.T) {
	store := &fakeStore{keys: map[[32]byte]ledger.Principal{ledger.HashKey("tg_a"): {KeyID: "k1", OrgID: "o1"}}}
	now := time.Unix(1000, 0)
	c := New(store, 5*time.Second)
	c.now = func() time.Time { return now }
	ctx := context.Background()

	steps := []struct {
		name        string
		advance     time.Duration
		key         string
		revoke      bool
		storeErr    error
		wantKeyID   string
		wantErr     error
		wantLookups int
	}{
		{name: "first use looks up", key: "tg_a", wantKeyID: "k1", wantLookups: 1},
		{name: "cached within the TTL", advance: 4 * time.Second, key: "tg_a", wantKeyID: "k1", wantLookups: 1},
		{name: "revoked but still cached", revoke: true, key: "tg_a", wantKeyID: "k1", wantLookups: 1},
		{name: "revocation seen after the TTL", advance: 2 * time.Second, key: "tg_a", wantErr: ErrUnknownKey, wantLookups: 2},
		{name: "unknown keys are remembered", key: "tg_a", wantErr: ErrUnknownKey, wantLookups: 2},
		{name: "empty key never reaches the store", key: "", wantErr: ErrUnknownKey, wantLookups: 2},
		{name: "store failures are not cached", advance: 10 * time.Second, key: "tg_b", storeErr: errors.New("down"), wantLookups: 3},
		{name: "and are retried", key: "tg_b", wantErr: ErrUnknownKey, wantLookups: 4},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		store.mu.Lock()
		if s.revoke {
			delete(store.keys, ledger.HashKey("tg_a"))
		}
		store.err = s.storeErr
		store.mu.Unlock()
		p, err := c.Authenticate(ctx, s.key)
		switch {
		case s.storeErr != nil:
			if err == nil || errors.Is(err, ErrUnknownKey) {
				t.Errorf("%s: err = %v, want the store's error", s.name, err)
			}
		case !errors.Is(err, s.wantErr):
			t.Errorf("%s: err = %v, want %v", s.name, err, s.wantErr)
		case p.KeyID != s.wantKeyID:
			t.Errorf("%s: key id = %q, want %q", s.name, p.KeyID, s.wantKeyID)
		}
		if store.lookups != s.wantLookups {
			t.Errorf("%s: %d lookups, want %d", s.name, store.lookups, s.wantLookups)
		}
	}
}
