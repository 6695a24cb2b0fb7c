package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// File names inside Config.Dir.
const (
	logName        = "spool.log"
	tmpName        = "spool.log.tmp"
	lockName       = "spool.lock"
	rejectedName   = "rejected.jsonl"
	quarantineName = "quarantine.log"
)

// scanResult is what a spool file holds.
type scanResult struct {
	pending []*entry // unapplied settle and release records, in seq order
	maxSeq  uint64   // highest seq or watermark seen
	torn    bool     // the last line was torn and is ignored
	corrupt int      // damaged lines elsewhere, skipped
	// damaged holds every line that could not be read, torn tail included, verbatim: they are
	// quarantined before the spool is rewritten without them.
	damaged []damagedLine
}

// damagedLine is a spool line that failed its CRC or framing, as read.
type damagedLine struct {
	raw    []byte
	reason string // "torn" (the last line, cut short) or "corrupt"
}

// scan reads a spool file. Records at or below the highest "applied" watermark are dropped; the
// rest are pending.
func scan(r io.Reader) (scanResult, error) {
	var res scanResult
	var recs []*entry
	var upto uint64
	br := bufio.NewReaderSize(r, 1<<16)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			rec, derr := decodeLine(line)
			switch {
			case errors.Is(derr, errTorn):
				res.torn = true // only the last line can lack its newline
				res.damaged = append(res.damaged, damagedLine{raw: line, reason: "torn"})
			case derr != nil:
				// A damaged final line is a torn write; one followed by more lines is damage.
				if _, perr := br.Peek(1); perr == io.EOF {
					res.torn = true
					res.damaged = append(res.damaged, damagedLine{raw: line, reason: "torn"})
				} else {
					res.corrupt++
					res.damaged = append(res.damaged, damagedLine{raw: line, reason: "corrupt"})
				}
			case rec.Op == opApplied:
				upto = max(upto, rec.Upto)
				res.maxSeq = max(res.maxSeq, rec.Upto)
			default:
				e := &entry{seq: rec.Seq, op: rec.Op, requestID: rec.RequestID, line: line}
				if rec.Usage != nil {
					e.usage = rec.Usage.usage()
				}
				recs = append(recs, e)
				res.maxSeq = max(res.maxSeq, rec.Seq)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return scanResult{}, fmt.Errorf("read spool: %w", err)
		}
	}
	for _, e := range recs {
		if e.seq > upto {
			res.pending = append(res.pending, e)
		}
	}
	return res, nil
}

// quarantine appends damaged spool lines, each verbatim, to quarantine.log in dir and fsyncs
// it, so that the spool can be rewritten without them and nothing it held is ever deleted. Each
// line is preceded by a header naming why it was set aside, its request id when one can be made
// out, and its exact length in bytes (a torn line has no newline of its own; one is added after
// it, outside the counted bytes):
//
//	# quarantined at=2026-03-01T12:00:00Z reason=corrupt request_id=req_ab12 bytes=431
//	<the 431 bytes of the line, as they were in the spool>
//
// An operator can repair such a line (or re-frame it with a fresh CRC) and append it to
// spool.log while the extproc is stopped; settlement is idempotent by request id, so replaying a
// request that was in fact settled is harmless.
func quarantine(dir string, lines []damagedLine, now time.Time) error {
	if len(lines) == 0 {
		return nil
	}
	var buf []byte
	for _, l := range lines {
		id := requestIDIn(l.raw)
		if id == "" {
			id = "unknown"
		}
		buf = fmt.Appendf(buf, "# quarantined at=%s reason=%s request_id=%s bytes=%d\n",
			now.UTC().Format(time.RFC3339), l.reason, id, len(l.raw))
		buf = append(buf, l.raw...)
		if len(l.raw) == 0 || l.raw[len(l.raw)-1] != '\n' {
			buf = append(buf, '\n')
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, quarantineName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("quarantine damaged spool lines: %w", err)
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(dir) // the file may be new
	}
	if err != nil {
		return fmt.Errorf("quarantine damaged spool lines: %w", err)
	}
	return nil
}

// requestIDIn finds the request id in a damaged line, if its "request_id" field survived: the
// first one, which for a settlement is its usage's and for a release its own. It returns "" when
// none can be read, and never more than a plausible id (printable ASCII, at most 128 bytes), so
// that garbage cannot forge the quarantine header.
func requestIDIn(raw []byte) string {
	const key = `"request_id":"`
	i := bytes.Index(raw, []byte(key))
	if i < 0 {
		return ""
	}
	rest := raw[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j <= 0 || j > 128 {
		return ""
	}
	for _, c := range rest[:j] {
		if c <= ' ' || c > '~' || c == '\\' {
			return ""
		}
	}
	return string(rest[:j])
}

// rewrite atomically replaces the spool file with lines and returns the new file, open for
// appending, and its size. The old file stays intact until the rename, so a crash at any point
// leaves one complete spool or the other.
func rewrite(dir string, lines [][]byte) (*os.File, int64, error) {
	tmp := filepath.Join(dir, tmpName)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("compact spool: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	var size int64
	for _, l := range lines {
		n, _ := w.Write(l) // a write error sticks and is returned by Flush
		size += int64(n)
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, logName))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("compact spool: %w", err)
	}
	f, err = os.OpenFile(filepath.Join(dir, logName), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("compact spool: reopen: %w", err)
	}
	return f, size, nil
}

// syncDir makes a rename or file creation in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockDir takes an exclusive flock on dir's lock file, so that two processes never share one
// spool (their compactions would overwrite each other's records). The lock dies with the process.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock spool: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock spool %s: in use by another process: %w", dir, err)
	}
	return f, nil
}
