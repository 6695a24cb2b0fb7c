package management

import (
	"context"
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/ledger"
)

// usageTotals is one row of a usage report. Exactly one of Model, KeyID and Provider is set
// when the report is grouped; BucketStart is set when it is bucketed.
type usageTotals struct {
	BucketStart      *time.Time `json:"bucket_start,omitempty"`
	Model            *string    `json:"model,omitempty"`
	KeyID            *string    `json:"key_id,omitempty"`
	Provider         *string    `json:"provider,omitempty"`
	Requests         int64      `json:"requests"`
	PromptTokens     int64      `json:"prompt_tokens"`
	CompletionTokens int64      `json:"completion_tokens"`
	CachedReadTokens int64      `json:"cached_read_tokens"`
	CacheWriteTokens int64      `json:"cache_write_tokens"`
	ReasoningTokens  int64      `json:"reasoning_tokens"`
	TotalTokens      int64      `json:"total_tokens"` // prompt + completion
	CostMicros       int64      `json:"cost_micros"`
	CostUSD          string     `json:"cost_usd"`
}

type usageResponse struct {
	Object  string        `json:"object"`
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	GroupBy string        `json:"group_by,omitempty"`
	Bucket  string        `json:"bucket,omitempty"`
	Data    []usageTotals `json:"data"`
	Totals  usageTotals   `json:"totals"`
}

// usageQuery parses the usage parameters for p's org.
func usageQuery(r *http.Request, p ledger.Principal) (ledger.UsageQuery, *apierror.Error) {
	q := r.URL.Query()
	from, to, aerr := timeRange(q, time.Now())
	if aerr != nil {
		return ledger.UsageQuery{}, aerr
	}
	groupBy, aerr := oneOf(q, "group_by", "", "model", "key", "provider")
	if aerr != nil {
		return ledger.UsageQuery{}, aerr
	}
	bucket, aerr := oneOf(q, "bucket", "", "hour", "day", "month")
	if aerr != nil {
		return ledger.UsageQuery{}, aerr
	}
	return ledger.UsageQuery{OrgID: p.OrgID, From: from, To: to, GroupBy: groupBy, Bucket: bucket}, nil
}

func (h *handler) usage(w http.ResponseWriter, r *http.Request, p ledger.Principal) {
	uq, aerr := usageQuery(r, p)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	rows, err := h.store.UsageSummary(ctx, uq)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	resp := usageResponse{Object: "usage", From: uq.From, To: uq.To, GroupBy: uq.GroupBy, Bucket: uq.Bucket, Data: []usageTotals{}}
	var sum ledger.UsageRow
	for _, row := range rows {
		resp.Data = append(resp.Data, totals(row, uq))
		sum.Requests += row.Requests
		sum.PromptTokens += row.PromptTokens
		sum.CompletionTokens += row.CompletionTokens
		sum.CachedReadTokens += row.CachedReadTokens
		sum.CacheWriteTokens += row.CacheWriteTokens
		sum.ReasoningTokens += row.ReasoningTokens
		sum.CostMicros += row.CostMicros
	}
	resp.Totals = totals(sum, ledger.UsageQuery{})
	writeJSON(w, http.StatusOK, resp)
}

func totals(row ledger.UsageRow, q ledger.UsageQuery) usageTotals {
	t := usageTotals{
		Requests: row.Requests, PromptTokens: row.PromptTokens, CompletionTokens: row.CompletionTokens,
		CachedReadTokens: row.CachedReadTokens, CacheWriteTokens: row.CacheWriteTokens,
		ReasoningTokens: row.ReasoningTokens, TotalTokens: row.PromptTokens + row.CompletionTokens,
		CostMicros: row.CostMicros, CostUSD: billing.FormatMicros(row.CostMicros),
	}
	if q.Bucket != "" {
		b := row.BucketStart
		t.BucketStart = &b
	}
	g := row.Group
	switch q.GroupBy {
	case "model":
		t.Model = &g
	case "key":
		t.KeyID = &g
	case "provider":
		t.Provider = &g
	}
	return t
}

func (h *handler) usageCSV(w http.ResponseWriter, r *http.Request, p ledger.Principal) {
	uq, aerr := usageQuery(r, p)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), exportTimeout)
	defer cancel()
	rows, err := h.store.UsageSummary(ctx, uq)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	cw := startCSV(w, "usage.csv")
	header := []string{"bucket_start"}
	if uq.GroupBy != "" {
		header = append(header, map[string]string{"model": "model", "key": "key_id", "provider": "provider"}[uq.GroupBy])
	}
	header = append(header, "requests", "prompt_tokens", "completion_tokens", "cached_read_tokens",
		"cache_write_tokens", "reasoning_tokens", "total_tokens", "cost_micros", "cost_usd")
	_ = cw.Write(header)
	for _, row := range rows {
		rec := []string{""}
		if uq.Bucket != "" {
			rec[0] = row.BucketStart.Format(time.RFC3339)
		}
		if uq.GroupBy != "" {
			rec = append(rec, row.Group)
		}
		rec = append(rec, itoa(row.Requests), itoa(row.PromptTokens), itoa(row.CompletionTokens),
			itoa(row.CachedReadTokens), itoa(row.CacheWriteTokens), itoa(row.ReasoningTokens),
			itoa(row.PromptTokens+row.CompletionTokens), itoa(row.CostMicros), billing.FormatMicros(row.CostMicros))
		_ = cw.Write(rec)
	}
	finishCSV(w, cw, nil)
}

// startCSV sends the headers of a CSV download. Its status is sent with them, so a failure
// later in the stream is reported in the X-Export-Status trailer ("complete" or "error").
func startCSV(w http.ResponseWriter, name string) *csv.Writer {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Trailer", "X-Export-Status")
	w.WriteHeader(http.StatusOK)
	return csv.NewWriter(w)
}

func finishCSV(w http.ResponseWriter, cw *csv.Writer, err error) {
	cw.Flush()
	status := "complete"
	if err != nil || cw.Error() != nil {
		status = "error"
	}
	w.Header().Set("X-Export-Status", status)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
