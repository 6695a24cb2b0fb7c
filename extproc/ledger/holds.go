package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hold is a reservation of credit for a request in flight (DESIGN.md section 6).
type Hold struct {
	RequestID, OrgID string
	KeyID            string // may be empty
	AmountMicros     int64  // upper bound of the request's cost, >= 0
	ExpiresAt        time.Time
}

// expireLockClass keys the advisory lock that serialises ExpireHolds callers (per schema, as
// for Migrate).
const expireLockClass = migrateLockClass + 1

// PlaceHold reserves h.AmountMicros of h.OrgID's credit for request h.RequestID. It succeeds
// only if the org's balance minus its open holds covers the amount, and otherwise returns
// ErrInsufficientCredit; ErrNotFound if the org (or a non-empty key) is unknown.
//
// It is idempotent per RequestID: if the request already holds credit, or has already been
// settled, it returns nil and reserves nothing more (the first hold's amount stands).
func (s *Store) PlaceHold(ctx context.Context, h Hold) error {
	switch {
	case h.RequestID == "":
		return errors.New("place hold: empty request id")
	case h.AmountMicros < 0:
		return fmt.Errorf("place hold %s: negative amount %d µUSD", h.RequestID, h.AmountMicros)
	case h.ExpiresAt.IsZero():
		return fmt.Errorf("place hold %s: no expiry", h.RequestID)
	case !validUUID(h.OrgID) || h.KeyID != "" && !validUUID(h.KeyID):
		return fmt.Errorf("place hold %s: %w", h.RequestID, ErrNotFound)
	}
	ctx, cancel := bounded(ctx)
	defer cancel()

	// The check and the reservation are one conditional UPDATE of the org's balance row, so
	// concurrent holds queue on that row lock and each re-checks against the committed sum of
	// those before it: over-admission is impossible, not merely unlikely. The hold row is
	// inserted by the same statement; if a concurrent PlaceHold for the same request wins, our
	// INSERT fails on the primary key and the whole statement, reservation included, is undone.
	var placed bool
	err := s.pool.QueryRow(ctx, `
		WITH reserved AS (
			UPDATE org_balances SET held_micros = held_micros + $4
			WHERE org_id = $2
			  AND balance_micros - held_micros >= $4
			  AND NOT EXISTS (SELECT 1 FROM holds WHERE request_id = $1)
			  AND NOT EXISTS (SELECT 1 FROM usage_records WHERE request_id = $1)
			RETURNING org_id
		)
		INSERT INTO holds (request_id, org_id, key_id, amount_micros, expires_at)
		SELECT $1, org_id, $3, $4, $5 FROM reserved
		RETURNING true`,
		h.RequestID, h.OrgID, nullable(h.KeyID), h.AmountMicros, h.ExpiresAt).Scan(&placed)
	switch {
	case err == nil:
		return nil
	case pgCode(err) == codeUniqueViolation:
		return nil // placed concurrently by a retry of the same request
	case pgCode(err) == codeForeignKeyViolation:
		return fmt.Errorf("place hold %s: key %s: %w", h.RequestID, h.KeyID, ErrNotFound)
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("place hold %s: %w", h.RequestID, err)
	}

	// Nothing was reserved. Only now, off the hot path, find out why.
	var seen, orgExists bool
	err = s.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM holds WHERE request_id = $1)
		    OR EXISTS (SELECT 1 FROM usage_records WHERE request_id = $1),
		       EXISTS (SELECT 1 FROM org_balances WHERE org_id = $2)`,
		h.RequestID, h.OrgID).Scan(&seen, &orgExists)
	switch {
	case err != nil:
		return fmt.Errorf("place hold %s: %w", h.RequestID, err)
	case seen:
		return nil
	case !orgExists:
		return fmt.Errorf("place hold %s: org %s: %w", h.RequestID, h.OrgID, ErrNotFound)
	}
	return fmt.Errorf("place hold %s: %w", h.RequestID, ErrInsufficientCredit)
}

// ReleaseHold drops the hold of a request that failed before any usage, returning its credit
// without a charge. Releasing a request that has no hold (never placed, already released,
// settled or expired) is a no-op, so it is safe to call on every failure path and to retry.
//
// Like Settle it is detached from ctx's cancellation (a reservation left behind would block
// the org's credit until it expires); it is bounded by DefaultTimeout.
func (s *Store) ReleaseHold(ctx context.Context, requestID string) error {
	ctx, cancel := detached(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `
		WITH released AS (
			DELETE FROM holds WHERE request_id = $1 RETURNING org_id, amount_micros
		)
		UPDATE org_balances b SET held_micros = b.held_micros - r.amount_micros
		FROM released r WHERE b.org_id = r.org_id`, requestID)
	if err != nil {
		return fmt.Errorf("release hold %s: %w", requestID, err)
	}
	return nil
}

// ExpireHolds releases every hold whose ExpiresAt is at or before now and returns them, oldest
// first, so the caller can report them: each is a request whose process died between hold
// and settlement, and whose usage (if any) is unknown to the ledger.
//
// Holds being settled or released at that moment are skipped, not waited for. Concurrent
// callers are serialised, so an org's held amount is never updated by two sweeps at once.
func (s *Store) ExpireHolds(ctx context.Context, now time.Time) ([]Hold, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("expire holds: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`,
		int32(expireLockClass)); err != nil {
		return nil, fmt.Errorf("expire holds: lock: %w", err)
	}
	rows, err := tx.Query(ctx, `
		WITH expired AS (
			DELETE FROM holds WHERE request_id IN (
				SELECT request_id FROM holds WHERE expires_at <= $1 FOR UPDATE SKIP LOCKED
			)
			RETURNING request_id, org_id, key_id, amount_micros, expires_at
		), per_org AS (
			SELECT org_id, sum(amount_micros)::bigint AS amount FROM expired GROUP BY org_id
		), released AS (
			UPDATE org_balances b SET held_micros = b.held_micros - p.amount
			FROM per_org p WHERE b.org_id = p.org_id
		)
		SELECT request_id, org_id::text, coalesce(key_id::text, ''), amount_micros, expires_at
		FROM expired ORDER BY expires_at, request_id`, now)
	if err != nil {
		return nil, fmt.Errorf("expire holds: %w", err)
	}
	expired, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Hold, error) {
		var h Hold
		err := r.Scan(&h.RequestID, &h.OrgID, &h.KeyID, &h.AmountMicros, &h.ExpiresAt)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("expire holds: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("expire holds: commit: %w", err)
	}
	return expired, nil
}
