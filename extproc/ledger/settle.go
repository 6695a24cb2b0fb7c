package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Usage is the record of one completed request (docs/design.md section 6, usage records).
// Attempt is one upstream attempt of a request.
type Attempt struct {
	Backend   string `json:"backend"` // provider/upstream_model
	Status    int    `json:"status"`  // 0 when the attempt got no response (reset, timeout)
	LatencyMs int64  `json:"latency_ms"`
}

type Usage struct {
	RequestID, OrgID string
	KeyID            string // may be empty

	Endpoint       string // e.g. "/v1/chat/completions"
	RequestedModel string // as the client named it
	Model          string // canonical catalog model
	Provider       string
	Region         string

	Status       int // HTTP status returned to the client
	FinishReason string
	Streamed     bool

	PromptTokens, CompletionTokens, CachedReadTokens, CacheWriteTokens, ReasoningTokens int64

	CostMicros int64 // total after markup: what is charged, >= 0
	// ExcessMicros is what the computed cost exceeded the request's hold by, >= 0: settlement
	// never charges above the hold, so this part was not charged, only recorded for the operator.
	ExcessMicros int64
	CostItems    map[string]int64 // billing item -> micro-USD before markup

	// Stored in whole milliseconds (truncated). A zero TimeToFirstToken is stored as unknown.
	Latency, TimeToFirstToken time.Duration

	CreatedAt time.Time // when the request happened; zero means now. Stored to the microsecond.

	// Attempts lists the upstream attempts in order (retries and fallbacks); the last served.
	Attempts []Attempt
}

// Settle records one completed request: a usage_records row, a 'usage' ledger entry of
// -CostMicros, the matching balance decrement and the release of the request's hold, if it has
// one, all in one statement (one transaction, one round trip).
//
// It is idempotent by RequestID: charged reports whether this call wrote the charge, and a
// repeated call (a retry, a spool replay, a concurrent duplicate) is a no-op returning false and
// nil. The one record it replaces is the provisional input charge ExpireHolds wrote when the
// request's hold expired first: the usage record takes the real values and the difference is
// booked as an 'adjustment' ledger entry, so the request costs exactly CostMicros in the end. Any error therefore leaves it safe to retry; ErrNotFound (unknown org or key) is
// permanent. The balance may go below zero if the cost exceeds the hold: usage is never
// refused after the fact.
//
// Settle is detached from ctx's cancellation, so a client that disconnects cannot lose its
// charge; it is bounded by DefaultTimeout.
func (s *Store) Settle(ctx context.Context, u Usage) (charged bool, err error) {
	if err := validateUsage(u); err != nil {
		return false, fmt.Errorf("settle %s: %w", u.RequestID, err)
	}
	items := u.CostItems
	if items == nil {
		items = map[string]int64{} // jsonb '{}', not SQL NULL
	}
	var ttftMs, createdAt any
	if u.TimeToFirstToken != 0 {
		ttftMs = u.TimeToFirstToken.Milliseconds()
	}
	if !u.CreatedAt.IsZero() {
		createdAt = u.CreatedAt
	}

	ctx, cancel := detached(ctx)
	defer cancel()
	// The upsert of the usage record is the idempotency gate: a duplicate waits for the first
	// writer's commit, then writes nothing (only a provisional record, ExpireHolds' input charge,
	// is replaced, once), and every later step reads its input from the rows the upsert returned,
	// so it does nothing either. The partial unique index on ledger_entries(request_id) backs
	// this up. The hold is deleted only if no one else has it locked: the one who has is
	// ExpireHolds, which releases it itself, and waiting for it could deadlock with its usage
	// insert, which waits for this statement.
	//
	// The org's balance row is locked first, in the same implicit transaction (one round trip):
	// every writer that touches a usage record and a balance takes the balance first, so that a
	// settlement and a sweep of the same request queue instead of deadlocking.
	b := &pgx.Batch{}
	b.Queue(`SELECT 1 FROM org_balances WHERE org_id = $1 FOR UPDATE`, u.OrgID)
	b.Queue(`
		WITH rec AS (
			INSERT INTO usage_records (
				request_id, org_id, key_id, endpoint, requested_model, model, provider, region,
				status, finish_reason, streamed,
				prompt_tokens, completion_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens,
				cost_micros, cost_items, latency_ms, ttft_ms, created_at, attempts, excess_micros)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
				coalesce($21, now()), $22, $23)
`+usageUpsert+`		), charge AS (
			INSERT INTO ledger_entries (org_id, kind, amount_micros, request_id, note)
			SELECT org_id, CASE WHEN replaces THEN 'adjustment' ELSE 'usage' END, before_micros - cost_micros,
				request_id, CASE WHEN replaces THEN 'settled after its hold expired: replaces the input charge' ELSE '' END
			FROM rec WHERE NOT replaces OR before_micros <> cost_micros
		), released AS (
			DELETE FROM holds h USING rec
			WHERE h.request_id = rec.request_id AND h.org_id = rec.org_id
			  AND h.request_id IN (SELECT request_id FROM holds WHERE request_id = $1 FOR UPDATE SKIP LOCKED)
			RETURNING h.amount_micros
		)
		UPDATE org_balances b
		SET balance_micros = b.balance_micros - (rec.cost_micros - rec.before_micros),
		    held_micros = b.held_micros - coalesce((SELECT amount_micros FROM released), 0)
		FROM rec WHERE b.org_id = rec.org_id
		RETURNING true`,
		u.RequestID, u.OrgID, nullable(u.KeyID), u.Endpoint, u.RequestedModel, u.Model, u.Provider, u.Region,
		u.Status, u.FinishReason, u.Streamed,
		u.PromptTokens, u.CompletionTokens, u.CachedReadTokens, u.CacheWriteTokens, u.ReasoningTokens,
		u.CostMicros, items, u.Latency.Milliseconds(), ttftMs, createdAt, attemptsJSON(u.Attempts), u.ExcessMicros)
	br := s.pool.SendBatch(ctx, b)
	_, err = br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&charged)
	}
	if cerr := br.Close(); err == nil || errors.Is(err, pgx.ErrNoRows) && cerr != nil {
		err = cerr
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil // already settled
	case pgCode(err) == codeForeignKeyViolation:
		return false, fmt.Errorf("settle %s: %w", u.RequestID, ErrNotFound)
	case err != nil:
		return false, fmt.Errorf("settle %s: %w", u.RequestID, err)
	}
	return charged, nil
}

// UsageByRequest returns the usage record of requestID, or ErrNotFound.
func (s *Store) UsageByRequest(ctx context.Context, requestID string) (Usage, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var u Usage
	var latencyMs, ttftMs int64
	err := s.pool.QueryRow(ctx, `
		SELECT request_id, org_id::text, coalesce(key_id::text, ''), endpoint, requested_model, model,
		       provider, region, status, finish_reason, streamed,
		       prompt_tokens, completion_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens,
		       cost_micros, cost_items, latency_ms, coalesce(ttft_ms, 0), created_at, attempts, excess_micros
		FROM usage_records WHERE request_id = $1`, requestID).Scan(
		&u.RequestID, &u.OrgID, &u.KeyID, &u.Endpoint, &u.RequestedModel, &u.Model,
		&u.Provider, &u.Region, &u.Status, &u.FinishReason, &u.Streamed,
		&u.PromptTokens, &u.CompletionTokens, &u.CachedReadTokens, &u.CacheWriteTokens, &u.ReasoningTokens,
		&u.CostMicros, &u.CostItems, &latencyMs, &ttftMs, &u.CreatedAt, &u.Attempts, &u.ExcessMicros)
	if errors.Is(err, pgx.ErrNoRows) {
		return Usage{}, fmt.Errorf("usage %s: %w", requestID, ErrNotFound)
	}
	if err != nil {
		return Usage{}, fmt.Errorf("usage %s: %w", requestID, err)
	}
	u.Latency = time.Duration(latencyMs) * time.Millisecond
	u.TimeToFirstToken = time.Duration(ttftMs) * time.Millisecond
	if len(u.Attempts) == 0 {
		u.Attempts = nil // '[]' reads back as none
	}
	return u, nil
}

// attemptsJSON encodes attempts for the jsonb column ('[]' when there are none).
func attemptsJSON(a []Attempt) string {
	if a == nil {
		a = []Attempt{}
	}
	b, _ := json.Marshal(a)
	return string(b)
}

// usageUpsert ends both settlement statements' INSERT INTO usage_records: a new record is
// inserted; a provisional one (the input charged when the request's hold expired) is replaced by
// the real settlement of the same org, the difference becoming an adjustment; a settled record is
// left alone (settlement is idempotent by request id). rec returns the rows it wrote.
const usageUpsert = `
			ON CONFLICT (request_id) DO UPDATE SET
				key_id = EXCLUDED.key_id,
				endpoint = EXCLUDED.endpoint,
				requested_model = EXCLUDED.requested_model,
				model = EXCLUDED.model,
				provider = EXCLUDED.provider,
				region = EXCLUDED.region,
				status = EXCLUDED.status,
				finish_reason = EXCLUDED.finish_reason,
				streamed = EXCLUDED.streamed,
				prompt_tokens = EXCLUDED.prompt_tokens,
				completion_tokens = EXCLUDED.completion_tokens,
				cached_read_tokens = EXCLUDED.cached_read_tokens,
				cache_write_tokens = EXCLUDED.cache_write_tokens,
				reasoning_tokens = EXCLUDED.reasoning_tokens,
				cost_micros = EXCLUDED.cost_micros,
				cost_items = EXCLUDED.cost_items,
				latency_ms = EXCLUDED.latency_ms,
				ttft_ms = EXCLUDED.ttft_ms,
				created_at = EXCLUDED.created_at,
				attempts = EXCLUDED.attempts,
				excess_micros = EXCLUDED.excess_micros,
				provisional = false, settled_at = now()
			WHERE usage_records.provisional AND usage_records.org_id = EXCLUDED.org_id
			RETURNING request_id, org_id, cost_micros, expired_charge_micros IS NOT NULL AS replaces,
				coalesce(expired_charge_micros, 0) AS before_micros
`
