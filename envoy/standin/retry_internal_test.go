package standin

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestPreviousPriorities pins previous_priorities.cc determinePriorityLoad with one host per
// level and update_frequency 3: attempts 1-3 on level 0, 4-6 on level 1, 7-9 on level 2, and
// once every level was excluded, the original load again.
func TestPreviousPriorities(t *testing.T) {
	rs := newRetryState(&retryPolicy{numRetries: 20, priorityUpdateFreq: 3}, rand.New(rand.NewPCG(1, 2)))
	health := []int{100, 100, 100}
	original := distributeLoad(health, 100)
	var got []int
	for range 10 {
		load := rs.priorityLoad(health, original)
		p := slices.IndexFunc(load, func(l int) bool { return l == 100 })
		got = append(got, p)
		rs.onHostAttempted(p)
	}
	if want := []int{0, 0, 0, 1, 1, 1, 2, 2, 2, 0}; !slices.Equal(got, want) {
		t.Errorf("priorities = %v, want %v", got, want)
	}
}

// TestDistributeLoad pins the priority load by health: the lowest healthy level takes it all,
// a partly healthy level spills the rest, nothing healthy puts it all on level 0.
func TestDistributeLoad(t *testing.T) {
	for _, tt := range []struct {
		health, want []int
	}{
		{[]int{100, 100}, []int{100, 0}},
		{[]int{0, 100}, []int{0, 100}},
		{[]int{70, 100}, []int{70, 30}},
		{[]int{0, 0}, []int{100, 0}},
	} {
		total := 0
		for _, h := range tt.health {
			total += h
		}
		if got := distributeLoad(tt.health, min(total, 100)); !slices.Equal(got, tt.want) {
			t.Errorf("distributeLoad(%v) = %v, want %v", tt.health, got, tt.want)
		}
	}
}

// TestBackOff pins backoff_strategy.cc: retry n waits uniformly in [0, min(base×2^(n-1), max)).
func TestBackOff(t *testing.T) {
	rs := newRetryState(&retryPolicy{backOffBase: 300 * time.Millisecond, backOffMax: 8 * time.Second}, rand.New(rand.NewPCG(3, 4)))
	bounds := []time.Duration{300, 600, 1200, 2400, 4800, 8000, 8000}
	for i, b := range bounds {
		if d := rs.backOff(); d < 0 || d >= b*time.Millisecond {
			t.Errorf("retry %d: back-off %s outside [0, %dms)", i+1, d, b)
		}
	}
}

func TestWouldRetry(t *testing.T) {
	rp, err := parseRetryPolicy(nil)
	if rp != nil || err != nil {
		t.Fatal("nil policy")
	}
	p := &retryPolicy{on: retryOnConnectFailure | retryOnRetriableStatusCodes, retriableCodes: []int{429}}
	h := &headerMap{}
	if !p.wouldRetryStatus(429, h) || p.wouldRetryStatus(503, h) || !p.wouldRetryFailure(failConnect) || p.wouldRetryFailure(failReset) {
		t.Error("connect-failure,retriable-status-codes")
	}
	h.add("x-envoy-ratelimited", "true")
	if p.wouldRetryStatus(429, h) {
		t.Error("x-envoy-ratelimited must not be retried")
	}
}
