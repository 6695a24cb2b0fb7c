// Package auth resolves API keys to principals, with a short-lived in-process cache in front of
// the key store so that the request path rarely waits on Postgres.
package auth

import (
	"container/list"
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

// ErrUnknownKey is returned for a key that does not exist, was revoked, or is not even shaped
// like a key the gateway issues.
var ErrUnknownKey = errors.New("unknown or revoked api key")

// DefaultTTL bounds how long a revoked key keeps working on an instance that had it cached.
const DefaultTTL = 5 * time.Second

// Cache sizes. Known keys are few (one per deployed client); unknown ones are whatever a caller
// cares to send, so they get their own, smaller cache: a flood of well-formed random keys evicts
// only other unknown keys, never a real caller's entry.
const (
	DefaultMaxKnown   = 100_000
	DefaultMaxUnknown = 10_000
)

// Cache authenticates keys. It is safe for concurrent use.
type Cache struct {
	store KeyStore
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	known   *lru
	unknown *lru
}

// New returns a cache over store; ttl ≤ 0 means DefaultTTL. It holds at most DefaultMaxKnown
// known and DefaultMaxUnknown unknown keys, evicting the least recently used.
func New(store KeyStore, ttl time.Duration) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Cache{store: store, ttl: ttl, now: time.Now, known: newLRU(DefaultMaxKnown), unknown: newLRU(DefaultMaxUnknown)}
}

// Authenticate returns the principal for key, or ErrUnknownKey. A key that is not shaped like an
// issued one (ledger.WellFormedKey) is refused before any lookup. Unknown keys are remembered
// too (for the same TTL), so repeating a bad key does not become a flood of queries. Store
// failures are not cached.
func (c *Cache) Authenticate(ctx context.Context, key string) (ledger.Principal, error) {
	if !ledger.WellFormedKey(key) {
		return ledger.Principal{}, ErrUnknownKey
	}
	h := ledger.HashKey(key)
	now := c.now()
	c.mu.Lock()
	if p, ok := c.known.get(h, now); ok {
		c.mu.Unlock()
		return p, nil
	}
	if _, ok := c.unknown.get(h, now); ok {
		c.mu.Unlock()
		return ledger.Principal{}, ErrUnknownKey
	}
	c.mu.Unlock()

	p, err := c.store.LookupKey(ctx, h)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		err = ErrUnknownKey
	case err != nil:
		return ledger.Principal{}, fmt.Errorf("look up api key: %w", err)
	}
	expires := now.Add(c.ttl)
	c.mu.Lock()
	if err == nil {
		c.unknown.remove(h)
		c.known.put(h, p, expires)
	} else {
		c.known.remove(h)
		c.unknown.put(h, p, expires)
	}
	c.mu.Unlock()
	return p, err
}

// lru is a bounded map from key hash to principal with an expiry per entry, evicting the least
// recently used entry when full. Its owner serialises access.
type lru struct {
	capacity int
	order    *list.List // of *entry, most recently used first
	entries  map[[32]byte]*list.Element
}

type entry struct {
	hash      [32]byte
	principal ledger.Principal
	expires   time.Time
}

func newLRU(capacity int) *lru {
	return &lru{capacity: capacity, order: list.New(), entries: make(map[[32]byte]*list.Element)}
}

// get returns the live entry for h and marks it used. An expired entry is dropped: keeping it
// would only let it outlive fresher ones.
func (l *lru) get(h [32]byte, now time.Time) (ledger.Principal, bool) {
	el, ok := l.entries[h]
	if !ok {
		return ledger.Principal{}, false
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		l.order.Remove(el)
		delete(l.entries, h)
		return ledger.Principal{}, false
	}
	l.order.MoveToFront(el)
	return e.principal, true
}

func (l *lru) put(h [32]byte, p ledger.Principal, expires time.Time) {
	if el, ok := l.entries[h]; ok {
		e := el.Value.(*entry)
		e.principal, e.expires = p, expires
		l.order.MoveToFront(el)
		return
	}
	if l.order.Len() >= l.capacity {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.entries, oldest.Value.(*entry).hash)
	}
	l.entries[h] = l.order.PushFront(&entry{hash: h, principal: p, expires: expires})
}

func (l *lru) remove(h [32]byte) {
	if el, ok := l.entries[h]; ok {
		l.order.Remove(el)
		delete(l.entries, h)
	}
}

func (l *lru) len() int { return l.order.Len() }
