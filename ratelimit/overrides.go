package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Overrides reads and writes the operator's per-org, per-key and per-model limits, kept in
// Postgres (table rate_limit_overrides) so that every rate-limit instance sees the same ones.
type Overrides struct {
	pool *pgxpool.Pool
}

// NewOverrides returns an Overrides over pool.
func NewOverrides(pool *pgxpool.Pool) *Overrides { return &Overrides{pool: pool} }

// Load returns every override.
func (o *Overrides) Load(ctx context.Context) (map[Scope]Rates, error) {
	rows, err := o.pool.Query(ctx, `
		SELECT org_id::text, coalesce(key_id::text, ''), coalesce(model, ''),
		       coalesce(rpm, 0), coalesce(tpm, 0), coalesce(tpd, 0)
		  FROM rate_limit_overrides`)
	if err != nil {
		return nil, fmt.Errorf("load rate limit overrides: %w", err)
	}
	out := map[Scope]Rates{}
	var s Scope
	var r Rates
	_, err = pgx.ForEachRow(rows, []any{&s.Org, &s.Key, &s.Model, &r.RPM, &r.TPM, &r.TPD}, func() error {
		out[s] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load rate limit overrides: %w", err)
	}
	return out, nil
}

// Set creates or updates the override for scope. Nil rates leave that limit as it was (or
// unset); to go back to the default, set it to 0.
func (o *Overrides) Set(ctx context.Context, s Scope, rpm, tpm, tpd *uint64) error {
	nullable := func(v *uint64) any {
		if v == nil {
			return nil
		}
		return int64(*v)
	}
	_, err := o.pool.Exec(ctx, `
		INSERT INTO rate_limit_overrides (org_id, key_id, model, rpm, tpm, tpd)
		VALUES ($1, nullif($2, '')::uuid, nullif($3, ''), $4, $5, $6)
		ON CONFLICT (org_id, coalesce(key_id::text, ''), coalesce(model, '')) DO UPDATE SET
			rpm = coalesce(EXCLUDED.rpm, rate_limit_overrides.rpm),
			tpm = coalesce(EXCLUDED.tpm, rate_limit_overrides.tpm),
			tpd = coalesce(EXCLUDED.tpd, rate_limit_overrides.tpd),
			updated_at = now()`,
		s.Org, s.Key, s.Model, nullable(rpm), nullable(tpm), nullable(tpd))
	if err != nil {
		return fmt.Errorf("set rate limit override: %w", err)
	}
	return nil
}

// Watch keeps limits current: the catalog's part of base (its defaults and management limit)
// plus the overrides in Postgres, reloaded every interval, so a change takes effect without a
// restart. A failed reload keeps the last table and is logged; Watch returns when ctx is done.
func (o *Overrides) Watch(ctx context.Context, limits *StaticLimits, base LimitTable, every time.Duration, log *slog.Logger) error {
	reload := func() {
		ctx, cancel := context.WithTimeout(ctx, every)
		defer cancel()
		over, err := o.Load(ctx)
		if err == nil {
			t := base
			t.Overrides = over
			err = limits.Replace(t)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("reload rate limit overrides; keeping the previous table", "err", err)
		}
	}
	reload()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			reload()
		}
	}
}
