package ledger

import (
	"context"
	"log/slog"
	"time"
)

// DefaultSweepInterval is how often SweepHolds looks for expired holds by default.
const DefaultSweepInterval = 30 * time.Second

// SweepHolds calls ExpireHolds every interval (DefaultSweepInterval if ≤ 0) until ctx is done,
// and logs every expired hold at warning level with its request_id, org_id, key_id and
// amount_micros: each is a request whose process died (or whose settlement is still waiting
// in a spool) when the hold's time ran out, so an operator may want to look at it. A failed
// sweep is logged and retried at the next tick. It returns ctx's error.
//
// Running it on every instance is safe: ExpireHolds serialises concurrent sweeps.
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
		log.Warn("hold expired without settlement",
			"request_id", h.RequestID, "org_id", h.OrgID, "key_id", h.KeyID,
			"amount_micros", h.AmountMicros, "expired_at", h.ExpiresAt)
	}
}
