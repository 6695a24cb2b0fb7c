package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/catalog"
)

// fakeSwapper records every catalog it is handed.
type fakeSwapper struct {
	mu      sync.Mutex
	current *catalog.Catalog
	swaps   chan *catalog.Catalog
}

func newFakeSwapper() *fakeSwapper { return &fakeSwapper{swaps: make(chan *catalog.Catalog, 16)} }

func (f *fakeSwapper) SetCatalog(c *catalog.Catalog) {
	f.mu.Lock()
	f.current = c
	f.mu.Unlock()
	f.swaps <- c
}

func (f *fakeSwapper) Current() *catalog.Catalog {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

// logRecorder is a slog.Handler that hands each record's message to the test.
type logRecorder struct{ msgs chan string }

func (l logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.msgs <- b.String()
	return nil
}
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logRecorder) WithGroup(string) slog.Handler      { return l }

const waitLimit = 5 * time.Second

// catalogYAML is a valid catalog with the given model ids.
func catalogYAML(ids ...string) string {
	var b strings.Builder
	b.WriteString("providers: [{name: p, kind: openai, base_url: \"https://p.example\"}]\nmodels:\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "  - {id: %s, max_output_tokens: 10, backends: [{provider: p}]}\n", id)
	}
	return b.String()
}

// reloadHarness runs a catalogReloader on a temporary catalog file until the test ends.
type reloadHarness struct {
	path    string
	swap    *fakeSwapper
	logs    chan string
	signals chan os.Signal
	version int
}

func startReloader(t *testing.T, poll time.Duration, initial string) *reloadHarness {
	t.Helper()
	h := &reloadHarness{
		path:    filepath.Join(t.TempDir(), "catalog.yaml"),
		swap:    newFakeSwapper(),
		logs:    make(chan string, 64),
		signals: make(chan os.Signal, 1),
	}
	h.write(t, initial)
	r := newCatalogReloader(h.path, slog.New(logRecorder{h.logs}))
	r.poll, r.signals = poll, h.signals
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.run(ctx, h.swap) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run returned %v", err)
		}
	})
	return h
}

// write replaces the file the way operators are told to (write aside, rename over), with a
// modification time of its own so the change is visible to polling whatever the file system's
// time granularity, and never seen half-written.
func (h *reloadHarness) write(t *testing.T, content string) {
	t.Helper()
	tmp := h.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	h.version++
	mtime := time.Date(2026, 1, 1, 0, 0, h.version, 0, time.UTC)
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.path); err != nil {
		t.Fatal(err)
	}
}

func (h *reloadHarness) waitSwap(t *testing.T) *catalog.Catalog {
	t.Helper()
	select {
	case c := <-h.swap.swaps:
		return c
	case <-time.After(waitLimit):
		t.Fatal("no catalog swapped in")
		return nil
	}
}

// waitLog waits for a log record starting with prefix and returns it.
func (h *reloadHarness) waitLog(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case msg := <-h.logs:
			if strings.HasPrefix(msg, prefix) {
				return msg
			}
		case <-deadline:
			t.Fatalf("no log record %q", prefix)
			return ""
		}
	}
}

func modelIDs(c *catalog.Catalog) string {
	var ids []string
	for _, m := range c.Models {
		ids = append(ids, m.ID)
	}
	return strings.Join(ids, ",")
}

func TestReloadOnFileChange(t *testing.T) {
	h := startReloader(t, 5*time.Millisecond, catalogYAML("a"))

	h.write(t, catalogYAML("a", "b"))
	if got := modelIDs(h.waitSwap(t)); got != "a,b" {
		t.Fatalf("swapped in models %s, want a,b", got)
	}

	// An invalid file is refused with its problems logged, and the catalog in service stays.
	h.write(t, catalogYAML("a", "b")+"  - {id: c, max_output_tokens: 10, backends: [{provider: nope}]}\n")
	msg := h.waitLog(t, "catalog reload refused")
	if !strings.Contains(msg, `catalog.yaml:5: models[2].backends[0].provider: unknown provider "nope"`) {
		t.Errorf("refusal does not locate the problem: %s", msg)
	}
	if got := modelIDs(h.swap.Current()); got != "a,b" {
		t.Errorf("after a refused reload the server has models %s, want a,b", got)
	}
	select {
	case c := <-h.swap.swaps:
		t.Fatalf("an invalid catalog was swapped in: %s", modelIDs(c))
	default:
	}

	// Fixing the file applies it.
	h.write(t, catalogYAML("a", "b", "c"))
	if got := modelIDs(h.waitSwap(t)); got != "a,b,c" {
		t.Fatalf("swapped in models %s, want a,b,c", got)
	}
}

func TestReloadOnSignal(t *testing.T) {
	// Polling is slowed down so only the signal can cause the reload.
	h := startReloader(t, time.Hour, catalogYAML("a"))

	h.write(t, catalogYAML("b"))
	h.signals <- os.Interrupt // any value: the reloader treats every receive as SIGHUP
	if got := modelIDs(h.waitSwap(t)); got != "b" {
		t.Fatalf("swapped in models %s, want b", got)
	}

	h.write(t, "models: [")
	h.signals <- os.Interrupt
	h.waitLog(t, "catalog reload refused")
	if got := modelIDs(h.swap.Current()); got != "b" {
		t.Errorf("after a refused reload the server has models %s, want b", got)
	}
}

func TestReloadLogsWarnings(t *testing.T) {
	h := startReloader(t, time.Hour, catalogYAML("a"))
	h.write(t, `providers: [{name: p, kind: openai, base_url: "https://p.example", api_key_env: TOLLGATE_TEST_UNSET_KEY}]
models: [{id: a, max_output_tokens: 10, backends: [{provider: p}]}]
`)
	h.signals <- os.Interrupt
	h.waitSwap(t)
	msg := h.waitLog(t, "catalog warning")
	if !strings.Contains(msg, "TOLLGATE_TEST_UNSET_KEY is not set") {
		t.Errorf("warning record: %s", msg)
	}
}

func TestReloadSurvivesMissingFile(t *testing.T) {
	h := startReloader(t, 5*time.Millisecond, catalogYAML("a"))
	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	h.waitLog(t, "catalog file unreadable")
	h.write(t, catalogYAML("z"))
	if got := modelIDs(h.waitSwap(t)); got != "z" {
		t.Fatalf("swapped in models %s, want z", got)
	}
}
