package ledger

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Groupings accepted by UsageQuery.GroupBy, and the usage_records column each reads.
var groupColumns = map[string]string{
	"":         "''",
	"model":    "model",
	"key":      "coalesce(key_id::text, '')",
	"provider": "provider",
}

// Buckets accepted by UsageQuery.Bucket (date_trunc fields, cut in UTC).
var buckets = map[string]bool{"": true, "hour": true, "day": true, "month": true}

// UsageQuery selects an org's usage totals. Requests are counted by created_at (when they
// happened, not when a spool replay settled them), in [From, To).
type UsageQuery struct {
	OrgID    string
	From, To time.Time
	// GroupBy is "", "model", "key" or "provider"; "" gives one group.
	GroupBy string
	// Bucket is "", "hour", "day" or "month", in UTC; "" gives one bucket for the whole range.
	Bucket string
}

// UsageRow is one (bucket, group) cell of a usage summary.
type UsageRow struct {
	BucketStart                                                                         time.Time // UTC; zero when the query has no Bucket
	Group                                                                               string    // the model, key id or provider; "" when the query has no GroupBy
	Requests                                                                            int64
	PromptTokens, CompletionTokens, CachedReadTokens, CacheWriteTokens, ReasoningTokens int64
	CostMicros                                                                          int64
}

// UsageSummary returns q's totals, ordered by bucket then group. An unknown GroupBy or Bucket is
// ErrInvalid; an unknown org has no usage.
func (s *Store) UsageSummary(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	groupCol, ok := groupColumns[q.GroupBy]
	if !ok || !buckets[q.Bucket] {
		return nil, fmt.Errorf("usage summary: group_by %q, bucket %q: %w", q.GroupBy, q.Bucket, ErrInvalid)
	}
	if !validUUID(q.OrgID) {
		return nil, nil
	}
	bucketExpr := "NULL::timestamptz"
	if q.Bucket != "" {
		bucketExpr = "date_trunc($4, created_at, 'UTC')"
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	// groupCol and bucketExpr come from the fixed tables above, never from input.
	sql := `
		SELECT ` + bucketExpr + ` AS bucket, ` + groupCol + ` AS grp, count(*),
		       sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(cached_read_tokens)::bigint,
		       sum(cache_write_tokens)::bigint, sum(reasoning_tokens)::bigint, sum(cost_micros)::bigint
		FROM usage_records
		WHERE org_id = $1 AND created_at >= $2 AND created_at < $3
		GROUP BY 1, 2 ORDER BY 1, 2`
	args := []any{q.OrgID, q.From, q.To}
	if q.Bucket != "" {
		args = append(args, q.Bucket)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("usage summary: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (UsageRow, error) {
		var u UsageRow
		var bucket *time.Time
		err := r.Scan(&bucket, &u.Group, &u.Requests, &u.PromptTokens, &u.CompletionTokens,
			&u.CachedReadTokens, &u.CacheWriteTokens, &u.ReasoningTokens, &u.CostMicros)
		if bucket != nil {
			u.BucketStart = bucket.UTC()
		}
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("usage summary: %w", err)
	}
	return out, nil
}

// LogCursor is a position in the newest-first order of request logs: the created_at and
// request id of the last row already returned. Rows are ordered by (created_at, request_id)
// descending, a total order, so pages neither skip nor repeat rows however many arrive.
type LogCursor struct {
	CreatedAt time.Time
	RequestID string
}

// LogFilter selects an org's request logs (usage records). Empty fields do not filter.
type LogFilter struct {
	OrgID                                           string
	From, To                                        time.Time // [From, To) on created_at; zero: unbounded
	KeyID, RequestID, Provider, Model, FinishReason string
	// After, when set, returns only rows strictly after it in newest-first order.
	After *LogCursor
	// Limit caps the rows returned; ≤ 0 means no cap (EachRequestLog only).
	Limit int
}

// RequestLogs returns up to f.Limit of f's rows, newest first. A malformed org or key id
// matches nothing.
func (s *Store) RequestLogs(ctx context.Context, f LogFilter) ([]Usage, error) {
	var out []Usage
	err := s.EachRequestLog(ctx, f, func(u Usage) error {
		out = append(out, u)
		return nil
	})
	return out, err
}

// EachRequestLog calls fn with each of f's rows, newest first, streaming them from one query so
// that an export of any size holds one row in memory at a time. It stops at fn's first error
// and returns it. ctx bounds the whole scan (DefaultTimeout if it has no deadline).
func (s *Store) EachRequestLog(ctx context.Context, f LogFilter, fn func(Usage) error) error {
	if !validUUID(f.OrgID) || f.KeyID != "" && !validUUID(f.KeyID) {
		return nil
	}
	var where strings.Builder
	args := []any{f.OrgID}
	where.WriteString("org_id = $1")
	add := func(cond string, v any) {
		args = append(args, v)
		fmt.Fprintf(&where, " AND "+cond, len(args))
	}
	if !f.From.IsZero() {
		add("created_at >= $%d", f.From)
	}
	if !f.To.IsZero() {
		add("created_at < $%d", f.To)
	}
	for _, c := range []struct{ col, v string }{
		{"key_id", f.KeyID}, {"request_id", f.RequestID}, {"provider", f.Provider},
		{"model", f.Model}, {"finish_reason", f.FinishReason},
	} {
		if c.v != "" {
			add(c.col+" = $%d", c.v)
		}
	}
	if f.After != nil {
		args = append(args, f.After.CreatedAt, f.After.RequestID)
		fmt.Fprintf(&where, " AND (created_at, request_id) < ($%d, $%d)", len(args)-1, len(args))
	}
	limit := ""
	if f.Limit > 0 {
		limit = " LIMIT " + strconv.Itoa(f.Limit)
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `
		SELECT request_id, org_id::text, coalesce(key_id::text, ''), endpoint, requested_model, model,
		       provider, region, status, finish_reason, streamed,
		       prompt_tokens, completion_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens,
		       cost_micros, cost_items, latency_ms, coalesce(ttft_ms, 0), created_at
		FROM usage_records WHERE `+where.String()+`
		ORDER BY created_at DESC, request_id DESC`+limit, args...)
	if err != nil {
		return fmt.Errorf("request logs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u Usage
		var latencyMs, ttftMs int64
		if err := rows.Scan(&u.RequestID, &u.OrgID, &u.KeyID, &u.Endpoint, &u.RequestedModel, &u.Model,
			&u.Provider, &u.Region, &u.Status, &u.FinishReason, &u.Streamed,
			&u.PromptTokens, &u.CompletionTokens, &u.CachedReadTokens, &u.CacheWriteTokens, &u.ReasoningTokens,
			&u.CostMicros, &u.CostItems, &latencyMs, &ttftMs, &u.CreatedAt); err != nil {
			return fmt.Errorf("request logs: %w", err)
		}
		u.Latency = time.Duration(latencyMs) * time.Millisecond
		u.TimeToFirstToken = time.Duration(ttftMs) * time.Millisecond
		u.CreatedAt = u.CreatedAt.UTC()
		if err := fn(u); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("request logs: %w", err)
	}
	return nil
}
