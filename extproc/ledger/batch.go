package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrInvalid reports a settlement or hold that can never be written as given (empty request id,
// negative amount). Like ErrNotFound it is permanent.
var ErrInvalid = errors.New("invalid")

// Permanent reports whether err is one that retrying the same call cannot fix: an unknown org
// or key, an invalid argument, or a constraint or data error raised by Postgres. Everything else
// (connection loss, timeouts, deadlocks, serialisation failures, a server shutting down) is
// worth retrying, and since every ledger write is idempotent by request id, retrying is safe.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
		return true
	}
	code := pgCode(err)
	// Class 22 is data exceptions, class 23 integrity violations: the same input fails again.
	return len(code) == 5 && (code[:2] == "22" || code[:2] == "23")
}

// validateUsage checks what SettleBatch and Settle refuse before reaching Postgres.
func validateUsage(u Usage) error {
	switch {
	case u.RequestID == "":
		return fmt.Errorf("empty request id: %w", ErrInvalid)
	case u.CostMicros < 0:
		return fmt.Errorf("negative cost %d µUSD: %w", u.CostMicros, ErrInvalid)
	case u.ExcessMicros < 0:
		return fmt.Errorf("negative excess %d µUSD: %w", u.ExcessMicros, ErrInvalid)
	case !validUUID(u.OrgID) || u.KeyID != "" && !validUUID(u.KeyID):
		return ErrNotFound
	}
	return nil
}

// SettleBatch records many completed requests at once: for each, what Settle does (usage record,
// 'usage' ledger entry, balance decrement, release of its hold), all in one transaction and one
// network round trip. charged[i] reports whether usages[i] was charged by this call; false means
// its request id had already been settled (by an earlier call, or earlier in the same slice:
// the first occurrence wins). Like Settle it is idempotent, so any error leaves it safe to retry,
// and like Settle it replaces the provisional input charge of a request whose hold expired.
//
// The whole batch succeeds or fails together. A permanent error (see Permanent) in one item
// fails all of them; the caller can then settle items one by one to isolate the bad one.
// Validation happens before any I/O and names the index of the first bad item.
//
// The statement is shaped for throughput: the rows travel as one array per column (unnest), the
// balance of each org is updated once per batch with the sum of its charges and released holds,
// and the org rows are locked in id order first, so that concurrent batches from several
// instances queue rather than deadlock on each other.
//
// Like Settle it is detached from ctx's cancellation and bounded by DefaultTimeout, unless ctx
// has an earlier deadline.
func (s *Store) SettleBatch(ctx context.Context, usages []Usage) (charged []bool, err error) {
	if len(usages) == 0 {
		return nil, nil
	}
	n := len(usages)
	var c columns
	seen := make(map[string]bool, n)
	var orgSet []string
	now := time.Now()
	for i, u := range usages {
		if err := validateUsage(u); err != nil {
			return nil, fmt.Errorf("settle batch: item %d (%s): %w", i, u.RequestID, err)
		}
		if seen[u.RequestID] {
			continue // a duplicate within the batch: the first occurrence is the charge
		}
		seen[u.RequestID] = true
		if !slices.Contains(orgSet, u.OrgID) {
			orgSet = append(orgSet, u.OrgID)
		}
		if err := c.add(u, now); err != nil {
			return nil, fmt.Errorf("settle batch: item %d (%s): %w", i, u.RequestID, err)
		}
	}
	slices.Sort(orgSet)

	ctx, cancel := detachedBounded(ctx)
	defer cancel()

	// pgx sends a batch as one pipeline ending in a single Sync, so both statements run in one
	// implicit transaction: the locks taken by the first are held through the second.
	b := &pgx.Batch{}
	b.Queue(`SELECT 1 FROM org_balances WHERE org_id = ANY($1::uuid[]) ORDER BY org_id FOR UPDATE`, orgSet)
	b.Queue(`
		WITH input AS (
			SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
				$7::text[], $8::text[], $9::int[], $10::text[], $11::bool[], $12::bigint[], $13::bigint[],
				$14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::jsonb[], $19::bigint[],
				$20::bigint[], $21::timestamptz[], $22::jsonb[], $23::bigint[])
			AS t(request_id, org_id, key_id, endpoint, requested_model, model, provider, region, status,
				finish_reason, streamed, prompt_tokens, completion_tokens, cached_read_tokens,
				cache_write_tokens, reasoning_tokens, cost_micros, cost_items, latency_ms, ttft_ms, created_at,
				attempts, excess_micros)
		), rec AS (
			INSERT INTO usage_records (
				request_id, org_id, key_id, endpoint, requested_model, model, provider, region,
				status, finish_reason, streamed,
				prompt_tokens, completion_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens,
				cost_micros, cost_items, latency_ms, ttft_ms, created_at, attempts, excess_micros)
			SELECT * FROM input
`+usageUpsert+`		), charge AS (
			INSERT INTO ledger_entries (org_id, kind, amount_micros, request_id, note)
			SELECT org_id, CASE WHEN replaces THEN 'adjustment' ELSE 'usage' END, before_micros - cost_micros,
				request_id, CASE WHEN replaces THEN 'settled after its hold expired: replaces the input charge' ELSE '' END
			FROM rec WHERE NOT replaces OR before_micros <> cost_micros
		), released AS (
			DELETE FROM holds h USING rec
			WHERE h.request_id = rec.request_id AND h.org_id = rec.org_id
			  AND h.request_id IN (SELECT request_id FROM holds WHERE request_id = ANY($1::text[]) FOR UPDATE SKIP LOCKED)
			RETURNING h.org_id, h.amount_micros
		), cost_per_org AS (
			SELECT org_id, sum(cost_micros - before_micros)::bigint AS cost FROM rec GROUP BY org_id
		), held_per_org AS (
			SELECT org_id, sum(amount_micros)::bigint AS held FROM released GROUP BY org_id
		), moved AS (
			UPDATE org_balances b
			SET balance_micros = b.balance_micros - c.cost,
			    held_micros = b.held_micros - coalesce(h.held, 0)
			FROM cost_per_org c LEFT JOIN held_per_org h ON h.org_id = c.org_id
			WHERE b.org_id = c.org_id
		)
		SELECT request_id FROM rec`,
		c.ids, c.orgs, c.keys, c.endpoints, c.reqModels, c.models, c.providers, c.regions, c.statuses,
		c.finishes, c.streamed, c.prompt, c.completion, c.cacheRead, c.cacheWrite, c.reasoning, c.costs,
		c.items, c.latencies, c.ttfts, c.created, c.attempts, c.excess)

	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, batchErr(err, n)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, batchErr(err, n)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, batchErr(err, n)
	}
	if err := br.Close(); err != nil {
		return nil, batchErr(err, n)
	}
	chargedIDs := make(map[string]bool, len(done))
	for _, id := range done {
		chargedIDs[id] = true
	}
	charged = make([]bool, n)
	for i, u := range usages {
		if chargedIDs[u.RequestID] {
			charged[i] = true
			delete(chargedIDs, u.RequestID) // a later duplicate in the slice was not the charge
		}
	}
	return charged, nil
}

// columns holds a batch of usages column by column, the shape unnest takes.
type columns struct {
	ids, orgs, endpoints, reqModels, models, providers, regions, finishes, items, attempts []string
	keys                                                                                   []*string // NULL: no key
	statuses                                                                               []int32
	streamed                                                                               []bool
	prompt, completion, cacheRead, cacheWrite, reasoning, costs, latencies, excess         []int64
	ttfts                                                                                  []*int64 // NULL: unknown
	created                                                                                []time.Time
}

func (c *columns) add(u Usage, now time.Time) error {
	items := u.CostItems
	if items == nil {
		items = map[string]int64{} // jsonb '{}', not SQL NULL
	}
	b, err := json.Marshal(items)
	if err != nil {
		return fmt.Errorf("cost items: %w", err)
	}
	var key *string
	if u.KeyID != "" {
		key = &u.KeyID
	}
	var ttft *int64
	if u.TimeToFirstToken != 0 {
		ms := u.TimeToFirstToken.Milliseconds()
		ttft = &ms
	}
	at := u.CreatedAt
	if at.IsZero() {
		at = now
	}
	c.attempts = append(c.attempts, attemptsJSON(u.Attempts))
	c.ids = append(c.ids, u.RequestID)
	c.orgs = append(c.orgs, u.OrgID)
	c.keys = append(c.keys, key)
	c.endpoints = append(c.endpoints, u.Endpoint)
	c.reqModels = append(c.reqModels, u.RequestedModel)
	c.models = append(c.models, u.Model)
	c.providers = append(c.providers, u.Provider)
	c.regions = append(c.regions, u.Region)
	c.statuses = append(c.statuses, int32(u.Status))
	c.finishes = append(c.finishes, u.FinishReason)
	c.streamed = append(c.streamed, u.Streamed)
	c.prompt = append(c.prompt, u.PromptTokens)
	c.completion = append(c.completion, u.CompletionTokens)
	c.cacheRead = append(c.cacheRead, u.CachedReadTokens)
	c.cacheWrite = append(c.cacheWrite, u.CacheWriteTokens)
	c.reasoning = append(c.reasoning, u.ReasoningTokens)
	c.costs = append(c.costs, u.CostMicros)
	c.excess = append(c.excess, u.ExcessMicros)
	c.items = append(c.items, string(b))
	c.latencies = append(c.latencies, u.Latency.Milliseconds())
	c.ttfts = append(c.ttfts, ttft)
	c.created = append(c.created, at)
	return nil
}

func batchErr(err error, n int) error {
	if pgCode(err) == codeForeignKeyViolation {
		return fmt.Errorf("settle batch of %d: %w: %w", n, ErrNotFound, err)
	}
	return fmt.Errorf("settle batch of %d: %w", n, err)
}

// ReleaseHolds is ReleaseHold for many requests in one round trip: each org's amounts move
// once. Ids without a hold are ignored, so it is idempotent and safe to retry. It is detached
// from ctx's cancellation, like ReleaseHold.
func (s *Store) ReleaseHolds(ctx context.Context, requestIDs []string) error {
	if len(requestIDs) == 0 {
		return nil
	}
	ctx, cancel := detachedBounded(ctx)
	defer cancel()
	// One implicit transaction, three statements. The first waits out an ExpireHolds that is
	// expiring one of these holds, so that the last, with a fresh snapshot, sees the
	// provisional charge it wrote and refunds it. The second locks the balance rows in id
	// order, as every multi-org writer does, so that concurrent writers queue, not deadlock.
	b := &pgx.Batch{}
	b.Queue(`SELECT 1 FROM holds WHERE request_id = ANY($1::text[]) ORDER BY request_id FOR UPDATE`, requestIDs)
	b.Queue(`
		SELECT 1 FROM org_balances WHERE org_id IN (
			SELECT org_id FROM holds WHERE request_id = ANY($1::text[])
			UNION SELECT org_id FROM usage_records WHERE request_id = ANY($1::text[]) AND provisional
		) ORDER BY org_id FOR UPDATE`, requestIDs)
	b.Queue(`
		WITH released AS (
			DELETE FROM holds WHERE request_id = ANY($1::text[]) RETURNING org_id, amount_micros
		), refunded AS (
			UPDATE usage_records SET provisional = false, cost_micros = 0, finish_reason = 'released',
				settled_at = now()
			WHERE request_id = ANY($1::text[]) AND provisional
			RETURNING request_id, org_id, expired_charge_micros AS amount
		), refund AS (
			INSERT INTO ledger_entries (org_id, kind, amount_micros, request_id, note)
			SELECT org_id, 'adjustment', amount, request_id, $2 FROM refunded WHERE amount <> 0
		), held_per_org AS (
			SELECT org_id, sum(amount_micros)::bigint AS held FROM released GROUP BY org_id
		), refund_per_org AS (
			SELECT org_id, sum(amount)::bigint AS refund FROM refunded GROUP BY org_id
		)
		UPDATE org_balances b
		SET held_micros = b.held_micros - coalesce(h.held, 0),
		    balance_micros = b.balance_micros + coalesce(r.refund, 0)
		FROM held_per_org h FULL JOIN refund_per_org r ON r.org_id = h.org_id
		WHERE b.org_id = coalesce(h.org_id, r.org_id)`, requestIDs, releasedNote)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	for range 3 {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("release %d holds: %w", len(requestIDs), err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("release %d holds: %w", len(requestIDs), err)
	}
	return nil
}

// releasedNote marks the refund of an expired hold's input charge by a late release.
const releasedNote = "released after its hold expired: input charge refunded"

// detachedBounded is detached, except that an earlier deadline of ctx still applies: a caller
// that retries on its own schedule (the settlement spool) must be able to bound each attempt.
func detachedBounded(ctx context.Context) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	dctx, cancel := detached(ctx)
	if !ok {
		return dctx, cancel
	}
	dctx, cancel2 := context.WithDeadline(dctx, d)
	return dctx, func() { cancel2(); cancel() }
}
