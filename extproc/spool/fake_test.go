package spool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
)

// fakeStore is an in-memory ledger that counts what was applied. While down is set, every
// write fails as a lost connection would.
type fakeStore struct {
	down atomic.Bool
	// refuse makes settlements of this org fail permanently (an unknown org).
	refuse string

	mu       sync.Mutex
	settled  map[string]int // request id -> times charged (must end at 1)
	released map[string]int
	batches  []int // batch sizes
}

var errDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func newFakeStore() *fakeStore {
	return &fakeStore{settled: map[string]int{}, released: map[string]int{}}
}

func (f *fakeStore) PlaceHold(ctx context.Context, h ledger.Hold) error { return nil }

func (f *fakeStore) SettleBatch(ctx context.Context, us []ledger.Usage) ([]bool, error) {
	if f.down.Load() {
		return nil, errDown
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range us {
		if u.OrgID == f.refuse {
			return nil, ledger.ErrNotFound
		}
	}
	f.batches = append(f.batches, len(us))
	charged := make([]bool, len(us))
	for i, u := range us {
		if f.settled[u.RequestID] == 0 {
			charged[i] = true
		}
		f.settled[u.RequestID] = 1 // idempotent, like the ledger
	}
	return charged, nil
}

func (f *fakeStore) ReleaseHolds(ctx context.Context, ids []string) error {
	if f.down.Load() {
		return errDown
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.released[id]++
	}
	return nil
}

func (f *fakeStore) releasedTimes(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.released[id]
}

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.settled)
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("%s: not true after 10s", what)
		case <-tick.C:
		}
	}
}
