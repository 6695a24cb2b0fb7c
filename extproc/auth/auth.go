// Package auth resolves API keys to principals, with a short-lived in-process cache in front of
// the key store so that the request path rarely waits on Postgres.
package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
)

// KeyStore finds the principal behind a key hash; ledger.ErrNotFound for unknown or revoked keys.
type KeyStore interface {
	LookupKey(ctx context.Context, hash [32]byte) (ledger.Principal, error)
}

// ErrUnknownKey is returned for a key that does not exist or was revoked.
var ErrUnknownKey = errors.New("unknown or revoked api key")

// DefaultTTL bounds how long a revoked key keeps working on an instance that had it cached.
const DefaultTTL = 5 * time.Second

// maxEntries bounds the cache; past it the cache is emptied, which costs only lookups.
const maxEntries = 100_000

// Cache authenticates keys. It is safe for concurrent use.
type Cache struct {
	store KeyStore
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	entries map[[32]byte]entry
}

type entry struct {
	principal ledger.Principal
	err       error
	expires   time.Time
}

// New returns a cache over store; ttl ≤ 0 means DefaultTTL.
func New(store KeyStore, ttl time.Duration) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Cache{store: store, ttl: ttl, now: time.Now, entries: make(map[[32]byte]entry)}
}

// Authenticate returns the principal for key. Unknown keys are remembered too (for the same TTL),
// so a flood of bad keys does not become a flood of queries. Store failures are not cached.
func (c *Cache) Authenticate(ctx context.Context, key string) (ledger.Principal, error) {
	if key == "" {
		return ledger.Principal{}, ErrUnknownKey
	}
	h := ledger.HashKey(key)
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[h]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.principal, e.err
	}
	p, err := c.store.LookupKey(ctx, h)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		err = ErrUnknownKey
	case err != nil:
		return ledger.Principal{}, fmt.Errorf("look up api key: %w", err)
	}
	c.mu.Lock()
	if len(c.entries) >= maxEntries {
		clear(c.entries)
	}
	c.entries[h] = entry{principal: p, err: err, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return p, err
}
