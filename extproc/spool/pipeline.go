package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
)

// Store is the part of the ledger the pipeline needs. *ledger.Store implements it.
type Store interface {
	PlaceHold(ctx context.Context, h ledger.Hold) error
	SettleBatch(ctx context.Context, usages []ledger.Usage) (charged []bool, err error)
	ReleaseHolds(ctx context.Context, requestIDs []string) error
}

// Config configures a Pipeline. Zero fields take the defaults stated.
type Config struct {
	// Dir holds the spool; it is created if missing. Required. It must be on a local disk
	// that honours fsync, and must not be shared between processes (Open locks it).
	Dir string
	// MaxBatch caps the records written to Postgres per transaction. Default 256.
	MaxBatch int
	// MaxDelay is how long the writer waits after the first pending record for a batch to
	// fill. Default 5ms.
	MaxDelay time.Duration
	// CompactBytes is the spool size past which it is rewritten without applied records
	// (when less than half of it is unapplied). Default 4 MiB.
	CompactBytes int64
	// RetryMin and RetryMax bound the backoff between attempts to write a batch while
	// Postgres fails. Defaults 50ms and 5s.
	RetryMin, RetryMax time.Duration
	// AttemptTimeout bounds one attempt to write a batch. Default 10s.
	AttemptTimeout time.Duration
	// DirectTimeout bounds how long Settle and ReleaseHold keep retrying Postgres directly,
	// with backoff, when the spool cannot take a record. Default 5s.
	DirectTimeout time.Duration
	// AlarmEvery is the least time between two error logs of the alarm raised while records
	// are held only in memory, and between two logs of failed spool writes. Default 30s.
	AlarmEvery time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 5 * time.Millisecond
	}
	if c.CompactBytes <= 0 {
		c.CompactBytes = 4 << 20
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 50 * time.Millisecond
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(5*time.Second, c.RetryMin)
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 10 * time.Second
	}
	if c.DirectTimeout <= 0 {
		c.DirectTimeout = 5 * time.Second
	}
	if c.AlarmEvery <= 0 {
		c.AlarmEvery = 30 * time.Second
	}
	return c
}

// ErrClosed is returned by Settle and ReleaseHold after Close when Postgres, tried directly,
// does not take the record either (it is then logged in full, see Close).
var ErrClosed = errors.New("settlement spool closed")

// spoolFile is the spool file as the flusher uses it: an *os.File, or in tests one that fails
// on demand.
type spoolFile interface {
	Write(b []byte) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
}

// entry is one settle or release record, in memory.
type entry struct {
	seq       uint64
	op        string
	usage     ledger.Usage // opSettle
	requestID string       // opRelease
	line      []byte       // as written to the spool, for compaction
}

// flushGen is one group commit: every record appended while it is current is made durable by
// the same write and fsync. done is closed when that has happened (or failed, err).
type flushGen struct {
	done chan struct{}
	err  error
}

func newGen() *flushGen { return &flushGen{done: make(chan struct{})} }

// Pipeline is the durable settlement path: the extproc's Ledger (PlaceHold, ReleaseHold,
// Settle) with settlement and release going through the spool. It is safe for concurrent use.
type Pipeline struct {
	cfg   Config
	store Store
	log   *slog.Logger
	lock  *os.File

	mu          sync.Mutex
	buf         []byte   // encoded records not yet written
	bufRecs     []*entry // the settle and release records in buf
	writing     int      // records the flusher is writing: taken from bufRecs, not yet in pending or stranded
	cur         *flushGen
	nextSeq     uint64
	pending     []*entry // durable, not yet applied, in seq order; the writer takes from the front
	appliedUpto uint64
	closed      bool
	// stranded holds records that neither the spool nor Postgres has taken: in memory only,
	// retried by the rescuer until one of them does. While it is not empty the alarm is up.
	stranded  []*entry
	rescuing  []*entry // the stranded records the rescuer is working on
	lastAlarm time.Time
	// lastWriteErr is when a failed spool write was last logged; a failing disk fails every
	// group commit, so those logs are throttled like the alarm.
	lastWriteErr time.Time

	// Owned by the flusher goroutine (and by Close once the flusher has stopped).
	f    spoolFile
	size int64
	wrap func(*os.File) spoolFile // how a freshly opened spool file is used; identity but in tests

	kickFlush, kickWrite, kickRescue, progress chan struct{} // capacity 1: a pending wake-up
	flushes                                    atomic.Int64  // fsyncs of appended records, for tests
	stopFlush                                  chan struct{}
	stopWrite                                  context.CancelFunc
	flushDone, writeDone, rescueDone           chan struct{}
}

// Open opens (or creates) the spool in cfg.Dir, queues whatever it holds for replay into
// store, and starts the pipeline's goroutines; Close stops them. log receives the pipeline's
// reports (replays, retries, rejected records).
func Open(cfg Config, store Store, log *slog.Logger) (*Pipeline, error) {
	return openWith(cfg, store, log, func(f *os.File) spoolFile { return f })
}

func openWith(cfg Config, store Store, log *slog.Logger, wrap func(*os.File) spoolFile) (*Pipeline, error) {
	cfg = cfg.withDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("open spool: no directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	res, err := readSpool(cfg.Dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	// Damaged lines are set aside verbatim before the rewrite below drops them from the spool;
	// if that fails, Open fails rather than lose them.
	if err := quarantine(cfg.Dir, res.damaged, time.Now()); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open spool: %w", err)
	}
	for _, d := range res.damaged {
		if d.reason == "torn" {
			// Its writer never returned, so nobody was told it was durable.
			log.Warn("spool: quarantined a torn last record (a write cut short by a crash)",
				"dir", cfg.Dir, "file", quarantineName, "request_id", requestIDIn(d.raw), "bytes", len(d.raw))
			continue
		}
		log.Error("spool: quarantined a damaged record; the records around it are replayed",
			"dir", cfg.Dir, "file", quarantineName, "request_id", requestIDIn(d.raw), "bytes", len(d.raw))
	}
	// Start from a compact file: the torn tail, damaged lines (now in quarantine) and applied
	// records go.
	lines := make([][]byte, len(res.pending))
	for i, e := range res.pending {
		lines[i] = e.line
	}
	f, size, err := rewrite(cfg.Dir, lines)
	if err != nil {
		lock.Close()
		return nil, err
	}
	if n := len(res.pending); n > 0 {
		log.Info("spool: replaying settlements left by the last run", "dir", cfg.Dir, "records", n)
	}

	wctx, stopWrite := context.WithCancel(context.Background())
	p := &Pipeline{
		cfg: cfg, store: store, log: log, lock: lock,
		cur: newGen(), nextSeq: res.maxSeq + 1, pending: res.pending,
		f: wrap(f), size: size, wrap: wrap,
		kickFlush: make(chan struct{}, 1), kickWrite: make(chan struct{}, 1), kickRescue: make(chan struct{}, 1),
		progress:  make(chan struct{}, 1),
		stopFlush: make(chan struct{}), stopWrite: stopWrite,
		flushDone: make(chan struct{}), writeDone: make(chan struct{}), rescueDone: make(chan struct{}),
	}
	go p.flushLoop()
	go p.writeLoop(wctx)
	go p.rescueLoop(wctx)
	wake(p.kickWrite)
	return p, nil
}

func readSpool(dir string) (scanResult, error) {
	f, err := os.Open(filepath.Join(dir, logName))
	if errors.Is(err, os.ErrNotExist) {
		return scanResult{}, nil
	}
	if err != nil {
		return scanResult{}, fmt.Errorf("open spool: %w", err)
	}
	defer f.Close()
	return scan(f)
}

// PlaceHold passes straight through to the store: a hold must be in Postgres before the
// request is admitted, so it fails closed when Postgres is unreachable.
func (p *Pipeline) PlaceHold(ctx context.Context, h ledger.Hold) error {
	return p.store.PlaceHold(ctx, h)
}

// Settle records u durably in the spool and returns once it is fsynced; the writer then
// applies it to Postgres, exactly once, however long that takes. charged reports that the
// settlement was accepted (it will be charged unless its request id was already settled).
//
// A charge is never dropped. If the spool cannot take it (a full or failing disk), Settle
// settles it in Postgres directly, retrying with backoff for up to Config.DirectTimeout; if that
// fails too, the settlement is kept in memory, the alarm is raised (see Stranded) and the
// pipeline keeps offering it to Postgres and to the spool until one takes it. Settle then
// returns true and nil: the pipeline owns the charge. Only after Close, when nothing is left to
// retry from, does it return an error, having logged the settlement in full.
//
// If ctx ends first, Settle returns ctx's error, but the record is still the pipeline's and
// will be charged: a caller must not retry with a different request id. A zero u.CreatedAt is
// set to now, so a late replay still dates the request correctly.
func (p *Pipeline) Settle(ctx context.Context, u ledger.Usage) (charged bool, err error) {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = time.Now()
	}
	if err := p.submit(ctx, &entry{op: opSettle, usage: u}); err != nil {
		return false, fmt.Errorf("settlement %s: %w", u.RequestID, err)
	}
	return true, nil
}

// ReleaseHold records the release of requestID's hold durably and returns once it is
// fsynced; the writer applies it (releasing a hold that is gone is a no-op). Like Settle it
// falls back to Postgres directly, then to memory and the alarm: a release that is lost would
// leave the hold to expire, and an expired hold is charged its input.
func (p *Pipeline) ReleaseHold(ctx context.Context, requestID string) error {
	if err := p.submit(ctx, &entry{op: opRelease, requestID: requestID}); err != nil {
		return fmt.Errorf("hold release %s: %w", requestID, err)
	}
	return nil
}

// submit hands e to the spool and, if the spool fails, to Postgres directly; it returns nil once
// one of them, or the stranded list, owns it.
//
// A record is in exactly one place at a time (the group commit, pending, or stranded), so that
// its sequence number only changes while no watermark can be computed from it.
func (p *Pipeline) submit(ctx context.Context, e *entry) error {
	err := p.append(ctx, e)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrClosed):
		// Shutting down: the spool and the rescuer are gone, Postgres is the last way in.
		if derr := p.direct(ctx, e); derr != nil {
			p.lost(e, derr)
			return fmt.Errorf("%w, and postgres failed: %w", ErrClosed, derr)
		}
		return nil
	case errors.Is(err, errSpoolWrite):
		// The flusher has stranded e; take it back and settle it now rather than wait for the
		// rescuer, unless the rescuer already has it.
		if !p.claim(e) {
			return nil
		}
	case ctx.Err() != nil:
		return fmt.Errorf("spool: %w", err) // the group commit still has e
	default:
		// It could not even be framed, so it never reached the group commit.
	}
	// No log per record here: a failing disk fails every group commit, and the flusher reports
	// those (throttled).
	if derr := p.direct(ctx, e); derr != nil {
		p.strand([]*entry{e}) // the rescuer keeps trying it
		p.alarm(derr)
	}
	return nil
}

// append adds e to the current group commit and waits for it to be durable.
func (p *Pipeline) append(ctx context.Context, e *entry) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	g, err := p.enqueueLocked(e)
	p.mu.Unlock()
	if err != nil {
		return err
	}
	wake(p.kickFlush)

	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueueLocked frames e and adds it to the current group commit, whose generation it
// returns. p.mu must be held.
func (p *Pipeline) enqueueLocked(e *entry) (*flushGen, error) {
	if err := p.frameLocked(e); err != nil {
		return nil, err
	}
	p.buf = append(p.buf, e.line...)
	p.bufRecs = append(p.bufRecs, e)
	return p.cur, nil
}

// frameLocked gives e the next sequence number and its spool line. p.mu must be held.
func (p *Pipeline) frameLocked(e *entry) error {
	r := record{Op: e.op, RequestID: e.requestID, Seq: p.nextSeq}
	if e.op == opSettle {
		r.Usage = toJSON(e.usage)
	}
	line, err := encodeLine(r)
	if err != nil {
		return err
	}
	p.nextSeq++
	e.seq, e.line = r.Seq, line
	return nil
}

// Pending reports how many settlements and releases are durable (or about to be) but not yet
// in Postgres.
func (p *Pipeline) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending) + len(p.bufRecs) + p.writing
}

// Stranded reports how many settlements and releases, and how many micro-USD of charges, are
// held only in memory because neither the spool nor Postgres would take them. Anything but
// zero is an alarm: those charges are lost if the process dies before one of them recovers.
func (p *Pipeline) Stranded() (records int, costMicros int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	all := p.strandedLocked()
	for _, e := range all {
		costMicros += e.cost()
	}
	return len(all), costMicros
}

// strandedLocked is every record held only in memory: the stranded list and the rescuer's batch
// (a record of which the flusher may have stranded again meanwhile). p.mu must be held.
func (p *Pipeline) strandedLocked() []*entry {
	all := slices.Clone(p.stranded)
	for _, e := range p.rescuing {
		if !slices.Contains(all, e) {
			all = append(all, e)
		}
	}
	return all
}

// Close stops accepting records, waits until everything pending (and everything stranded in
// memory) is in Postgres or ctx ends, and stops the pipeline. Whatever is still pending stays
// in the spool for the next Open; the error then says how much. Stranded records get one last
// try at the spool file; any the disk still refuses are logged at error level in full, each as
// the spool line that would replay it (settlement records carry no prompt text), and reported
// in the error: the log is then the only copy. Callers must stop calling Settle first (the
// extproc's Drain); a Settle that comes later still tries Postgres directly.
func (p *Pipeline) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	p.mu.Unlock()
	wake(p.kickFlush)
	wake(p.kickWrite)
	wake(p.kickRescue)

	var drainErr error
	for drainErr == nil && p.busy() {
		select {
		case <-p.progress:
		case <-ctx.Done():
			drainErr = ctx.Err()
		}
	}
	p.stopWrite()
	<-p.writeDone
	<-p.rescueDone
	close(p.stopFlush)
	<-p.flushDone

	var errs []error
	if err := p.saveStranded(); err != nil {
		errs = append(errs, err)
	}
	left := p.Pending()
	if drainErr != nil {
		errs = append(errs, fmt.Errorf("close spool: %d records left for the next start: %w", left, drainErr))
	}
	if left == 0 {
		// Everything is applied: leave an empty spool, so the next start has nothing to read.
		f, _, err := rewrite(p.cfg.Dir, nil)
		if err != nil {
			errs = append(errs, err)
		} else {
			p.f.Close()
			p.f = p.wrap(f)
		}
	}
	if err := p.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close spool: %w", err))
	}
	p.lock.Close()
	return errors.Join(errs...)
}

// busy reports whether anything is still on its way to Postgres.
func (p *Pipeline) busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)+len(p.bufRecs)+p.writing+len(p.stranded)+len(p.rescuing) > 0
}

// wake leaves a wake-up in ch unless one is already waiting.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
