package ledger

import (
	"context"
	"log/slog"
	"time"
)

// DefaultSweepInterval is how often SweepHolds looks for expired holds by default.
const DefaultSweepInterval = 30 * time.Second

// SweepHolds calls ExpireHolds every interval (DefaultSweepInterval if ≤ 0) until ctx is done,
// and logs every expired hold at warning level with its request_id, org_id, key_id,
// amount_micros and the input_micros it was charged (0 when a settlement got there first): each
// is a request whose process died (or whose settlement is still waiting in a spool) when the
// hold's time ran out, so an operator may want to look at it. A failed sweep is logged and
// retried at the next tick. It returns ctx's error.
//
// Running it on every instance is safe: ExpireHolds serialises concurrent sweeps and charges
// each request at most once.
func (s *Store) SweepHolds(ctx context.Context, interval time.Duration, log *slog.Logger) error {
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.sweepOnce(ctx, log)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Store) sweepOnce(ctx context.Context, log *slog.Logger) {
	expired, err := s.ExpireHolds(ctx, time.Now())
	if err != nil {
		if ctx.Err() == nil {
			log.Error("expire holds", "err", err)
		}
		return
	}
	for _, h := range expired {
		var charged int64
		if h.Charged {
			charged = h.InputMicros
		}
		log.Warn("hold expired without settlement; charged its input",
			"request_id", h.RequestID, "org_id", h.OrgID, "key_id", h.KeyID,
			"amount_micros", h.AmountMicros, "input_micros", charged, "expired_at", h.ExpiresAt)
	}
}
