package spool

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// faultyFile is the spool file on a disk that fails on demand, as a full or dying disk does:
// writes return ENOSPC and write nothing.
type faultyFile struct {
	*os.File
	fail *atomic.Bool
}

func (f faultyFile) Write(b []byte) (int, error) {
	if f.fail.Load() {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Write(b)
}

func (f faultyFile) Sync() error {
	if f.fail.Load() {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Sync()
}

// logBuffer collects a pipeline's JSON logs for a test to read.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.WriteString(string(p))
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openFaulty opens a pipeline whose spool file fails while the returned flag is set.
func openFaulty(t *testing.T, cfg Config, store Store, logs *logBuffer) (*Pipeline, *atomic.Bool) {
	t.Helper()
	fail := new(atomic.Bool)
	p, err := openWith(cfg, store, slog.New(slog.NewJSONHandler(logs, nil)), func(f *os.File) spoolFile {
		return faultyFile{File: f, fail: fail}
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, fail
}

func fastRetries(dir string) Config {
	return Config{Dir: dir, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, DirectTimeout: 30 * time.Millisecond, AlarmEvery: time.Hour}
}

// TestSpoolFailsPostgresUp: with the spool's disk failing, settlements and releases go to
// Postgres directly, each exactly once, and nothing is left stranded.
func TestSpoolFailsPostgresUp(t *testing.T) {
	store := newFakeStore()
	var logs logBuffer
	p, fail := openFaulty(t, fastRetries(t.TempDir()), store, &logs)
	fail.Store(true)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if charged, err := p.Settle(context.Background(), testUsage(fmt.Sprintf("req_%d", i))); err != nil || !charged {
				t.Errorf("Settle = %v, %v", charged, err)
			}
		})
	}
	wg.Wait()
	if err := p.ReleaseHold(context.Background(), "req_released"); err != nil {
		t.Fatal(err)
	}
	// Each call returns once the pipeline owns the record; the rescuer may be the one writing it.
	waitFor(t, "everything settled directly", func() bool {
		n, _ := p.Stranded()
		return n == 0 && store.count() == 20 && store.releasedTimes("req_released") == 1
	})
	fail.Store(false)
	closeDrained(t, p)
	for id, n := range store.settled {
		if n != 1 {
			t.Errorf("%s settled %d times", id, n)
		}
	}
	if !strings.Contains(logs.String(), "postgres directly") {
		t.Errorf("the spool failure was not logged: %s", logs.String())
	}
}

// TestSpoolAndPostgresFail: with both failing, settlements are kept in memory and the alarm is
// up (Stranded, an error log); when Postgres returns they are applied exactly once.
func TestSpoolAndPostgresFail(t *testing.T) {
	for _, recovers := range []string{"postgres", "spool"} {
		t.Run(recovers+" recovers first", func(t *testing.T) {
			store := newFakeStore()
			var logs logBuffer
			p, fail := openFaulty(t, fastRetries(t.TempDir()), store, &logs)
			fail.Store(true)
			store.down.Store(true)
			const n = 10
			for i := range n {
				if charged, err := p.Settle(context.Background(), testUsage(fmt.Sprintf("req_%d", i))); err != nil || !charged {
					t.Fatalf("Settle = %v, %v; want the pipeline to own the charge", charged, err)
				}
			}
			if err := p.ReleaseHold(context.Background(), "req_released"); err != nil {
				t.Fatal(err)
			}
			if got, cost := p.Stranded(); got != n+1 || cost != n*testUsage("").CostMicros {
				t.Errorf("Stranded = %d, %d µUSD; want %d, %d", got, cost, n+1, n*testUsage("").CostMicros)
			}
			if !strings.Contains(logs.String(), "ALARM") {
				t.Errorf("no alarm logged: %s", logs.String())
			}
			if store.count() != 0 {
				t.Fatalf("settled %d while postgres was down", store.count())
			}

			if recovers == "postgres" {
				store.down.Store(false)
			} else {
				fail.Store(false)
				waitFor(t, "stranded records spooled", func() bool { s, _ := p.Stranded(); return s == 0 && p.Pending() == n+1 })
				store.down.Store(false)
			}
			waitFor(t, "stranded records applied", func() bool {
				s, _ := p.Stranded()
				return s == 0 && p.Pending() == 0 && store.count() == n
			})
			fail.Store(false)
			closeDrained(t, p)
			for id, c := range store.settled {
				if c != 1 {
					t.Errorf("%s settled %d times", id, c)
				}
			}
			if store.released["req_released"] != 1 {
				t.Errorf("release applied %d times, want 1", store.released["req_released"])
			}
		})
	}
}

// TestCloseWithStranded: a shutdown while settlements are stranded saves them to the spool if
// the disk has recovered (the next start replays them), and otherwise logs each in full as a
// spool line that, appended to the spool, replays it.
func TestCloseWithStranded(t *testing.T) {
	for _, disk := range []string{"recovered", "still failing"} {
		t.Run(disk, func(t *testing.T) {
			dir := t.TempDir()
			store := newFakeStore()
			var logs logBuffer
			p, fail := openFaulty(t, fastRetries(dir), store, &logs)
			fail.Store(true)
			store.down.Store(true)
			for i := range 3 {
				if _, err := p.Settle(context.Background(), testUsage(fmt.Sprintf("req_%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if disk == "recovered" {
				fail.Store(false)
				// The rescuer may spool them before Close; either way they must survive it.
			}
			err := p.Close(ctx)
			if err == nil {
				t.Fatal("Close with records left returned nil")
			}

			if disk == "still failing" {
				if !strings.Contains(err.Error(), "only in the log") {
					t.Errorf("Close = %v; want it to say the records are only in the log", err)
				}
				// The operator's recovery: append the logged lines to the spool.
				var lines []byte
				sc := bufio.NewScanner(strings.NewReader(logs.String()))
				for sc.Scan() {
					var entry struct{ Msg, Line string }
					if json.Unmarshal(sc.Bytes(), &entry) == nil && strings.Contains(entry.Msg, "append its line") {
						lines = append(lines, entry.Line...)
					}
				}
				f, err := os.OpenFile(filepath.Join(dir, logName), os.O_WRONLY|os.O_APPEND, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write(lines); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			store.down.Store(false)
			closeDrained(t, open(t, Config{Dir: dir}, store))
			if got := store.count(); got != 3 {
				t.Errorf("settled %d after restart, want 3 (logs: %s)", got, logs.String())
			}
			for id, c := range store.settled {
				if c != 1 {
					t.Errorf("%s settled %d times", id, c)
				}
			}
		})
	}
}

// TestRescueDoesNotDisturbWatermark: records rescued into the spool after later records were
// applied get fresh sequence numbers, so the applied watermark cannot hide them from a replay.
func TestRescueDoesNotDisturbWatermark(t *testing.T) {
	dir := t.TempDir()
	store := newFakeStore()
	var logs logBuffer
	p, fail := openFaulty(t, fastRetries(dir), store, &logs)
	fail.Store(true)
	store.down.Store(true)
	if _, err := p.Settle(context.Background(), testUsage("stranded")); err != nil {
		t.Fatal(err)
	}
	// The disk recovers: the stranded record is spooled, with a sequence number after those
	// that failed.
	fail.Store(false)
	waitFor(t, "stranded record spooled", func() bool { s, _ := p.Stranded(); return s == 0 })
	// A crash now (Close with Postgres still down) must leave it to the next start.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v", err)
	}
	store.down.Store(false)
	closeDrained(t, open(t, Config{Dir: dir}, store))
	if store.settled["stranded"] != 1 {
		t.Errorf("stranded record settled %d times after restart, want 1", store.settled["stranded"])
	}
}
