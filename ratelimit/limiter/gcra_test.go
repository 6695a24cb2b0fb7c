package limiter_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/ratelimit/internal/redistest"
	"github.com/tollgate/tollgate/ratelimit/limiter"
)

// clock is a test clock that only moves when told to.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// epoch is a minute boundary, so that "just before the boundary" is plain
// to see in the window tests.
var epoch = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*limiter.Limiter, *clock, string) {
	t.Helper()
	rdb := redistest.Client(t)
	c := newClock(epoch)
	return limiter.New(rdb, limiter.WithClock(c.Now)), c, redistest.Prefix(t, rdb)
}

func apply1(t *testing.T, l *limiter.Limiter, r limiter.Request) limiter.Result {
	t.Helper()
	res, err := l.Apply(context.Background(), []limiter.Request{r})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res[0]
}

func TestApplyModes(t *testing.T) {
	type step struct {
		advance time.Duration
		mode    limiter.Mode
		hits    uint64
		want    limiter.Result
	}
	// 60 per minute: one hit drains per second.
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "admit consumes while it fits",
			steps: []step{
				{mode: limiter.Admit, hits: 1, want: limiter.Result{Allowed: true, Remaining: 59, Reset: time.Second}},
				{mode: limiter.Admit, hits: 59, want: limiter.Result{Allowed: true, Remaining: 0, Reset: time.Minute}},
				{mode: limiter.Admit, hits: 1, want: limiter.Result{Remaining: 0, Reset: time.Minute, RetryAfter: time.Second}},
				{advance: time.Second, mode: limiter.Admit, hits: 1, want: limiter.Result{Allowed: true, Remaining: 0, Reset: time.Minute}},
			},
		},
		{
			name: "admit that does not fit consumes nothing",
			steps: []step{
				{mode: limiter.Admit, hits: 50, want: limiter.Result{Allowed: true, Remaining: 10, Reset: 50 * time.Second}},
				{mode: limiter.Admit, hits: 11, want: limiter.Result{Remaining: 10, Reset: 50 * time.Second, RetryAfter: time.Second}},
				{mode: limiter.Admit, hits: 10, want: limiter.Result{Allowed: true, Remaining: 0, Reset: time.Minute}},
			},
		},
		{
			name: "check consumes nothing",
			steps: []step{
				{mode: limiter.Check, want: limiter.Result{Allowed: true, Remaining: 60}},
				{mode: limiter.Check, want: limiter.Result{Allowed: true, Remaining: 60}},
				{mode: limiter.Record, hits: 59, want: limiter.Result{Allowed: true, Remaining: 1, Reset: 59 * time.Second}},
				{mode: limiter.Check, want: limiter.Result{Allowed: true, Remaining: 1, Reset: 59 * time.Second}},
				{mode: limiter.Record, hits: 1, want: limiter.Result{Allowed: true, Remaining: 0, Reset: time.Minute}},
				{mode: limiter.Check, want: limiter.Result{Remaining: 0, Reset: time.Minute, RetryAfter: time.Second}},
			},
		},
		{
			name: "record goes into debt up to one period",
			steps: []step{
				{mode: limiter.Record, hits: 90, want: limiter.Result{Remaining: 0, Reset: 90 * time.Second, RetryAfter: 31 * time.Second}},
				{mode: limiter.Record, hits: 1000, want: limiter.Result{Remaining: 0, Reset: 2 * time.Minute, RetryAfter: 61 * time.Second}},
				{advance: 61 * time.Second, mode: limiter.Check, want: limiter.Result{Allowed: true, Remaining: 1, Reset: 59 * time.Second}},
			},
		},
		{
			name: "refund gives hits back",
			steps: []step{
				{mode: limiter.Admit, hits: 60, want: limiter.Result{Allowed: true, Remaining: 0, Reset: time.Minute}},
				{mode: limiter.Refund, hits: 20, want: limiter.Result{Allowed: true, Remaining: 20, Reset: 40 * time.Second}},
				{mode: limiter.Refund, hits: 100, want: limiter.Result{Allowed: true, Remaining: 60}},
			},
		},
		{
			name: "a clock stepping back drains nothing",
			steps: []step{
				{mode: limiter.Admit, hits: 60, want: limiter.Result{Allowed: true, Remaining: 0, Reset: time.Minute}},
				{advance: -10 * time.Second, mode: limiter.Admit, hits: 1, want: limiter.Result{Remaining: 0, Reset: time.Minute, RetryAfter: time.Second}},
				// Time is still before the last write: nothing has drained.
				{advance: 9 * time.Second, mode: limiter.Check, want: limiter.Result{Remaining: 0, Reset: time.Minute, RetryAfter: time.Second}},
				{advance: 2 * time.Second, mode: limiter.Check, want: limiter.Result{Allowed: true, Remaining: 1, Reset: 59 * time.Second}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, c, prefix := setup(t)
			for i, s := range tt.steps {
				c.Advance(s.advance)
				got := apply1(t, l, limiter.Request{Key: prefix + "k", Limit: 60, Period: time.Minute, Hits: s.hits, Mode: s.mode})
				if got != s.want {
					t.Fatalf("step %d: got %+v, want %+v", i, got, s.want)
				}
			}
		})
	}
}

// TestWindowEdge drains a limit just before a minute boundary and probes just
// after it. A fixed window would start afresh at the boundary and admit the
// whole limit again; GCRA admits only what has drained since.
func TestWindowEdge(t *testing.T) {
	const limit = 10 // per minute: one hit drains every 6 s
	tests := []struct {
		name      string
		burstAt   time.Duration // relative to the boundary
		probeAt   time.Duration
		wantProbe int // admitted out of `limit` attempts at probeAt
	}{
		{name: "1ms either side of the boundary", burstAt: -time.Millisecond, probeAt: time.Millisecond, wantProbe: 0},
		{name: "end and start of adjacent windows", burstAt: -time.Second, probeAt: 4 * time.Second, wantProbe: 0},
		{name: "one emission interval later", burstAt: -time.Millisecond, probeAt: 6*time.Second - time.Millisecond, wantProbe: 1},
		{name: "half a period later", burstAt: -time.Millisecond, probeAt: 30*time.Second - time.Millisecond, wantProbe: 5},
		{name: "a full period later", burstAt: -time.Millisecond, probeAt: time.Minute - time.Millisecond, wantProbe: limit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, c, prefix := setup(t)
			boundary := epoch.Add(time.Minute)
			attempt := func(at time.Duration) int {
				c.Set(boundary.Add(at))
				ok := 0
				for range limit {
					if apply1(t, l, limiter.Request{Key: prefix + "k", Limit: limit, Period: time.Minute, Hits: 1, Mode: limiter.Admit}).Allowed {
						ok++
					}
				}
				return ok
			}
			if got := attempt(tt.burstAt); got != limit {
				t.Fatalf("burst before the boundary: admitted %d, want %d", got, limit)
			}
			if got := attempt(tt.probeAt); got != tt.wantProbe {
				t.Errorf("probe after the boundary: admitted %d, want %d", got, tt.wantProbe)
			}
		})
	}
}

// TestNoIntervalExceedsBound drives one attempt every 250 ms for five
// minutes and checks GCRA's guarantee over every interval between two
// admissions: at most limit + limit*d/period hits in any span d.
func TestNoIntervalExceedsBound(t *testing.T) {
	const limit = 20
	l, c, prefix := setup(t)
	var admitted []time.Duration
	for at := time.Duration(0); at < 5*time.Minute; at += 250 * time.Millisecond {
		c.Set(epoch.Add(at))
		// Bursts of five at every fourth second stress the edges.
		n := 1
		if at%(4*time.Second) == 0 {
			n = 5
		}
		for range n {
			if apply1(t, l, limiter.Request{Key: prefix + "k", Limit: limit, Period: time.Minute, Hits: 1, Mode: limiter.Admit}).Allowed {
				admitted = append(admitted, at)
			}
		}
	}
	for i := range admitted {
		for j := i; j < len(admitted); j++ {
			d := admitted[j] - admitted[i]
			bound := limit + int(int64(limit)*int64(d)/int64(time.Minute))
			if n := j - i + 1; n > bound {
				t.Fatalf("%d hits admitted within %v (from %v), bound %d", n, d, admitted[i], bound)
			}
		}
	}
	// Long-run rate: 5 minutes at 20/min plus the initial burst.
	if got, want := len(admitted), limit+5*limit; got > want {
		t.Errorf("admitted %d in 5 minutes, want at most %d", got, want)
	}
}

func TestConcurrentAdmitsExactlyLimit(t *testing.T) {
	const limit, callers = 50, 200
	l, _, prefix := setup(t)
	var ok atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			res, err := l.Apply(context.Background(), []limiter.Request{{Key: prefix + "k", Limit: limit, Period: time.Minute, Hits: 1, Mode: limiter.Admit}})
			if err != nil {
				t.Errorf("Apply: %v", err)
				return
			}
			if res[0].Allowed {
				ok.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := ok.Load(); got != limit {
		t.Errorf("admitted %d of %d, want exactly %d", got, callers, limit)
	}
}

// commandCounter counts the commands a client sends, pipelines included.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func TestOneRoundTripPerBatch(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	counter := &commandCounter{}
	rdb.AddHook(counter)
	l := limiter.New(rdb)
	if err := l.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 10, 100} {
		reqs := make([]limiter.Request, n)
		for i := range reqs {
			reqs[i] = limiter.Request{Key: prefix + string(rune('a'+i%26)) + string(rune('a'+i/26)), Limit: 1000, Period: time.Minute, Hits: 1, Mode: limiter.Admit}
		}
		before := counter.n.Load()
		if _, err := l.Apply(context.Background(), reqs); err != nil {
			t.Fatal(err)
		}
		if got := counter.n.Load() - before; got != 1 {
			t.Errorf("%d requests: %d Redis commands, want 1", n, got)
		}
	}
}

func TestApplyRejectsInvalidRequests(t *testing.T) {
	// No Redis needed: validation happens before the round trip.
	l := limiter.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}))
	tests := []struct {
		name string
		req  limiter.Request
	}{
		{name: "empty key", req: limiter.Request{Limit: 1, Period: time.Second, Mode: limiter.Admit}},
		{name: "zero limit", req: limiter.Request{Key: "k", Period: time.Second, Mode: limiter.Admit}},
		{name: "period below a microsecond", req: limiter.Request{Key: "k", Limit: 1, Period: time.Nanosecond, Mode: limiter.Admit}},
		{name: "no mode", req: limiter.Request{Key: "k", Limit: 1, Period: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.Apply(context.Background(), []limiter.Request{tt.req}); err == nil {
				t.Error("Apply succeeded, want an error")
			}
		})
	}
}

func TestRedisClockByDefault(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	l := limiter.New(rdb) // no WithClock: the script reads TIME
	// 2 per day: over the test's lifetime the drain is negligible.
	for i, want := range []bool{true, true, false} {
		got := apply1(t, l, limiter.Request{Key: prefix + "k", Limit: 2, Period: 24 * time.Hour, Hits: 1, Mode: limiter.Admit})
		if got.Allowed != want {
			t.Errorf("call %d: allowed %v, want %v", i, got.Allowed, want)
		}
	}
}

func TestBatch(t *testing.T) {
	// Two limits, as for a key (2 per minute) inside its organisation
	// (10 per minute); plus a token meter that is already exhausted.
	type want struct {
		allowed   []bool
		remaining []uint64
	}
	tests := []struct {
		name  string
		reqs  func(prefix string) []limiter.Request
		calls []want
	}{
		{
			name: "a refused call consumes nothing from the other limits",
			reqs: func(p string) []limiter.Request {
				return []limiter.Request{
					{Key: p + "org", Limit: 10, Period: time.Minute, Hits: 1, Mode: limiter.Admit},
					{Key: p + "key", Limit: 2, Period: time.Minute, Hits: 1, Mode: limiter.Admit},
				}
			},
			calls: []want{
				{allowed: []bool{true, true}, remaining: []uint64{9, 1}},
				{allowed: []bool{true, true}, remaining: []uint64{8, 0}},
				// The key refuses: the org's status is fine but not consumed.
				{allowed: []bool{true, false}, remaining: []uint64{8, 0}},
				{allowed: []bool{true, false}, remaining: []uint64{8, 0}},
			},
		},
		{
			name: "an exhausted token check stops the request count",
			reqs: func(p string) []limiter.Request {
				return []limiter.Request{
					{Key: p + "rpm", Limit: 10, Period: time.Minute, Hits: 1, Mode: limiter.Admit},
					{Key: p + "tpm", Limit: 100, Period: time.Minute, Hits: 150, Mode: limiter.Record},
					{Key: p + "tpm", Limit: 100, Period: time.Minute, Mode: limiter.Check},
				}
			},
			calls: []want{
				// The record precedes the check in the batch, so the check
				// sees it, and the admit is not consumed.
				{allowed: []bool{true, false, false}, remaining: []uint64{10, 0, 0}},
			},
		},
		{
			name: "a key twice in one batch counts twice",
			reqs: func(p string) []limiter.Request {
				return []limiter.Request{
					{Key: p + "k", Limit: 3, Period: time.Minute, Hits: 1, Mode: limiter.Admit},
					{Key: p + "k", Limit: 3, Period: time.Minute, Hits: 1, Mode: limiter.Admit},
				}
			},
			calls: []want{
				{allowed: []bool{true, true}, remaining: []uint64{2, 1}},
				// One unit left: the second admit refuses, so neither consumes.
				{allowed: []bool{true, false}, remaining: []uint64{1, 1}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _, prefix := setup(t)
			for i, w := range tt.calls {
				res, err := l.Apply(context.Background(), tt.reqs(prefix))
				if err != nil {
					t.Fatal(err)
				}
				for j, r := range res {
					if r.Allowed != w.allowed[j] || r.Remaining != w.remaining[j] {
						t.Errorf("call %d request %d: allowed %v remaining %d, want %v %d",
							i, j, r.Allowed, r.Remaining, w.allowed[j], w.remaining[j])
					}
				}
			}
		})
	}
}
