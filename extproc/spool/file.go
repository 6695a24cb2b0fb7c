package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// File names inside Config.Dir.
const (
	logName      = "spool.log"
	tmpName      = "spool.log.tmp"
	lockName     = "spool.lock"
	rejectedName = "rejected.jsonl"
)

// scanResult is what a spool file holds.
type scanResult struct {
	pending []*entry // unapplied settle and release records, in seq order
	maxSeq  uint64   // highest seq or watermark seen
	torn    bool     // the last line was torn and is ignored
	corrupt int      // damaged lines elsewhere, skipped
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
			case derr != nil:
				// A damaged final line is a torn write; one followed by more lines is damage.
				if _, perr := br.Peek(1); perr == io.EOF {
					res.torn = true
				} else {
					res.corrupt++
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
