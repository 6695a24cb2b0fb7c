package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hold is a reservation of credit for a request in flight (docs/design.md section 6).
type Hold struct {
	RequestID, OrgID string
	KeyID            string // may be empty
	AmountMicros     int64  // upper bound of the request's cost, >= 0
	// InputMicros is what the request costs at least once a provider has read it: its prompt
	// priced at a lower-bound token estimate, markup applied; 0 <= InputMicros <= AmountMicros.
	// ExpireHolds charges it when the hold expires without a settlement.
	InputMicros int64
	ExpiresAt   time.Time
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
	case h.InputMicros < 0 || h.InputMicros > h.AmountMicros:
		return fmt.Errorf("place hold %s: input charge %d µUSD outside [0, %d]", h.RequestID, h.InputMicros, h.AmountMicros)
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
		INSERT INTO holds (request_id, org_id, key_id, amount_micros, input_micros, expires_at)
		SELECT $1, org_id, $3, $4, $6, $5 FROM reserved
		RETURNING true`,
		h.RequestID, h.OrgID, nullable(h.KeyID), h.AmountMicros, h.ExpiresAt, h.InputMicros).Scan(&placed)
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
// without a charge. Releasing a request that has no hold (never placed, already released or
// settled) is a no-op, so it is safe to call on every failure path and to retry. If the hold
// has already expired and ExpireHolds charged the request its input, the release refunds that
// provisional charge (an 'adjustment' entry): the release is the gateway's own word that the
// request cost nothing, and it only arrives that late when it waited in a spool.
//
// Like Settle it is detached from ctx's cancellation (a reservation left behind would block
// the org's credit until it expires); it is bounded by DefaultTimeout.
func (s *Store) ReleaseHold(ctx context.Context, requestID string) error {
	if err := s.ReleaseHolds(ctx, []string{requestID}); err != nil {
		return fmt.Errorf("release hold %s: %w", requestID, err)
	}
	return nil
}

// Expired is a hold that ExpireHolds expired.
type Expired struct {
	Hold
	// Charged reports that the expiry charged the request Hold.InputMicros. It is false when
	// the request was settled meanwhile (its settlement stands, and nothing more is charged).
	Charged bool
}

// expiredNote marks the ledger entries and usage records written by ExpireHolds.
const expiredNote = "hold expired without a settlement: input charged"

// ExpireHolds expires every hold whose ExpiresAt is at or before now and returns them, oldest
// first. Each is a request whose process died (or was cut off from Postgres) between hold and
// settlement. The request may have reached a provider, which bills the prompt it read, so an
// expired hold is not released for free: it is settled as a usage charge of its InputMicros,
// with a provisional usage record (status 0, finish reason "hold_expired"). If the request's
// real settlement arrives later, Settle replaces that record and books the difference as an
// adjustment; a late ReleaseHold refunds it.
//
// It is exactly once per request id: a request already settled is not charged again, and a
// settlement racing the sweep either lands first (the expiry then charges nothing) or replaces
// the provisional charge. Holds being settled or released at that moment are skipped, not
// waited for. Concurrent callers are serialised, so an org's amounts are never updated by two
// sweeps at once.
func (s *Store) ExpireHolds(ctx context.Context, now time.Time) ([]Expired, error) {
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
	// Steps in the order that cannot deadlock with settlements: take the expired holds (skipping
	// any a settlement has locked), lock their orgs' balance rows in id order (as every writer
	// of usage locks the balance first, a settlement of the same request is then either done
	// or not begun), and write their usage (a request settled meanwhile is not charged again).
	rows, err := tx.Query(ctx, `
		DELETE FROM holds WHERE request_id IN (
			SELECT request_id FROM holds WHERE expires_at <= $1 FOR UPDATE SKIP LOCKED
		)
		RETURNING request_id, org_id::text, coalesce(key_id::text, ''), amount_micros, input_micros,
			created_at, expires_at`, now)
	if err != nil {
		return nil, fmt.Errorf("expire holds: %w", err)
	}
	var created []time.Time
	expired, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Expired, error) {
		var e Expired
		var at time.Time
		err := r.Scan(&e.RequestID, &e.OrgID, &e.KeyID, &e.AmountMicros, &e.InputMicros, &at, &e.ExpiresAt)
		created = append(created, at)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("expire holds: %w", err)
	}
	if len(expired) == 0 {
		return nil, tx.Commit(ctx)
	}
	n := len(expired)
	ids, orgs, keys, inputs := make([]string, n), make([]string, n), make([]*string, n), make([]int64, n)
	held := map[string]int64{}
	for i, e := range expired {
		ids[i], orgs[i], inputs[i] = e.RequestID, e.OrgID, e.InputMicros
		if e.KeyID != "" {
			keys[i] = &expired[i].KeyID
		}
		held[e.OrgID] += e.AmountMicros
	}
	orgIDs := slices.Sorted(maps.Keys(held))
	if _, err := tx.Exec(ctx, `SELECT 1 FROM org_balances WHERE org_id = ANY($1::uuid[]) ORDER BY org_id FOR UPDATE`, orgIDs); err != nil {
		return nil, fmt.Errorf("expire holds: lock balances: %w", err)
	}
	rows, err = tx.Query(ctx, `
		WITH rec AS (
			INSERT INTO usage_records (request_id, org_id, key_id, status, finish_reason, cost_micros,
				cost_items, created_at, provisional, expired_charge_micros)
			SELECT t.id, t.org, t.key, 0, 'hold_expired', t.input, '{}', t.created, true, t.input
			FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::bigint[], $5::timestamptz[]) AS t(id, org, key, input, created)
			ON CONFLICT (request_id) DO NOTHING
			RETURNING request_id, org_id, cost_micros
		), charge AS (
			INSERT INTO ledger_entries (org_id, kind, amount_micros, request_id, note)
			SELECT org_id, 'usage', -cost_micros, request_id, $6 FROM rec
		)
		SELECT request_id FROM rec`, ids, orgs, keys, inputs, created, expiredNote)
	if err != nil {
		return nil, fmt.Errorf("expire holds: charge input: %w", err)
	}
	chargedIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("expire holds: charge input: %w", err)
	}
	charged := make(map[string]bool, len(chargedIDs))
	for _, id := range chargedIDs {
		charged[id] = true
	}
	cost := map[string]int64{}
	for i := range expired {
		e := &expired[i]
		e.Charged = charged[e.RequestID]
		if e.Charged {
			cost[e.OrgID] += e.InputMicros
		}
	}
	heldCol, costCol := make([]int64, len(orgIDs)), make([]int64, len(orgIDs))
	for i, o := range orgIDs {
		heldCol[i], costCol[i] = held[o], cost[o]
	}
	if _, err := tx.Exec(ctx, `
		UPDATE org_balances b
		SET held_micros = b.held_micros - t.held, balance_micros = b.balance_micros - t.cost
		FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS t(org, held, cost)
		WHERE b.org_id = t.org`, orgIDs, heldCol, costCol); err != nil {
		return nil, fmt.Errorf("expire holds: move balances: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("expire holds: commit: %w", err)
	}
	slices.SortFunc(expired, func(a, b Expired) int {
		if c := a.ExpiresAt.Compare(b.ExpiresAt); c != 0 {
			return c
		}
		return strings.Compare(a.RequestID, b.RequestID)
	})
	return expired, nil
}
