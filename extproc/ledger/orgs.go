package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// OrgOptions describes a new organisation. The zero value is a subscribed, opted-in org with
// no markup; the negative flags keep it that way.
type OrgOptions struct {
	Name            string
	MarkupBps       int // markup on provider cost in basis points; >= 0
	NoSubscription  bool
	GatewayDisabled bool
	// Models is the org's plan (canonical model ids); nil allows every model.
	Models []string
}

// Org is an organisation with its materialised balance.
type Org struct {
	ID, Name           string
	MarkupBps          int
	SubscriptionActive bool
	GatewayEnabled     bool
	BalanceMicros      int64 // sum of the org's ledger entries
	HeldMicros         int64 // sum of its open holds; available credit is BalanceMicros - HeldMicros
}

// CreateOrg creates an organisation with a zero balance and returns its id (a UUID).
func (s *Store) CreateOrg(ctx context.Context, o OrgOptions) (string, error) {
	if o.MarkupBps < 0 {
		return "", fmt.Errorf("create org: negative markup %d bps", o.MarkupBps)
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	// The org and its balance row are created together: every other query may assume both.
	var id string
	err := s.pool.QueryRow(ctx, `
		WITH o AS (
			INSERT INTO orgs (name, markup_bps, subscription_active, gateway_enabled, models)
			VALUES ($1, $2, $3, $4, $5)
			RETURNING id
		)
		INSERT INTO org_balances (org_id) SELECT id FROM o
		RETURNING org_id::text`,
		o.Name, o.MarkupBps, !o.NoSubscription, !o.GatewayDisabled, o.Models).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("create org: %w", err)
	}
	return id, nil
}

// Org returns the organisation orgID, or ErrNotFound.
func (s *Store) Org(ctx context.Context, orgID string) (Org, error) {
	if !validUUID(orgID) {
		return Org{}, fmt.Errorf("org %s: %w", orgID, ErrNotFound)
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	var o Org
	err := s.pool.QueryRow(ctx, `
		SELECT o.id::text, o.name, o.markup_bps, o.subscription_active, o.gateway_enabled,
		       b.balance_micros, b.held_micros
		FROM orgs o JOIN org_balances b ON b.org_id = o.id
		WHERE o.id = $1`, orgID).
		Scan(&o.ID, &o.Name, &o.MarkupBps, &o.SubscriptionActive, &o.GatewayEnabled, &o.BalanceMicros, &o.HeldMicros)
	if errors.Is(err, pgx.ErrNoRows) {
		return Org{}, fmt.Errorf("org %s: %w", orgID, ErrNotFound)
	}
	if err != nil {
		return Org{}, fmt.Errorf("org %s: %w", orgID, err)
	}
	return o, nil
}

// AddCredits tops up orgID by micros (> 0): a 'topup' ledger entry and the balance increment,
// in one statement. It returns the new balance. It is not idempotent: a caller that retries
// after an ambiguous error must check the ledger first.
func (s *Store) AddCredits(ctx context.Context, orgID string, micros int64, note string) (int64, error) {
	if micros <= 0 {
		return 0, fmt.Errorf("add credits %s: amount %d µUSD is not positive", orgID, micros)
	}
	bal, err := s.post(ctx, orgID, "topup", micros, note)
	if err != nil {
		return 0, fmt.Errorf("add credits %s: %w", orgID, err)
	}
	return bal, nil
}

// Adjust posts a correction of micros (either sign, not zero) to orgID as an 'adjustment'
// ledger entry; note says why and is required. It returns the new balance.
func (s *Store) Adjust(ctx context.Context, orgID string, micros int64, note string) (int64, error) {
	if micros == 0 || note == "" {
		return 0, fmt.Errorf("adjust %s: an adjustment needs a non-zero amount and a note", orgID)
	}
	bal, err := s.post(ctx, orgID, "adjustment", micros, note)
	if err != nil {
		return 0, fmt.Errorf("adjust %s: %w", orgID, err)
	}
	return bal, nil
}

// post appends a ledger entry and moves the materialised balance with it.
func (s *Store) post(ctx context.Context, orgID, kind string, micros int64, note string) (int64, error) {
	if !validUUID(orgID) {
		return 0, ErrNotFound
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	var bal int64
	err := s.pool.QueryRow(ctx, `
		WITH e AS (
			INSERT INTO ledger_entries (org_id, kind, amount_micros, note) VALUES ($1, $2, $3, $4)
		)
		UPDATE org_balances SET balance_micros = balance_micros + $3
		WHERE org_id = $1
		RETURNING balance_micros`, orgID, kind, micros, note).Scan(&bal)
	switch {
	case pgCode(err) == codeForeignKeyViolation, errors.Is(err, pgx.ErrNoRows):
		return 0, ErrNotFound
	case err != nil:
		return 0, err
	}
	return bal, nil
}

// Balance returns orgID's materialised balance in micro-USD (open holds not subtracted).
func (s *Store) Balance(ctx context.Context, orgID string) (int64, error) {
	if !validUUID(orgID) {
		return 0, fmt.Errorf("balance %s: %w", orgID, ErrNotFound)
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	var bal int64
	err := s.pool.QueryRow(ctx, `SELECT balance_micros FROM org_balances WHERE org_id = $1`, orgID).Scan(&bal)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("balance %s: %w", orgID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("balance %s: %w", orgID, err)
	}
	return bal, nil
}

// Reconcile returns orgID's materialised balance and the sum of its ledger entries, read from
// one snapshot. They are equal unless something wrote to one without the other.
func (s *Store) Reconcile(ctx context.Context, orgID string) (materialised, sum int64, err error) {
	return s.reconcile(ctx, orgID, "reconcile", `
		SELECT b.balance_micros,
		       (SELECT coalesce(sum(amount_micros), 0)::bigint FROM ledger_entries WHERE org_id = $1)
		FROM org_balances b WHERE b.org_id = $1`)
}

// ReconcileHolds returns orgID's materialised held amount and the sum of its open holds, read
// from one snapshot. They are equal unless something moved one without the other.
func (s *Store) ReconcileHolds(ctx context.Context, orgID string) (materialised, sum int64, err error) {
	return s.reconcile(ctx, orgID, "reconcile holds", `
		SELECT b.held_micros,
		       (SELECT coalesce(sum(amount_micros), 0)::bigint FROM holds WHERE org_id = $1)
		FROM org_balances b WHERE b.org_id = $1`)
}

// reconcile runs a query that reads a materialised amount of orgID's and the sum it must equal.
func (s *Store) reconcile(ctx context.Context, orgID, what, query string) (materialised, sum int64, err error) {
	if !validUUID(orgID) {
		return 0, 0, fmt.Errorf("%s %s: %w", what, orgID, ErrNotFound)
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	err = s.pool.QueryRow(ctx, query, orgID).Scan(&materialised, &sum)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, fmt.Errorf("%s %s: %w", what, orgID, ErrNotFound)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%s %s: %w", what, orgID, err)
	}
	return materialised, sum, nil
}

// SetPlan replaces the org's plan; nil allows every model. Keys see the change once their cached
// lookup expires (seconds).
func (s *Store) SetPlan(ctx context.Context, orgID string, models []string) error {
	if !validUUID(orgID) {
		return fmt.Errorf("set plan of %s: %w", orgID, ErrNotFound)
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE orgs SET models = $2 WHERE id = $1`, orgID, models)
	if err != nil {
		return fmt.Errorf("set plan of %s: %w", orgID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set plan of %s: %w", orgID, ErrNotFound)
	}
	return nil
}
