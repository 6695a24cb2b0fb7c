package spool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// errSpoolWrite marks the failure of a group commit: the spool could not take its records.
var errSpoolWrite = errors.New("spool write failed")

// id is the request id e is about.
func (e *entry) id() string {
	if e.op == opSettle {
		return e.usage.RequestID
	}
	return e.requestID
}

// cost is what e charges, in micro-USD.
func (e *entry) cost() int64 {
	if e.op == opSettle {
		return e.usage.CostMicros
	}
	return 0
}

// strand keeps records that the spool refused in memory, for the rescuer.
func (p *Pipeline) strand(recs []*entry) {
	p.mu.Lock()
	for _, e := range recs {
		if !slices.Contains(p.stranded, e) {
			p.stranded = append(p.stranded, e)
		}
	}
	p.mu.Unlock()
	wake(p.kickRescue)
}

// claim takes e out of the stranded list, reporting whether it was there.
func (p *Pipeline) claim(e *entry) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.stranded, e)
	if i < 0 {
		return false
	}
	p.stranded = slices.Delete(p.stranded, i, i+1)
	return true
}

// direct applies e to Postgres without the spool, retrying with backoff for up to
// Config.DirectTimeout. It is detached from ctx's cancellation: the caller may be a request
// whose client has gone, and its charge must still be written.
func (p *Pipeline) direct(ctx context.Context, e *entry) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DirectTimeout)
	defer cancel()
	backoff := p.cfg.RetryMin
	for {
		err := p.apply(dctx, []*entry{e})
		if err == nil {
			return nil
		}
		if !sleep(dctx, jitter(backoff)) {
			return err
		}
		backoff = min(2*backoff, p.cfg.RetryMax)
	}
}

// rescueLoop owns the stranded records: it offers them to Postgres and then to the spool, with
// capped exponential backoff and the alarm up, until one takes them or ctx is cancelled (by
// Close, which then deals with what is left). It takes each batch out of the stranded list
// while it works on it, so that no one else applies the same record meanwhile.
func (p *Pipeline) rescueLoop(ctx context.Context) {
	defer close(p.rescueDone)
	backoff := p.cfg.RetryMin
	for {
		p.mu.Lock()
		n := min(len(p.stranded), p.cfg.MaxBatch)
		batch := slices.Clone(p.stranded[:n])
		p.stranded = slices.Delete(p.stranded, 0, n)
		p.rescuing = batch
		p.mu.Unlock()
		if len(batch) == 0 {
			backoff = p.cfg.RetryMin
			select {
			case <-ctx.Done():
				return
			case <-p.kickRescue:
				continue
			}
		}
		err := p.apply(ctx, batch)
		if err == nil {
			p.rescued()
			p.log.Info("spool: stranded records settled in postgres directly", "records", len(batch))
			continue
		}
		if ctx.Err() != nil {
			p.rescued()
			p.strand(batch)
			return
		}
		rerr := p.respool(ctx, batch)
		p.rescued()
		if rerr == nil {
			p.log.Info("spool: stranded records written to the spool", "records", len(batch))
			continue
		}
		// The flusher has stranded them again (or, if ctx ended, still has them).
		p.alarm(errors.Join(err, rerr))
		if !sleep(ctx, jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, p.cfg.RetryMax)
	}
}

// rescued ends the rescuer's hold on its batch.
func (p *Pipeline) rescued() {
	p.mu.Lock()
	p.rescuing = nil
	p.mu.Unlock()
	wake(p.progress)
}

// respool moves the rescuer's batch back into the group commit, with fresh sequence numbers
// (their old ones may be under an applied watermark by now), and waits for the flush. If it
// fails, the flusher strands them again.
func (p *Pipeline) respool(ctx context.Context, batch []*entry) error {
	p.mu.Lock()
	var g *flushGen
	for _, e := range batch {
		gen, err := p.enqueueLocked(e)
		if err != nil {
			p.stranded = append(p.stranded, e) // cannot be framed: Postgres is its only way
			continue
		}
		g = gen
	}
	p.mu.Unlock()
	if g == nil {
		return errors.New("no record could be framed")
	}
	wake(p.kickFlush)
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// alarm reports, at most once per Config.AlarmEvery, that records are held only in memory.
func (p *Pipeline) alarm(cause error) {
	now := time.Now()
	p.mu.Lock()
	all := p.strandedLocked()
	n := len(all)
	var cost int64
	for _, e := range all {
		cost += e.cost()
	}
	due := n > 0 && now.Sub(p.lastAlarm) >= p.cfg.AlarmEvery
	if due {
		p.lastAlarm = now
	}
	p.mu.Unlock()
	if due {
		p.log.Error("spool: ALARM: settlements held only in memory; neither the spool nor postgres takes them, retrying",
			"records", n, "cost_micros", cost, "dir", p.cfg.Dir, "err", cause)
	}
}

// saveStranded gives what is still stranded when the pipeline stops one last try at the spool
// file, so that the next Open replays it. What the disk still refuses is logged in full (lost),
// the only copy left. It runs in Close, after the flusher has stopped, and so owns the file.
func (p *Pipeline) saveStranded() error {
	p.mu.Lock()
	left := p.stranded
	p.stranded = nil
	var buf []byte
	for _, e := range left {
		if p.frameLocked(e) == nil {
			buf = append(buf, e.line...)
		}
	}
	p.mu.Unlock()
	if len(left) == 0 {
		return nil
	}
	err := p.write(buf)
	if err == nil {
		p.mu.Lock()
		p.pending = append(p.pending, left...)
		p.mu.Unlock()
		p.log.Warn("spool: stranded records saved to the spool for the next start", "records", len(left))
		return nil
	}
	var cost int64
	for _, e := range left {
		cost += e.cost()
		p.lost(e, err)
	}
	return fmt.Errorf("close spool: %d records (%d µUSD) could not be saved and are only in the log: %w", len(left), cost, err)
}

// lost logs a record that nothing would take, in full, as the spool line that replays it (its
// sequence number is above every one written, so no watermark hides it): an operator can append
// the line to spool.log while the extproc is stopped.
func (p *Pipeline) lost(e *entry, cause error) {
	p.mu.Lock()
	err := p.frameLocked(e)
	line := string(e.line)
	p.mu.Unlock()
	if err != nil {
		line = fmt.Sprintf("unframeable (%v): %+v", err, e.usage)
	}
	p.log.Error("spool: ALARM: record not saved anywhere; append its line to spool.log to replay it",
		"request_id", e.id(), "op", e.op, "cost_micros", e.cost(), "line", line, "err", cause)
}
