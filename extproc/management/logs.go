package management

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/ledger"
)

// requestLog is one request as the management API shows it.
type requestLog struct {
	RequestID        string           `json:"request_id"`
	CreatedAt        time.Time        `json:"created_at"`
	KeyID            string           `json:"key_id"`
	Endpoint         string           `json:"endpoint"`
	RequestedModel   string           `json:"requested_model"`
	Model            string           `json:"model"`
	Provider         string           `json:"provider"`
	Region           string           `json:"region"`
	Status           int              `json:"status"`
	FinishReason     string           `json:"finish_reason"`
	Streamed         bool             `json:"streamed"`
	PromptTokens     int64            `json:"prompt_tokens"`
	CompletionTokens int64            `json:"completion_tokens"`
	CachedReadTokens int64            `json:"cached_read_tokens"`
	CacheWriteTokens int64            `json:"cache_write_tokens"`
	ReasoningTokens  int64            `json:"reasoning_tokens"`
	CostMicros       int64            `json:"cost_micros"`
	CostUSD          string           `json:"cost_usd"`
	CostItemsMicros  map[string]int64 `json:"cost_items_micros"` // before markup
	LatencyMs        int64            `json:"latency_ms"`
	TTFTMs           *int64           `json:"ttft_ms"` // null when no first token was seen
}

type logsResponse struct {
	Object     string       `json:"object"`
	Data       []requestLog `json:"data"`
	HasMore    bool         `json:"has_more"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

func toLog(u ledger.Usage) requestLog {
	l := requestLog{
		RequestID: u.RequestID, CreatedAt: u.CreatedAt, KeyID: u.KeyID, Endpoint: u.Endpoint,
		RequestedModel: u.RequestedModel, Model: u.Model, Provider: u.Provider, Region: u.Region,
		Status: u.Status, FinishReason: u.FinishReason, Streamed: u.Streamed,
		PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens,
		CachedReadTokens: u.CachedReadTokens, CacheWriteTokens: u.CacheWriteTokens, ReasoningTokens: u.ReasoningTokens,
		CostMicros: u.CostMicros, CostUSD: billing.FormatMicros(u.CostMicros), CostItemsMicros: u.CostItems,
		LatencyMs: u.Latency.Milliseconds(),
	}
	if l.CostItemsMicros == nil {
		l.CostItemsMicros = map[string]int64{}
	}
	if u.TimeToFirstToken != 0 {
		ms := u.TimeToFirstToken.Milliseconds()
		l.TTFTMs = &ms
	}
	return l
}

func (h *handler) requestLogs(w http.ResponseWriter, r *http.Request, p ledger.Principal) {
	f, aerr := logFilter(r.URL.Query(), p.OrgID, time.Now(), true)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	page := f.Limit
	f.Limit++ // one more row says whether there is a next page
	rows, err := h.store.RequestLogs(ctx, f)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	resp := logsResponse{Object: "list", Data: []requestLog{}}
	if len(rows) > page {
		rows = rows[:page]
		last := rows[len(rows)-1]
		resp.HasMore = true
		resp.NextCursor = encodeCursor(ledger.LogCursor{CreatedAt: last.CreatedAt, RequestID: last.RequestID})
	}
	for _, u := range rows {
		resp.Data = append(resp.Data, toLog(u))
	}
	writeJSON(w, http.StatusOK, resp)
}

var logsCSVHeader = []string{
	"request_id", "created_at", "key_id", "endpoint", "requested_model", "model", "provider", "region",
	"status", "finish_reason", "streamed", "prompt_tokens", "completion_tokens", "cached_read_tokens",
	"cache_write_tokens", "reasoning_tokens", "cost_micros", "cost_usd", "latency_ms", "ttft_ms",
}

// requestLogsCSV streams every row matching the filters (limit and cursor apply if given),
// flushing as it goes, so an export of any size holds one row in memory.
func (h *handler) requestLogsCSV(w http.ResponseWriter, r *http.Request, p ledger.Principal) {
	f, aerr := logFilter(r.URL.Query(), p.OrgID, time.Now(), false)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), exportTimeout)
	defer cancel()
	cw := startCSV(w, "request-logs.csv")
	_ = cw.Write(logsCSVHeader)
	flusher, _ := w.(http.Flusher)
	n := 0
	err := h.store.EachRequestLog(ctx, f, func(u ledger.Usage) error {
		ttft := ""
		if u.TimeToFirstToken != 0 {
			ttft = itoa(u.TimeToFirstToken.Milliseconds())
		}
		if err := cw.Write([]string{
			u.RequestID, u.CreatedAt.Format(time.RFC3339Nano), u.KeyID, u.Endpoint, u.RequestedModel, u.Model,
			u.Provider, u.Region, strconv.Itoa(u.Status), u.FinishReason, strconv.FormatBool(u.Streamed),
			itoa(u.PromptTokens), itoa(u.CompletionTokens), itoa(u.CachedReadTokens), itoa(u.CacheWriteTokens),
			itoa(u.ReasoningTokens), itoa(u.CostMicros), billing.FormatMicros(u.CostMicros),
			itoa(u.Latency.Milliseconds()), ttft,
		}); err != nil {
			return err
		}
		if n++; n%256 == 0 && flusher != nil {
			cw.Flush()
			flusher.Flush()
		}
		return cw.Error()
	})
	if err != nil {
		h.log.Error("management: request log export cut short", "org_id", p.OrgID, "rows", n, "err", err)
	}
	finishCSV(w, cw, err)
}
