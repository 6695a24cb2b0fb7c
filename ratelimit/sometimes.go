package ratelimit

import (
	"sync/atomic"
	"time"
)

// sometimes lets one event through per interval and counts the rest, so that
// a Redis outage at thousands of decisions per second logs one line every few
// seconds. The zero value lets everything through; it is safe for concurrent
// use.
type sometimes struct {
	every      time.Duration
	next       atomic.Int64 // unix nanoseconds before which events are dropped
	suppressed atomic.Int64
}

// allow reports whether to log now and, if so, how many events were dropped
// since the last one logged.
func (s *sometimes) allow() (ok bool, suppressed int64) {
	now := time.Now().UnixNano()
	next := s.next.Load()
	if now < next || !s.next.CompareAndSwap(next, now+int64(s.every)) {
		s.suppressed.Add(1)
		return false, 0
	}
	return true, s.suppressed.Swap(0)
}
