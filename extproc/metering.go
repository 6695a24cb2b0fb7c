package extproc

import (
	"context"
	"net/http"

	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/openai"
)

// settleStream settles a streamed request with what its stream reported. When the provider's
// usage chunk never arrived (the client left, or the stream broke), usage is estimated from what
// was delivered: the prompt at its upper bound in bytes, and one token per content chunk sent.
func (x *exchange) settleStream() openai.Usage {
	res := x.rewriter.Result
	if !res.HasUsage {
		res.Usage = openai.Usage{
			PromptTokens:     x.chat.PromptBytes(),
			CompletionTokens: int64(x.rewriter.Chunks),
		}
		res.Usage.TotalTokens = res.Usage.PromptTokens + res.Usage.CompletionTokens
		if res.FinishReason == "" {
			res.FinishReason = "incomplete"
		}
	}
	x.settle(res, true)
	return res.Usage
}

// settle records the request's usage and charge once. The write runs in the background, detached
// from the stream's context so a departing client cannot cancel its own charge; Server.Drain
// waits for it on shutdown.
func (x *exchange) settle(res openai.Result, streamed bool) {
	if x.settled {
		return
	}
	x.settled = true
	now := x.s.now()
	cost := billing.Compute(x.route.Model.Prices(), res.Usage.Billing(), int64(x.principal.MarkupBps))
	bu := res.Usage.Billing()
	u := ledger.Usage{
		RequestID:        x.requestID,
		OrgID:            x.principal.OrgID,
		KeyID:            x.principal.KeyID,
		Endpoint:         "chat_completions",
		RequestedModel:   x.chat.Model,
		Model:            x.route.Model.ID,
		Provider:         x.backend.Provider,
		Region:           x.route.Region,
		Status:           http.StatusOK,
		FinishReason:     res.FinishReason,
		Streamed:         streamed,
		PromptTokens:     bu.InputTokens + bu.CacheReadTokens,
		CompletionTokens: bu.OutputTokens + bu.ReasoningTokens,
		CachedReadTokens: bu.CacheReadTokens,
		ReasoningTokens:  bu.ReasoningTokens,
		CostMicros:       cost.TotalMicros,
		CostItems:        cost.ItemsMicros(),
		Latency:          now.Sub(x.start),
		CreatedAt:        x.start,
	}
	if !x.firstByte.IsZero() {
		u.TimeToFirstToken = x.firstByte.Sub(x.start)
	}
	log := x.log()
	x.s.settling.Add(1)
	go func() {
		defer x.s.settling.Done()
		ctx, cancel := context.WithTimeout(context.Background(), x.s.cfg.SettleTimeout)
		defer cancel()
		if _, err := x.s.ledger.Settle(ctx, u); err != nil {
			log.Error("settle", "err", err, "org_id", u.OrgID, "cost_micros", u.CostMicros)
		}
	}()
}
