package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
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

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

// testKey is a well-formed key whose secret is 32 copies of b, as CreateKey would print it.
func testKey(b byte) string {
	var secret [32]byte
	for i := range secret {
		secret[i] = b
	}
	return ledger.KeyPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
}

func TestCache(t *testing.T) {
	keyA, keyB := testKey('a'), testKey('b')
	store := &fakeStore{keys: map[[32]byte]ledger.Principal{ledger.HashKey(keyA): {KeyID: "k1", OrgID: "o1"}}}
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
		{name: "first use looks up", key: keyA, wantKeyID: "k1", wantLookups: 1},
		{name: "cached within the TTL", advance: 4 * time.Second, key: keyA, wantKeyID: "k1", wantLookups: 1},
		{name: "revoked but still cached", revoke: true, key: keyA, wantKeyID: "k1", wantLookups: 1},
		{name: "revocation seen after the TTL", advance: 2 * time.Second, key: keyA, wantErr: ErrUnknownKey, wantLookups: 2},
		{name: "unknown keys are remembered", key: keyA, wantErr: ErrUnknownKey, wantLookups: 2},
		{name: "empty key never reaches the store", key: "", wantErr: ErrUnknownKey, wantLookups: 2},
		{name: "store failures are not cached", advance: 10 * time.Second, key: keyB, storeErr: errors.New("down"), wantLookups: 3},
		{name: "and are retried", key: keyB, wantErr: ErrUnknownKey, wantLookups: 4},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		store.mu.Lock()
		if s.revoke {
			delete(store.keys, ledger.HashKey(keyA))
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

// TestMalformedKeysNeverLookedUp: a key that CreateKey could not have issued is refused without
// a query, so junk credentials cost the database nothing.
func TestMalformedKeysNeverLookedUp(t *testing.T) {
	good := testKey('g')
	store := &fakeStore{keys: map[[32]byte]ledger.Principal{ledger.HashKey(good): {KeyID: "k1"}}}
	c := New(store, time.Minute)
	secret := good[len(ledger.KeyPrefix):]
	tests := []struct{ name, key string }{
		{"empty", ""},
		{"prefix only", "tg_"},
		{"short", "tg_good"},
		{"one character short", good[:len(good)-1]},
		{"one character long", good + "A"},
		{"padded", good + "="},
		{"openai key", "sk-proj-" + secret},
		{"no prefix", secret + "abc"},
		{"upper-case prefix", "TG_" + secret},
		{"standard base64 alphabet", "tg_" + strings.Replace(secret, secret[:1], "+", 1)},
		{"space inside", "tg_" + secret[:20] + " " + secret[21:]},
		{"non-ASCII", "tg_" + secret[:41] + "é"},
		// 43 characters carry 258 bits for 256: the last one's low 2 bits are unused and a
		// canonical encoding leaves them zero. "B" sets one of them.
		{"non-canonical last character", good[:len(good)-1] + "B"},
		{"a million bytes", "tg_" + strings.Repeat("A", 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ledger.WellFormedKey(tt.key) {
				t.Fatalf("WellFormedKey(%.60q) = true", tt.key)
			}
			if _, err := c.Authenticate(context.Background(), tt.key); !errors.Is(err, ErrUnknownKey) {
				t.Errorf("err = %v, want ErrUnknownKey", err)
			}
		})
	}
	if n := store.count(); n != 0 {
		t.Errorf("%d lookups for malformed keys, want 0", n)
	}
	if p, err := c.Authenticate(context.Background(), good); err != nil || p.KeyID != "k1" || store.count() != 1 {
		t.Errorf("well-formed key: %+v, %v after %d lookups", p, err, store.count())
	}
}

// TestCacheEvictsLeastRecentlyUsed: a full cache drops the entry used longest ago, one at a
// time, not everything at once; and unknown keys, however many, never push out known ones.
func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	keys := []string{testKey(1), testKey(2), testKey(3), testKey(4)}
	store := &fakeStore{keys: map[[32]byte]ledger.Principal{}}
	for i, k := range keys {
		store.keys[ledger.HashKey(k)] = ledger.Principal{KeyID: string(rune('a' + i))}
	}
	c := New(store, time.Hour)
	c.known, c.unknown = newLRU(3), newLRU(2)
	ctx := context.Background()
	use := func(k string) {
		t.Helper()
		if _, err := c.Authenticate(ctx, k); err != nil {
			t.Fatal(err)
		}
	}

	use(keys[0])
	use(keys[1])
	use(keys[2])
	use(keys[0]) // keys[1] is now the least recently used
	use(keys[3]) // evicts keys[1] alone
	if got := store.count(); got != 4 {
		t.Fatalf("%d lookups, want 4", got)
	}
	for _, k := range []string{keys[0], keys[2], keys[3]} {
		use(k)
	}
	if got := store.count(); got != 4 {
		t.Errorf("keys still cached were looked up again: %d lookups, want 4", got)
	}
	use(keys[1])
	if got := store.count(); got != 5 {
		t.Errorf("the evicted key: %d lookups, want 5", got)
	}

	for b := byte(100); b < 120; b++ {
		if _, err := c.Authenticate(ctx, testKey(b)); !errors.Is(err, ErrUnknownKey) {
			t.Fatal(err)
		}
	}
	before := store.count()
	for _, k := range []string{keys[1], keys[2], keys[3]} { // the cached three
		use(k)
	}
	if got := store.count(); got != before {
		t.Errorf("a flood of unknown keys evicted known ones: %d lookups, want %d", got, before)
	}
	if c.known.len() != 3 || c.unknown.len() != 2 {
		t.Errorf("sizes: known %d, unknown %d; want 3 and 2", c.known.len(), c.unknown.len())
	}
}

// TestCacheConcurrent exercises the cache from many goroutines; run with -race.
func TestCacheConcurrent(t *testing.T) {
	store := &fakeStore{keys: map[[32]byte]ledger.Principal{}}
	var keys []string
	for b := range byte(32) {
		k := testKey(b)
		keys = append(keys, k)
		if b%2 == 0 {
			store.keys[ledger.HashKey(k)] = ledger.Principal{KeyID: k}
		}
	}
	c := New(store, time.Hour)
	c.known, c.unknown = newLRU(8), newLRU(4)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				k := keys[(g*7+i)%len(keys)]
				p, err := c.Authenticate(context.Background(), k)
				known := store.keys[ledger.HashKey(k)].KeyID != ""
				if known && (err != nil || p.KeyID != k) || !known && !errors.Is(err, ErrUnknownKey) {
					t.Errorf("key %d: %+v, %v", i, p, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkAuthenticateHit is the cost a request pays for a key already cached: the format
// check, the SHA-256, and the locked LRU touch.
func BenchmarkAuthenticateHit(b *testing.B) {
	key := testKey('h')
	store := &fakeStore{keys: map[[32]byte]ledger.Principal{ledger.HashKey(key): {KeyID: "k1"}}}
	c := New(store, time.Hour)
	ctx := context.Background()
	if _, err := c.Authenticate(ctx, key); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Authenticate(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAuthenticateMalformed is what refusing a junk key costs: no hash, no lock.
func BenchmarkAuthenticateMalformed(b *testing.B) {
	c := New(&fakeStore{}, time.Hour)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = c.Authenticate(ctx, "tg_not-a-key")
	}
}

// TestWellFormedKeyAcceptsIssuedKeys checks the format check against the encoder CreateKey uses,
// for secrets that exercise every value of the last character.
func TestWellFormedKeyAcceptsIssuedKeys(t *testing.T) {
	for b := range 256 {
		var secret [32]byte
		for i := range secret {
			secret[i] = byte(b * (i + 1))
		}
		key := ledger.KeyPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
		if !ledger.WellFormedKey(key) {
			t.Errorf("WellFormedKey(%q) = false for an issued key", key)
		}
	}
}
