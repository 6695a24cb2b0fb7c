package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/singleflight"
)

// IDs says whether an organisation id, and optionally a key id of that organisation, were
// issued by Tollgate. The server asks it for every descriptor's org and key, so that a caller
// cannot create counters for made-up scopes or spend another scope's quota under a name
// extproc never wrote. Implementations answer mostly from memory and must be safe for
// concurrent use.
type IDs interface {
	Issued(ctx context.Context, org, key string) (bool, error)
}

// Defaults of IssuedIDs.
const (
	// negativeTTL is how long an unknown id stays unknown without asking Postgres again. Short,
	// so that an id created just after a miss works almost at once; a brand-new id never asked
	// about before is looked up on its first use.
	negativeTTL = time.Second
	// maxCachedIDs bounds each cache; a full cache is emptied and refilled from Postgres.
	maxCachedIDs = 1 << 17
	// idQueryTimeout bounds one lookup in Postgres; a caller waits for it no longer than its
	// own deadline (the decision's, Config.RedisTimeout).
	idQueryTimeout = time.Second
)

// IssuedIDs checks ids against Postgres (tables orgs and api_keys). Positive answers are cached
// for the life of the process: an id once issued stays issued (a revoked key is refused by
// extproc before any descriptor names it). Negative answers are cached for negativeTTL.
type IssuedIDs struct {
	pool     *pgxpool.Pool
	inflight singleflight.Group // by "org/key"

	mu      sync.RWMutex
	known   map[idPair]struct{}
	unknown map[idPair]time.Time // expiry
	timeNow func() time.Time
}

type idPair struct{ org, key string }

// NewIssuedIDs returns IDs backed by pool.
func NewIssuedIDs(pool *pgxpool.Pool) *IssuedIDs {
	return &IssuedIDs{
		pool:    pool,
		known:   map[idPair]struct{}{},
		unknown: map[idPair]time.Time{},
		timeNow: time.Now,
	}
}

// Issued implements IDs. org must be an organisation's id and key, when not empty, the id of
// one of that organisation's keys. Anything that is not a UUID is unknown without a query; a
// query has a deadline of idQueryTimeout, and ctx's deadline bounds the wait for it.
func (c *IssuedIDs) Issued(ctx context.Context, org, key string) (bool, error) {
	p := idPair{org, key}
	now := c.timeNow()
	c.mu.RLock()
	_, ok := c.known[p]
	exp, neg := c.unknown[p]
	c.mu.RUnlock()
	switch {
	case ok:
		return true, nil
	case neg && now.Before(exp):
		return false, nil
	case !isUUID(org) || (key != "" && !isUUID(key)):
		return false, nil
	}
	// Concurrent misses for one scope — a burst from a new key — share one query, which is
	// not cancelled when the caller that started it gives up.
	ch := c.inflight.DoChan(org+"/"+key, func() (any, error) {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idQueryTimeout)
		defer cancel()
		return c.lookup(qctx, p, now)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return false, r.Err
		}
		return r.Val.(bool), nil
	case <-ctx.Done():
		return false, fmt.Errorf("look up issued ids: %w", ctx.Err())
	}
}

// lookup asks Postgres about p and caches the answer.
func (c *IssuedIDs) lookup(ctx context.Context, p idPair, now time.Time) (bool, error) {
	var found bool
	var err error
	if p.key == "" {
		err = c.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM orgs WHERE id = $1::uuid)`, p.org).Scan(&found)
	} else {
		err = c.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1::uuid AND org_id = $2::uuid)`, p.key, p.org).Scan(&found)
	}
	if err != nil {
		return false, fmt.Errorf("look up issued ids: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if found {
		if len(c.known) >= maxCachedIDs {
			clear(c.known)
		}
		c.known[p] = struct{}{}
		delete(c.unknown, p)
	} else {
		if len(c.unknown) >= maxCachedIDs {
			clear(c.unknown)
		}
		c.unknown[p] = now.Add(negativeTTL)
	}
	return found, nil
}

// isUUID reports whether s is a UUID in the canonical 8-4-4-4-12 hex form Postgres prints.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
