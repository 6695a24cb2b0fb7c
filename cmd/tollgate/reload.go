package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/extproc/catalog"
)

// catalogSwapper takes a catalog that passed validation; *extproc.Server is one. The swap must
// be a single atomic replacement, so a request sees either the old catalog or the new one.
type catalogSwapper interface {
	SetCatalog(*catalog.Catalog)
}

// defaultReloadPoll is how often the catalog file is checked for changes.
const defaultReloadPoll = time.Second

// catalogReloader reloads the catalog file on SIGHUP and when the file changes, and hands each
// valid result to a catalogSwapper. An invalid file is logged and refused, and the catalog in
// service stays as it was: a reload applies entirely or not at all.
//
// Changes are noticed by polling the file's modification time and size (no inotify dependency,
// and it sees through the symlink swaps of Kubernetes ConfigMaps). A change is applied once the
// file has looked the same for one more poll, so a file caught half-written is not loaded; two
// edits within the file system's time granularity that keep the size are missed, which SIGHUP
// covers. Not safe for concurrent use: run owns it.
type catalogReloader struct {
	path   string
	getenv func(string) string // credentials for catalog.Load; nil is os.Getenv
	log    *slog.Logger
	poll   time.Duration
	// signals forces a reload on every receive; nil makes run listen for SIGHUP.
	signals <-chan os.Signal

	// applied is the file as of the catalog in service (or the last refused one), pending a
	// change seen once and waiting to settle.
	applied, pending fileStamp
	statErr          string // the last stat failure logged, so a missing file is logged once
}

// newCatalogReloader records the file as it is now. Call it before the first catalog.Load, so a
// change made while that load runs is still seen as a change.
func newCatalogReloader(path string, log *slog.Logger) *catalogReloader {
	r := &catalogReloader{path: path, log: log, poll: defaultReloadPoll}
	r.applied, _ = statFile(path)
	r.pending = r.applied
	return r
}

// run reloads until ctx ends. It returns nil then: a failed reload is never fatal, the previous
// catalog keeps serving.
func (r *catalogReloader) run(ctx context.Context, swap catalogSwapper) error {
	signals := r.signals
	if signals == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		defer signal.Stop(ch)
		signals = ch
	}
	poll := r.poll
	if poll <= 0 {
		poll = defaultReloadPoll
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-signals:
			r.reload(swap, "signal")
		case <-tick.C:
			r.check(swap)
		}
	}
}

// check reloads when the file differs from the applied one and has not changed since the
// previous poll.
func (r *catalogReloader) check(swap catalogSwapper) {
	st, err := statFile(r.path)
	if err != nil {
		// Between the unlink and the rename of an atomic replace the file is briefly missing;
		// say so once and keep serving.
		if msg := err.Error(); msg != r.statErr {
			r.statErr = msg
			r.log.Warn("catalog file unreadable; keeping the current catalog", "catalog", r.path, "err", err)
		}
		return
	}
	r.statErr = ""
	switch {
	case st == r.applied:
		r.pending = st
	case st != r.pending:
		r.pending = st // changed since the last poll: maybe still being written
	default:
		r.reload(swap, "file changed")
	}
}

// reload loads, validates and swaps, or logs why not.
func (r *catalogReloader) reload(swap catalogSwapper, reason string) {
	// Stat before reading: if the file changes during the read, the next poll sees a stamp
	// newer than this one and loads again.
	st, _ := statFile(r.path)
	r.applied, r.pending = st, st
	cat, err := catalog.Load(r.path, r.getenv)
	if err != nil {
		r.log.Error("catalog reload refused; keeping the current catalog", "catalog", r.path, "reason", reason, "err", err)
		return
	}
	swap.SetCatalog(cat)
	r.log.Info("catalog reloaded", "catalog", r.path, "reason", reason, "models", len(cat.Models))
	logCatalogWarnings(r.log, cat)
}

// logCatalogWarnings logs what the catalog found questionable but servable, one record each.
func logCatalogWarnings(log *slog.Logger, cat *catalog.Catalog) {
	for _, w := range cat.Warnings() {
		log.Warn("catalog warning", "problem", w.Error())
	}
}

// fileStamp is what polling compares: enough to notice an edit without reading the file.
type fileStamp struct {
	modTime time.Time
	size    int64
}

func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, fmt.Errorf("stat catalog: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fileStamp{}, errors.New("stat catalog: not a regular file")
	}
	// time.Time carries a monotonic reading only when taken from the clock, never from Stat, so
	// == compares wall time and location, which is what changes.
	return fileStamp{modTime: fi.ModTime(), size: fi.Size()}, nil
}
