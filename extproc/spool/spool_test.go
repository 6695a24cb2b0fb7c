package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
)

const testOrg = "0b0e0c5e-0000-4000-8000-000000000001"

func testUsage(id string) ledger.Usage {
	return ledger.Usage{
		RequestID: id, OrgID: testOrg, Model: "mock-gpt", Provider: "mock", Status: 200,
		PromptTokens: 12, CompletionTokens: 34, CostMicros: 56, CostItems: map[string]int64{"prompt": 2, "completion": 49},
		Latency: 1500 * time.Microsecond, TimeToFirstToken: time.Millisecond,
		CreatedAt: time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC),
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t *testing.T, cfg Config, store Store) *Pipeline {
	t.Helper()
	p, err := Open(cfg, store, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func closeDrained(t *testing.T, p *Pipeline) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func spoolSize(t *testing.T, dir string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestRecordRoundTrip(t *testing.T) {
	u := testUsage("req_1")
	line, err := encodeLine(record{Seq: 7, Op: opSettle, Usage: toJSON(u)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeLine(line)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Usage.usage()
	if r.Seq != 7 || got.RequestID != u.RequestID || got.Latency != u.Latency || got.TimeToFirstToken != u.TimeToFirstToken ||
		!got.CreatedAt.Equal(u.CreatedAt) || got.CostItems["completion"] != 49 || got.CostMicros != 56 {
		t.Errorf("round trip: got %+v, want %+v", got, u)
	}
	tests := []struct {
		name string
		line []byte
		want error
	}{
		{name: "no newline", line: line[:len(line)-1], want: errTorn},
		{name: "cut short", line: line[:len(line)/2], want: errTorn},
		{name: "bit flip", line: bytes.Replace(line, []byte(`"cost_micros":56`), []byte(`"cost_micros":57`), 1), want: errCorrupt},
		{name: "bad crc", line: append([]byte("zzzzzzzz"), line[8:]...), want: errCorrupt},
		{name: "empty line", line: []byte("\n"), want: errCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeLine(tt.line); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestTornRecordIgnored writes a spool as a crash would leave it — two complete records, one
// applied, and a last record cut short — and checks that Open replays only the unapplied
// complete record.
func TestTornRecordIgnored(t *testing.T) {
	for _, tail := range []string{"cut", "garbled"} {
		t.Run(tail, func(t *testing.T) {
			dir := t.TempDir()
			var file, tornLine []byte
			for _, r := range []record{
				{Seq: 1, Op: opSettle, Usage: toJSON(testUsage("req_applied"))},
				{Seq: 2, Op: opSettle, Usage: toJSON(testUsage("req_pending"))},
				{Op: opApplied, Upto: 1},
				{Seq: 3, Op: opSettle, Usage: toJSON(testUsage("req_torn"))},
			} {
				line, err := encodeLine(r)
				if err != nil {
					t.Fatal(err)
				}
				if r.Seq == 3 {
					if tail == "cut" {
						line = line[:len(line)-20]
					} else {
						line = append(bytes.Replace(line[:len(line)-1], []byte("req_torn"), []byte("req_xxxx"), 1), '\n')
					}
					tornLine = line
				}
				file = append(file, line...)
			}
			if err := os.WriteFile(filepath.Join(dir, logName), file, 0o600); err != nil {
				t.Fatal(err)
			}
			store := newFakeStore()
			p := open(t, Config{Dir: dir}, store)
			closeDrained(t, p)
			if got := store.settled; len(got) != 1 || got["req_pending"] != 1 {
				t.Errorf("replayed %v, want only req_pending", got)
			}
			if n := spoolSize(t, dir); n != 0 {
				t.Errorf("spool size after a drained close = %d, want 0", n)
			}
			// Ignored, not deleted: the torn line is kept verbatim in quarantine.
			q, err := os.ReadFile(filepath.Join(dir, quarantineName))
			if err != nil || !bytes.Contains(q, tornLine) || !bytes.Contains(q, []byte("reason=torn")) {
				t.Errorf("quarantine.log = %q (%v); want the torn line", q, err)
			}
		})
	}
}

// TestOutageReplayExactlyOnce keeps the store down while settlements arrive, closes the
// pipeline with them still pending (as a process would stop during an outage), and checks
// that the next Open applies every one of them exactly once — and the one after, none.
func TestOutageReplayExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	store := newFakeStore()
	store.down.Store(true)
	p := open(t, Config{Dir: dir, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}, store)
	const n = 100
	for i := range n {
		if charged, err := p.Settle(context.Background(), testUsage(fmt.Sprintf("req_%d", i))); err != nil || !charged {
			t.Fatalf("Settle = %v, %v", charged, err)
		}
	}
	if err := p.ReleaseHold(context.Background(), "req_released"); err != nil {
		t.Fatal(err)
	}
	if got := p.Pending(); got != n+1 {
		t.Errorf("Pending = %d, want %d", got, n+1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := p.Close(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "101 records left") {
		t.Fatalf("Close during an outage = %v, want records left and a deadline", err)
	}
	if store.count() != 0 {
		t.Fatalf("settled %d while the store was down", store.count())
	}

	store.down.Store(false)
	p = open(t, Config{Dir: dir}, store)
	closeDrained(t, p)
	if got := store.count(); got != n {
		t.Errorf("settled %d after recovery, want %d", got, n)
	}
	if store.released["req_released"] != 1 {
		t.Errorf("release applied %d times, want 1", store.released["req_released"])
	}

	// Nothing is left to replay.
	before := len(store.batches)
	p = open(t, Config{Dir: dir}, store)
	closeDrained(t, p)
	if len(store.batches) != before {
		t.Errorf("a clean spool replayed %d more batches", len(store.batches)-before)
	}
}

// TestRecoveryWhileRunning takes the store down and back up under a running pipeline.
func TestRecoveryWhileRunning(t *testing.T) {
	store := newFakeStore()
	p := open(t, Config{Dir: t.TempDir(), RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond}, store)
	for i := range 10 {
		if _, err := p.Settle(context.Background(), testUsage(fmt.Sprintf("before_%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "first settlements applied", func() bool { return store.count() == 10 })
	store.down.Store(true)
	for i := range 10 {
		if _, err := p.Settle(context.Background(), testUsage(fmt.Sprintf("during_%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if p.Pending() != 10 || store.count() != 10 {
		t.Fatalf("pending %d, settled %d during the outage; want 10, 10", p.Pending(), store.count())
	}
	store.down.Store(false)
	waitFor(t, "spooled settlements applied after recovery", func() bool { return store.count() == 20 && p.Pending() == 0 })
	closeDrained(t, p)
}

// TestGroupCommit checks that concurrent settlements share fsyncs: 200 at once must not cost
// 200 fsyncs, and every one of them is applied.
func TestGroupCommit(t *testing.T) {
	store := newFakeStore()
	p := open(t, Config{Dir: t.TempDir()}, store)
	const n = 200
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			if _, err := p.Settle(context.Background(), testUsage(fmt.Sprintf("req_%d", i))); err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fsyncs := p.flushes.Load()
	t.Logf("%d settlements, %d fsyncs", n, fsyncs)
	if fsyncs >= n/4 {
		t.Errorf("%d fsyncs for %d concurrent settlements: group commit is not grouping", fsyncs, n)
	}
	closeDrained(t, p)
	if got := store.count(); got != n {
		t.Errorf("settled %d, want %d", got, n)
	}
	for _, size := range store.batches {
		if size > 256 {
			t.Errorf("batch of %d exceeds MaxBatch", size)
		}
	}
}

// TestCompaction checks that a spool past CompactBytes is rewritten without applied records
// while the pipeline runs, and that nothing unapplied is lost by it.
func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	store := newFakeStore()
	const compactAt = 8 << 10
	p := open(t, Config{Dir: dir, CompactBytes: compactAt, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}, store)
	for i := range 300 { // about 150 KiB of records
		if _, err := p.Settle(context.Background(), testUsage(fmt.Sprintf("req_%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all applied", func() bool { return store.count() == 300 })
	// Each applied mark rides on a later flush; one more settlement flushes the last of them
	// and gives compaction its chance.
	if _, err := p.Settle(context.Background(), testUsage("req_last")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "spool compacted", func() bool { return spoolSize(t, dir) < 2*compactAt })

	// While the store is down the spool grows past the threshold but keeps every record.
	store.down.Store(true)
	for i := range 100 {
		if _, err := p.Settle(context.Background(), testUsage(fmt.Sprintf("out_%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if size := spoolSize(t, dir); size < compactAt {
		t.Errorf("spool of 100 unapplied records is %d bytes: records were dropped", size)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_ = p.Close(ctx) // leaves them for the next start
	cancel()
	store.down.Store(false)
	p = open(t, Config{Dir: dir}, store)
	closeDrained(t, p)
	if got := store.count(); got != 401 {
		t.Errorf("settled %d, want 401", got)
	}
	if n := spoolSize(t, dir); n != 0 {
		t.Errorf("spool size after a drained close = %d, want 0", n)
	}
}

// TestRejectedRecordsSetAside checks that a record the ledger refuses for good does not block
// the others, and is kept in rejected.jsonl.
func TestRejectedRecordsSetAside(t *testing.T) {
	dir := t.TempDir()
	store := newFakeStore()
	store.refuse = "0b0e0c5e-0000-4000-8000-00000000dead"
	p := open(t, Config{Dir: dir, MaxDelay: 50 * time.Millisecond}, store)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			u := testUsage(fmt.Sprintf("req_%d", i))
			if i == 7 {
				u.OrgID = store.refuse
			}
			if _, err := p.Settle(context.Background(), u); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	closeDrained(t, p)
	if got := store.count(); got != 19 {
		t.Errorf("settled %d, want 19", got)
	}
	rejected, err := os.ReadFile(filepath.Join(dir, rejectedName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rejected, []byte(`"request_id":"req_7"`)) || bytes.Count(rejected, []byte("\n")) != 1 {
		t.Errorf("rejected.jsonl = %s", rejected)
	}
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	p := open(t, Config{Dir: dir}, newFakeStore())
	defer closeDrained(t, p)
	if _, err := Open(Config{Dir: dir}, newFakeStore(), quiet()); err == nil {
		t.Fatal("a second pipeline opened the same spool")
	}
}

// TestSettleAfterClose: a settlement that arrives after Close (a drain that timed out) goes to
// Postgres directly; if Postgres fails too, it is refused with ErrClosed and logged in full.
func TestSettleAfterClose(t *testing.T) {
	store := newFakeStore()
	p := open(t, Config{Dir: t.TempDir(), DirectTimeout: 20 * time.Millisecond, RetryMin: time.Millisecond}, store)
	closeDrained(t, p)
	if _, err := p.Settle(context.Background(), testUsage("late")); err != nil || store.settled["late"] != 1 {
		t.Errorf("Settle after Close = %v, settled %d; want it settled directly", err, store.settled["late"])
	}
	store.down.Store(true)
	if _, err := p.Settle(context.Background(), testUsage("later")); !errors.Is(err, ErrClosed) {
		t.Errorf("Settle after Close with postgres down = %v, want ErrClosed", err)
	}
}

// TestDamagedLineQuarantined puts garbage and a record with a flipped bit in the middle of a
// spool: every good record around them is replayed exactly once, and quarantine.log holds each
// bad line byte for byte, named by its request id where one is readable. A second Open finds
// nothing more to replay or quarantine.
func TestDamagedLineQuarantined(t *testing.T) {
	dir := t.TempDir()
	line := func(r record) []byte {
		b, err := encodeLine(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	flipped := line(record{Seq: 3, Op: opSettle, Usage: toJSON(testUsage("req_flipped"))})
	flipped = bytes.Replace(flipped, []byte(`"cost_micros":56`), []byte(`"cost_micros":66`), 1)
	garbage := []byte("\x00\xff not a record at all \xfe\n")
	var file []byte
	file = append(file, line(record{Seq: 1, Op: opSettle, Usage: toJSON(testUsage("req_1"))})...)
	file = append(file, line(record{Seq: 2, Op: opSettle, Usage: toJSON(testUsage("req_2"))})...)
	file = append(file, flipped...)
	file = append(file, garbage...)
	file = append(file, line(record{Seq: 4, Op: opRelease, RequestID: "req_released"})...)
	file = append(file, line(record{Seq: 5, Op: opSettle, Usage: toJSON(testUsage("req_5"))})...)
	if err := os.WriteFile(filepath.Join(dir, logName), file, 0o600); err != nil {
		t.Fatal(err)
	}

	store := newFakeStore()
	closeDrained(t, open(t, Config{Dir: dir}, store))
	for _, id := range []string{"req_1", "req_2", "req_5"} {
		if store.settled[id] != 1 {
			t.Errorf("%s settled %d times, want 1", id, store.settled[id])
		}
	}
	if store.count() != 3 || store.released["req_released"] != 1 {
		t.Errorf("settled %v, released %v", store.settled, store.released)
	}
	q, err := os.ReadFile(filepath.Join(dir, quarantineName))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, header string
		raw          []byte
	}{
		{name: "flipped bit", header: fmt.Sprintf("reason=corrupt request_id=req_flipped bytes=%d\n", len(flipped)), raw: flipped},
		{name: "garbage", header: fmt.Sprintf("reason=corrupt request_id=unknown bytes=%d\n", len(garbage)), raw: garbage},
	} {
		if !bytes.Contains(q, append([]byte(tt.header), tt.raw...)) {
			t.Errorf("%s: quarantine.log lacks the header %q followed by the line verbatim:\n%q", tt.name, tt.header, q)
		}
	}

	// The spool no longer holds them; the quarantine is never rewritten.
	closeDrained(t, open(t, Config{Dir: dir}, store))
	if store.count() != 3 || len(store.batches) != 1 {
		t.Errorf("a second open replayed again: %v in %d batches", store.settled, len(store.batches))
	}
	q2, err := os.ReadFile(filepath.Join(dir, quarantineName))
	if err != nil || !bytes.Equal(q2, q) {
		t.Errorf("quarantine changed on a second open (%v)", err)
	}
}

// TestQuarantineUnwritable: if damaged lines cannot be set aside, Open fails and the spool is
// left as it was, rather than rewritten without them.
func TestQuarantineUnwritable(t *testing.T) {
	dir := t.TempDir()
	good, err := encodeLine(record{Seq: 1, Op: opSettle, Usage: toJSON(testUsage("req_1"))})
	if err != nil {
		t.Fatal(err)
	}
	file := append(append([]byte("garbage\n"), good...), good...)
	if err := os.WriteFile(filepath.Join(dir, logName), file, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, quarantineName), 0o700); err != nil { // a directory cannot be appended to
		t.Fatal(err)
	}
	if _, err := Open(Config{Dir: dir}, newFakeStore(), quiet()); err == nil {
		t.Fatal("Open succeeded without quarantining a damaged line")
	}
	got, err := os.ReadFile(filepath.Join(dir, logName))
	if err != nil || !bytes.Equal(got, file) {
		t.Errorf("spool changed: %q (%v)", got, err)
	}
}

func TestRequestIDIn(t *testing.T) {
	tests := []struct{ name, raw, want string }{
		{name: "settlement", raw: `0000 {"seq":1,"op":"settle","usage":{"request_id":"req_a","org_id":"x"}}`, want: "req_a"},
		{name: "release", raw: `0000 {"seq":1,"op":"release","request_id":"req_b"}`, want: "req_b"},
		{name: "cut inside the id", raw: `0000 {"seq":1,"op":"release","request_id":"req_`, want: ""},
		{name: "none", raw: "\x00\x01garbage", want: ""},
		{name: "a newline cannot forge a header", raw: "{\"request_id\":\"a\nb\"}", want: ""},
		{name: "too long", raw: `{"request_id":"` + strings.Repeat("x", 200) + `"}`, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := requestIDIn([]byte(tt.raw)); got != tt.want {
				t.Errorf("requestIDIn = %q, want %q", got, tt.want)
			}
		})
	}
}
