package ledger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
)

// syncBuffer is a bytes.Buffer safe for a logger writing on one goroutine and a test reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSweepHoldsLogsEachExpiredHold(t *testing.T) {
	s, _ := ledgertest.NewStore(t)
	org, key := newOrg(t, s, 100_000)
	ctx, cancel := context.WithCancel(context.Background())
	expired := requestID("expired")
	h := hold(expired, org, key, 4_000)
	h.InputMicros = 1_500
	h.ExpiresAt = time.Now().Add(-time.Second)
	live := hold(requestID("live"), org, key, 1_000)
	for _, h := range []ledger.Hold{h, live} {
		if err := s.PlaceHold(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- s.SweepHolds(ctx, 10*time.Millisecond, slog.New(slog.NewJSONHandler(&logs, nil))) }()

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), expired) {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the expired hold; logs: %s", logs.String())
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case err := <-done:
			t.Fatalf("sweeper exited: %v", err)
		}
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("SweepHolds returned %v, want context.Canceled", err)
	}
	var line struct {
		Msg          string `json:"msg"`
		RequestID    string `json:"request_id"`
		OrgID        string `json:"org_id"`
		AmountMicros int64  `json:"amount_micros"`
		InputMicros  int64  `json:"input_micros"`
	}
	first, _, _ := strings.Cut(logs.String(), "\n")
	if err := json.Unmarshal([]byte(first), &line); err != nil {
		t.Fatal(err)
	}
	if line.RequestID != expired || line.OrgID != org || line.AmountMicros != 4_000 || line.InputMicros != 1_500 {
		t.Errorf("log = %+v", line)
	}
	if strings.Contains(logs.String(), live.RequestID) {
		t.Errorf("a live hold was reported: %s", logs.String())
	}
	wantMoney(t, s, org, 100_000-1_500, 1_000) // charged its input, not released for free
}
