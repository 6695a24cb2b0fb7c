package spool

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
)

// writeLoop moves durable records into Postgres, a batch at a time and in order, until ctx is
// cancelled (by Close). A batch is retried until it is applied: records are never skipped,
// only set aside (rejected) when Postgres refuses them permanently.
func (p *Pipeline) writeLoop(ctx context.Context) {
	defer close(p.writeDone)
	backoff := p.cfg.RetryMin
	for {
		batch := p.nextBatch(ctx)
		if batch == nil {
			return
		}
		for {
			err := p.apply(ctx, batch)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return // Close gave up waiting; the batch stays in the spool
			}
			p.log.Warn("spool: cannot write settlements to postgres; will retry",
				"records", len(batch), "pending", p.Pending(), "retry_in", backoff, "err", err)
			if !sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, p.cfg.RetryMax)
		}
		backoff = p.cfg.RetryMin
		p.markApplied(batch)
	}
}

// nextBatch waits for pending records and returns up to MaxBatch of them, from the front. It
// waits up to MaxDelay after the first for the batch to fill, unless the pipeline is closing.
// It returns nil when ctx is done.
func (p *Pipeline) nextBatch(ctx context.Context) []*entry {
	var deadline <-chan time.Time
	for {
		p.mu.Lock()
		n, closing := len(p.pending), p.closed
		p.mu.Unlock()
		if n >= p.cfg.MaxBatch || n > 0 && closing {
			break
		}
		if n > 0 && deadline == nil {
			t := time.NewTimer(p.cfg.MaxDelay)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.kickWrite:
			continue
		case <-deadline:
		}
		break
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(len(p.pending), p.cfg.MaxBatch)
	return append([]*entry(nil), p.pending[:n]...)
}

// apply writes one batch: its settlements in one SettleBatch, its releases in one
// ReleaseHolds. Both are idempotent, so a retry after any failure is safe.
func (p *Pipeline) apply(ctx context.Context, batch []*entry) error {
	var usages []ledger.Usage
	var releases []string
	for _, e := range batch {
		if e.op == opSettle {
			usages = append(usages, e.usage)
		} else {
			releases = append(releases, e.requestID)
		}
	}
	actx, cancel := context.WithTimeout(ctx, p.cfg.AttemptTimeout)
	defer cancel()
	if len(usages) > 0 {
		_, err := p.store.SettleBatch(actx, usages)
		if ledger.Permanent(err) {
			err = p.applyEach(actx, usages)
		}
		if err != nil {
			return err
		}
	}
	if len(releases) > 0 {
		if err := p.store.ReleaseHolds(actx, releases); err != nil {
			return err
		}
	}
	return nil
}

// applyEach settles usages one at a time, to apply every good record of a batch that one bad
// record made fail, and sets aside the records Postgres refuses for good.
func (p *Pipeline) applyEach(ctx context.Context, usages []ledger.Usage) error {
	for _, u := range usages {
		_, err := p.store.SettleBatch(ctx, []ledger.Usage{u})
		switch {
		case err == nil:
		case ledger.Permanent(err):
			if rerr := p.reject(u, err); rerr != nil {
				return rerr // keep it in the spool rather than lose it
			}
		default:
			return err
		}
	}
	return nil
}

// reject appends u to rejected.jsonl (fsynced) and logs it, so an operator can fix what made
// Postgres refuse it (an org deleted under it, say) and settle it by hand.
func (p *Pipeline) reject(u ledger.Usage, cause error) error {
	p.log.Error("spool: settlement refused by the ledger; set aside in rejected.jsonl",
		"request_id", u.RequestID, "org_id", u.OrgID, "cost_micros", u.CostMicros, "err", cause)
	line, err := json.Marshal(struct {
		Error string     `json:"error"`
		Usage *usageJSON `json:"usage"`
	}{cause.Error(), toJSON(u)})
	if err != nil {
		return fmt.Errorf("reject settlement %s: %w", u.RequestID, err)
	}
	f, err := os.OpenFile(filepath.Join(p.cfg.Dir, rejectedName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("reject settlement %s: %w", u.RequestID, err)
	}
	_, err = f.Write(append(line, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reject settlement %s: %w", u.RequestID, err)
	}
	return nil
}

// markApplied drops batch from the front of pending and appends an "applied" mark to the
// spool. The mark rides on the next group commit rather than forcing an fsync of its own: if
// it is lost in a crash, the batch is replayed, and replay is idempotent.
func (p *Pipeline) markApplied(batch []*entry) {
	last := batch[len(batch)-1].seq
	line, err := encodeLine(record{Op: opApplied, Upto: last})
	p.mu.Lock()
	p.pending = p.pending[len(batch):]
	p.appliedUpto = last
	if err == nil {
		p.buf = append(p.buf, line...)
	}
	p.mu.Unlock()
	wake(p.kickFlush)
	wake(p.progress)
}

// sleep waits d or until ctx is done, reporting whether it slept the whole time.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter spreads retries of many instances over [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
