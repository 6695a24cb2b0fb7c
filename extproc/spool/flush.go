package spool

import (
	"fmt"
	"time"
)

// flushLoop is the group commit: it writes and fsyncs whatever has accumulated since the last
// flush, one write and one fsync for every record that arrived meanwhile. It exits when
// stopFlush is closed, after a final flush.
func (p *Pipeline) flushLoop() {
	defer close(p.flushDone)
	for {
		select {
		case <-p.kickFlush:
			p.flush()
		case <-p.stopFlush:
			p.flush()
			return
		}
	}
}

func (p *Pipeline) flush() {
	p.mu.Lock()
	buf, recs, g := p.buf, p.bufRecs, p.cur
	p.buf, p.bufRecs, p.cur = nil, nil, newGen()
	p.writing = len(recs) // still counted by Pending and Close while no list holds them
	p.mu.Unlock()
	if len(buf) == 0 {
		close(g.done) // nobody waits on a generation with nothing in it
		return
	}
	err := p.write(buf)
	if err == nil {
		p.mu.Lock()
		p.pending = append(p.pending, recs...)
		p.writing = 0
		p.mu.Unlock()
		wake(p.kickWrite)
	} else {
		// The records are not lost: they become stranded, and their callers (if still waiting)
		// try Postgres directly; the rescuer keeps trying both. Applied marks in the buffer are
		// lost, which costs only an idempotent replay after a restart.
		p.mu.Lock()
		due := time.Since(p.lastWriteErr) >= p.cfg.AlarmEvery
		if due {
			p.lastWriteErr = time.Now()
		}
		p.mu.Unlock()
		if due {
			p.log.Error("spool: write failed; its records go to postgres directly (logged at most every alarm interval)",
				"records", len(recs), "err", err)
		}
		p.strand(recs)
		p.mu.Lock()
		p.writing = 0
		p.mu.Unlock()
		err = fmt.Errorf("%w: %w", errSpoolWrite, err)
	}
	g.err = err
	close(g.done)
	wake(p.progress)
	if err == nil {
		p.maybeCompact()
	}
}

// write appends buf to the spool and fsyncs it. On failure it cuts the file back to where it
// was, so that a partial write cannot leave damage in the middle of the spool.
func (p *Pipeline) write(buf []byte) error {
	n, err := p.f.Write(buf)
	if err == nil {
		err = p.f.Sync()
	}
	if err != nil {
		if n > 0 {
			_ = p.f.Truncate(p.size) // best effort; a torn tail is detected on Open anyway
		}
		return fmt.Errorf("append to spool: %w", err)
	}
	p.size += int64(n)
	p.flushes.Add(1)
	return nil
}

// maybeCompact rewrites the spool with only the unapplied records once it is large and mostly
// applied. It runs on the flusher goroutine, which owns the file, so no write can interleave.
func (p *Pipeline) maybeCompact() {
	if p.size < p.cfg.CompactBytes {
		return
	}
	p.mu.Lock()
	lines := make([][]byte, len(p.pending))
	var live int64
	for i, e := range p.pending {
		lines[i] = e.line
		live += int64(len(e.line))
	}
	p.mu.Unlock()
	if live > p.size/2 {
		return // mostly unapplied (an outage): rewriting would not shrink it
	}
	f, size, err := rewrite(p.cfg.Dir, lines)
	if err != nil {
		p.log.Error("spool: compaction failed; will retry", "err", err)
		return
	}
	p.f.Close()
	p.f, p.size = p.wrap(f), size
}
