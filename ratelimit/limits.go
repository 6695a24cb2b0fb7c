package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Limit is the limit that applies to one descriptor.
type Limit struct {
	// PerUnit is the number of requests or tokens allowed per Unit. A Limit
	// with zero PerUnit or Unit is treated as no limit.
	PerUnit uint64
	// Unit is the window: time.Minute or 24*time.Hour (second, hour and week
	// work too).
	Unit time.Duration
	// Name identifies the limit to clients, in current_limit.name and in the
	// 429 message. Empty means the descriptor's String.
	Name string
}

// Limits says which Limit applies to a descriptor. The server calls it once
// per descriptor on every decision, so implementations answer from memory
// (reload in the background) and must be safe for concurrent use.
type Limits interface {
	// Limit returns the descriptor's limit, or false when it has none, in
	// which case the descriptor is always OK.
	Limit(ctx context.Context, d Descriptor) (Limit, bool)
}

// Scope is the part of a descriptor a limit is keyed by. Org is required;
// empty Key or Model means the scope does not include it.
type Scope struct {
	Org   string
	Key   string
	Model string
}

// Rates holds one scope's limits; zero means not set.
type Rates struct {
	RPM uint64 // requests per minute
	TPM uint64 // tokens per minute
	TPD uint64 // tokens per day
}

func (r Rates) get(q Quota) uint64 {
	switch q {
	case RequestsPerMinute:
		return r.RPM
	case TokensPerMinute:
		return r.TPM
	case TokensPerDay:
		return r.TPD
	}
	return 0
}

// LimitTable is a complete set of limits: the catalog's per-model defaults
// and the operator's overrides (the rate_limit_overrides table).
//
// Resolution, per quota: an override for the descriptor's exact scope wins;
// otherwise a descriptor scoped to {org, model} (no key) gets the model's
// default, i.e. defaults are per organisation per model, as with the
// providers' own limits; otherwise there is no limit. Zero values are unset,
// so an override cannot remove a default, only change it.
type LimitTable struct {
	// Defaults maps canonical model IDs to their default rates.
	Defaults map[string]Rates
	// Overrides maps exact scopes to rates.
	Overrides map[Scope]Rates
	// ManagementRPM limits each key's management API requests per minute
	// (descriptors {mgmt_rpm, org, key}); zero means no limit.
	ManagementRPM uint64
}

// StaticLimits serves Limits from an in-memory LimitTable that can be
// replaced at any time; the next decision sees the new table. It is safe for
// concurrent use. A database-backed source can build a LimitTable and call
// Replace whenever it reloads.
type StaticLimits struct {
	table atomic.Pointer[compiledTable]
}

// compiledTable holds final Limits, names included, so that lookups allocate
// nothing.
type compiledTable struct {
	defaults   map[string]quotaLimits
	overrides  map[Scope]quotaLimits
	management Limit
}

type quotaLimits struct{ rpm, tpm, tpd Limit }

func (q *quotaLimits) get(quota Quota) Limit {
	switch quota {
	case RequestsPerMinute:
		return q.rpm
	case TokensPerMinute:
		return q.tpm
	case TokensPerDay:
		return q.tpd
	}
	return Limit{}
}

// NewStaticLimits returns StaticLimits serving t.
func NewStaticLimits(t LimitTable) (*StaticLimits, error) {
	s := &StaticLimits{}
	if err := s.Replace(t); err != nil {
		return nil, err
	}
	return s, nil
}

// Replace validates t and swaps it in atomically. On error the current
// table stays.
func (s *StaticLimits) Replace(t LimitTable) error {
	c, err := compile(t)
	if err != nil {
		return err
	}
	s.table.Store(c)
	return nil
}

// Limit implements Limits.
func (s *StaticLimits) Limit(_ context.Context, d Descriptor) (Limit, bool) {
	t := s.table.Load()
	if t == nil {
		return Limit{}, false
	}
	if d.Quota == ManagementRequestsPerMinute {
		// Per key, whatever the org: only a descriptor that names one is limited.
		if d.Key == "" || d.Model != "" || t.management.PerUnit == 0 {
			return Limit{}, false
		}
		return t.management, true
	}
	if q, ok := t.overrides[Scope{Org: d.Org, Key: d.Key, Model: d.Model}]; ok {
		if l := q.get(d.Quota); l.PerUnit > 0 {
			return l, true
		}
	}
	if d.Key == "" && d.Model != "" {
		if q, ok := t.defaults[d.Model]; ok {
			if l := q.get(d.Quota); l.PerUnit > 0 {
				return l, true
			}
		}
	}
	return Limit{}, false
}

func compile(t LimitTable) (*compiledTable, error) {
	c := &compiledTable{
		defaults:  make(map[string]quotaLimits, len(t.Defaults)),
		overrides: make(map[Scope]quotaLimits, len(t.Overrides)),
	}
	if t.ManagementRPM > 0 {
		c.management = Limit{PerUnit: t.ManagementRPM, Unit: time.Minute, Name: string(ManagementRequestsPerMinute) + " per key"}
	}
	var errs []error
	for model, r := range t.Defaults {
		if model == "" {
			errs = append(errs, errors.New("default rates for an empty model ID"))
			continue
		}
		c.defaults[model] = limitsFor(r, func(q Quota) string { return string(q) + " model=" + model })
	}
	for scope, r := range t.Overrides {
		if scope.Org == "" {
			errs = append(errs, fmt.Errorf("override %+v has no org", scope))
			continue
		}
		c.overrides[scope] = limitsFor(r, func(q Quota) string {
			return Descriptor{Quota: q, Org: scope.Org, Key: scope.Key, Model: scope.Model}.String()
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("limit table: %w", err)
	}
	return c, nil
}

func limitsFor(r Rates, name func(Quota) string) quotaLimits {
	l := func(q Quota) Limit {
		n := r.get(q)
		if n == 0 {
			return Limit{}
		}
		return Limit{PerUnit: n, Unit: q.Unit(), Name: name(q)}
	}
	return quotaLimits{rpm: l(RequestsPerMinute), tpm: l(TokensPerMinute), tpd: l(TokensPerDay)}
}
