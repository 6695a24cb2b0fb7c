// Package limiter applies rate limits stored in Redis with GCRA (the generic
// cell rate algorithm), evaluating any number of limits in one atomic Redis
// round trip.
//
// Why GCRA rather than a fixed window, a sliding-window log or a sliding-window
// counter:
//
//   - A fixed window (envoyproxy/ratelimit's INCRBY per window) admits a full
//     limit just before a window boundary and another just after it: twice the
//     limit within milliseconds.
//   - A sliding-window log is exact over every rolling window but stores one
//     entry per hit, and a tokens-per-minute limit counts millions of hits.
//   - A sliding-window counter interpolates between two fixed windows and is
//     only approximately right near an edge.
//   - GCRA keeps two numbers per key, is exact, and has no window edges at
//     all: a fresh key may burst up to the limit, after which capacity comes
//     back continuously at limit/period. Over any interval of length d at most
//     limit + limit*d/period hits are admitted, so nothing doubles at a
//     boundary. It also gives an exact retry-after for free.
//
// The algorithm lives in gcra.lua, which runs inside Redis so that the read,
// the decision and the write of every key in a batch are one atomic step.
package limiter

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed gcra.lua
var gcraSource string

// maxExact is the largest integer a Lua (double) number holds exactly. Limits
// and hits are clamped to it.
const maxExact = 1 << 53

// Mode says how a Request treats its hits.
type Mode uint8

const (
	// Admit is allowed if all its Hits fit in the remaining capacity. It
	// consumes them only if every Admit and Check in the batch is allowed:
	// a call refused by one limit (a key's) consumes nothing from the others
	// (its organisation's), so a misbehaving key cannot starve its peers.
	Admit Mode = iota + 1
	// Check consumes nothing and is allowed while at least one hit is left.
	Check
	// Record consumes Hits unconditionally, for usage that has already
	// happened (tokens counted after a response). Debt is capped at one
	// period's worth beyond the limit.
	Record
	// Refund gives Hits back.
	Refund
)

func (m Mode) lua() (string, bool) {
	switch m {
	case Admit:
		return "a", true
	case Check:
		return "c", true
	case Record:
		return "r", true
	case Refund:
		return "f", true
	}
	return "", false
}

// Request is one limit to apply.
type Request struct {
	// Key is the Redis key holding this limit's state.
	Key string
	// Limit is the number of hits allowed per Period; it must be positive.
	// Hits above Limit never fit, and their RetryAfter is meaningless.
	Limit uint64
	// Period is the window the Limit refers to, at least one microsecond.
	Period time.Duration
	// Hits is the number of requests or tokens to consume (or refund).
	Hits uint64
	Mode Mode
}

// Result is the outcome of one Request, in the state after it was applied.
type Result struct {
	Allowed bool
	// Remaining is how many hits could be admitted now.
	Remaining uint64
	// Reset is the time until the key is back to its full limit.
	Reset time.Duration
	// RetryAfter is the time until the same request could be allowed; zero
	// when it was.
	RetryAfter time.Duration
}

// Limiter applies batches of Requests in Redis. It is safe for concurrent use.
type Limiter struct {
	rdb    redis.Scripter
	script *redis.Script
	now    func() time.Time
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithClock makes the Limiter use now instead of the Redis server's clock.
// Meant for tests: with several gateway instances, their clocks' skew would
// leak into every decision, while Redis' clock is one clock for all.
func WithClock(now func() time.Time) Option {
	return func(l *Limiter) { l.now = now }
}

// New returns a Limiter that keeps its state in rdb. A client made with
// MaxRetries -1 is strongly advised: a retried script whose reply was lost
// would consume twice.
func New(rdb redis.Scripter, opts ...Option) *Limiter {
	l := &Limiter{rdb: rdb, script: redis.NewScript(gcraSource)}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Load uploads the script so that later calls need only EVALSHA. It is an
// optimisation: Apply falls back to EVAL when Redis lost the script (a
// restart, SCRIPT FLUSH).
func (l *Limiter) Load(ctx context.Context) error {
	if err := l.script.Load(ctx, l.rdb).Err(); err != nil {
		return fmt.Errorf("load gcra script: %w", err)
	}
	return nil
}

// Apply applies reqs atomically in one Redis round trip (two when Redis has
// lost the script) and returns one Result per Request, in order; each
// Result judges its own limit, so an Admit may be Allowed yet not consumed
// because another limit in the batch refused. Requests on the same key
// apply in order. An empty batch does not touch Redis.
//
// All keys go to one EVALSHA, so with Redis Cluster they must share a hash
// slot (a {hash tag}).
func (l *Limiter) Apply(ctx context.Context, reqs []Request) ([]Result, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(reqs))
	args := make([]any, 1, 1+4*len(reqs))
	args[0] = int64(0) // 0: the script reads Redis' clock
	if l.now != nil {
		args[0] = l.now().UnixMicro()
	}
	for i, r := range reqs {
		mode, ok := r.Mode.lua()
		switch {
		case r.Key == "":
			return nil, fmt.Errorf("limiter request %d: empty key", i)
		case !ok:
			return nil, fmt.Errorf("limiter request %d: unknown mode %d", i, r.Mode)
		case r.Limit == 0:
			return nil, fmt.Errorf("limiter request %d: zero limit", i)
		case r.Period < time.Microsecond:
			return nil, fmt.Errorf("limiter request %d: period %v below 1µs", i, r.Period)
		}
		keys[i] = r.Key
		args = append(args, min(r.Limit, maxExact), r.Period.Microseconds(), min(r.Hits, maxExact), mode)
	}

	// Script.Run sends EVALSHA and, only on NOSCRIPT, EVAL with the source.
	vals, err := l.script.Run(ctx, l.rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("run gcra script: %w", err)
	}
	if len(vals) != 4*len(reqs) {
		return nil, fmt.Errorf("run gcra script: got %d values for %d requests", len(vals), len(reqs))
	}
	res := make([]Result, len(reqs))
	for i := range res {
		v := vals[4*i : 4*i+4]
		res[i] = Result{
			Allowed:    v[0] == 1,
			Remaining:  nonNegative(v[1]),
			Reset:      micros(v[2]),
			RetryAfter: micros(v[3]),
		}
	}
	return res, nil
}

func nonNegative(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

func micros(v int64) time.Duration {
	if v <= 0 {
		return 0
	}
	if v > math.MaxInt64/int64(time.Microsecond) {
		return math.MaxInt64
	}
	return time.Duration(v) * time.Microsecond
}
