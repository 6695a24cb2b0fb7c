package extproc

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/catalog"

	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/openai"
)

// settleStream settles a streamed request with what its stream reported. When the provider's
// usage never arrived (the client left, or the stream broke), usage is estimated from what was
// delivered: the prompt at its upper bound in bytes, and one token per content chunk sent.
func (x *exchange) settleStream() billing.Usage {
	u, ok := x.proc.Usage()
	finish := x.proc.FinishReason()
	if !ok {
		u = billing.Usage{InputTokens: x.req.pivot.PromptBytes(), OutputTokens: int64(x.proc.Delivered())}
		if finish == "" {
			finish = "incomplete"
		}
	}
	x.settle(u, finish, true)
	return u
}

// promptTokens and completionTokens total billing's disjoint counts the way providers report
// them: cached input is prompt input, reasoning is output.
func promptTokens(u billing.Usage) int64 {
	return u.InputTokens + u.CacheReadTokens + u.CacheWriteTokens + u.CacheWrite1HTokens
}

func completionTokens(u billing.Usage) int64 { return u.OutputTokens + u.ReasoningTokens }

// settle records the request's usage and charge once. The write runs in the background, detached
// from the stream's context so a departing client cannot cancel its own charge; Server.Drain
// waits for it on shutdown.
func (x *exchange) settle(bu billing.Usage, finish string, streamed bool) {
	if x.settled {
		return
	}
	x.settled, x.held = true, false // settlement replaces the hold
	now := x.s.now()
	cost := billing.Compute(x.served().Prices(), bu, int64(x.principal.MarkupBps))
	u := ledger.Usage{
		RequestID:        x.requestID,
		OrgID:            x.principal.OrgID,
		KeyID:            x.principal.KeyID,
		Endpoint:         catalogEndpoint(x.req.proto),
		RequestedModel:   x.req.model,
		Model:            x.served().ID,
		Provider:         x.backend.Provider,
		Region:           x.route.Region,
		Status:           x.settleStatus(),
		FinishReason:     finish,
		Streamed:         streamed,
		PromptTokens:     promptTokens(bu),
		CompletionTokens: completionTokens(bu),
		CachedReadTokens: bu.CacheReadTokens,
		CacheWriteTokens: bu.CacheWriteTokens + bu.CacheWrite1HTokens,
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
	x.attemptMu.Lock()
	u.Attempts = slices.Clone(x.attempts)
	x.attemptMu.Unlock()
	if n := len(u.Attempts); n > 0 && u.Attempts[n-1].Status == 0 {
		// The final attempt's upstream filter may not report response headers; its response is
		// this one.
		u.Attempts[n-1].Status = x.status
	}
	if len(u.Attempts) > 1 {
		// Only the final attempt is charged; the earlier ones are worth an operator's eye.
		log.Info("served after retries", "attempts", len(u.Attempts), "provider", u.Provider)
	}
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

// hold reserves an upper bound of the request's cost before it goes upstream, so that no number
// of concurrent requests can spend credit the organisation does not have (DESIGN.md section 6).
// Failing to reach the ledger fails the request: admitting it unheld could overspend.
func (x *exchange) hold(ctx context.Context) *apierror.Error {
	// Any model of the fallback chain may end up serving, so the bound is the dearest of them.
	var amount int64
	for _, b := range x.route.Chain {
		amount = max(amount, holdMicros(b.ModelRef(), x.req.pivot, int64(x.principal.MarkupBps)))
	}
	// The input charge (what the hold costs if it expires unsettled) is priced at the model the
	// request goes to first, which is the one that reads it unless it fails.
	input := min(inputMicros(x.backend.ModelRef(), x.req.pivot, int64(x.principal.MarkupBps)), amount)
	ctx, cancel := context.WithTimeout(ctx, x.s.cfg.HoldTimeout)
	defer cancel()
	err := x.s.ledger.PlaceHold(ctx, ledger.Hold{
		RequestID:    x.requestID,
		OrgID:        x.principal.OrgID,
		KeyID:        x.principal.KeyID,
		AmountMicros: amount,
		InputMicros:  input,
		ExpiresAt:    x.s.now().Add(x.s.cfg.HoldTTL),
	})
	switch {
	case errors.Is(err, ledger.ErrInsufficientCredit):
		return apierror.New(http.StatusPaymentRequired, apierror.CodeInsufficientQuota,
			"Your organization's credit cannot cover this request (up to %s USD); add credit or lower max_tokens", billing.FormatMicros(amount))
	case err != nil:
		x.log().Error("place hold", "err", err)
		return apierror.New(http.StatusServiceUnavailable, apierror.CodeServiceUnavailable, "The gateway cannot reserve credit right now; retry shortly")
	}
	x.held = true
	return nil
}

// holdMicros bounds a chat request's cost: the prompt cannot have more tokens than its UTF-8
// bytes (plus framing, counted by PromptBytes), each priced at the dearest input rate, and the
// output cannot exceed max_tokens (or the model's max_output_tokens), priced at the dearest
// output rate.
func holdMicros(m *catalog.Model, chat *openai.ChatRequest, markupBps int64) int64 {
	p := m.Prices()
	maxOut := m.MaxOutputTokens
	if chat.MaxTokens != nil && *chat.MaxTokens < maxOut {
		maxOut = *chat.MaxTokens
	}
	dearest := func(items ...string) int64 {
		var v int64
		for _, it := range items {
			v = max(v, p[it])
		}
		return v
	}
	bound := billing.Prices{
		billing.ItemPrompt:     dearest(billing.ItemPrompt, billing.ItemInputCacheRead, billing.ItemInputCacheWrite, billing.ItemInputCacheWrite5Min, billing.ItemInputCacheWrite1H),
		billing.ItemCompletion: dearest(billing.ItemCompletion, billing.ItemInternalReasoning),
		billing.ItemRequest:    p[billing.ItemRequest],
	}
	return billing.Compute(bound, billing.Usage{InputTokens: chat.PromptBytes(), OutputTokens: maxOut, Requests: 1}, markupBps).TotalMicros
}

// inputTokenEstimate is a lower-bound estimate of a prompt's tokens: a quarter of its bytes
// (PromptBytes, framing included), rounded up. Tokenizers average about four bytes of English per
// token and fewer for most other text, so this rarely exceeds the real count; it is what a
// request is charged at least once a provider has read it and no usage ever came back.
func inputTokenEstimate(chat *openai.ChatRequest) int64 { return (chat.PromptBytes() + 3) / 4 }

// inputMicros prices a prompt's lower-bound token estimate at m's prompt rate, markup applied.
// It never exceeds holdMicros for the same model and request: fewer tokens, at a rate no higher.
func inputMicros(m *catalog.Model, chat *openai.ChatRequest, markupBps int64) int64 {
	p := billing.Prices{billing.ItemPrompt: m.Prices()[billing.ItemPrompt]}
	return billing.Compute(p, billing.Usage{InputTokens: inputTokenEstimate(chat)}, markupBps).TotalMicros
}

// chargeInput settles a request that reached a provider and then ended without a response (the
// client left, or Envoy reset the stream): the provider has read, and bills, the prompt, so it
// is charged its input at the model that was last tried, not released for free.
func (x *exchange) chargeInput() {
	x.syncAttempt()
	x.cancelled = true
	x.settle(billing.Usage{InputTokens: inputTokenEstimate(x.req.pivot)}, "cancelled", false)
}

// settleStatus is the status recorded with the usage: the client's, or 499 (the client closed the
// request, nginx's convention) for a request that ended without a response.
func (x *exchange) settleStatus() int {
	if x.cancelled {
		return statusClientClosed
	}
	return http.StatusOK
}

// statusClientClosed records a request the client abandoned before any response.
const statusClientClosed = 499

// reachedProvider reports whether a provider may have read the request: with per-attempt
// translation, once an attempt has been sent; otherwise once the router filter has routed it
// with its translated body.
func (x *exchange) reachedProvider() bool {
	if x.req == nil {
		return false
	}
	if !x.s.cfg.TranslatePerAttempt {
		return true
	}
	x.attemptMu.Lock()
	defer x.attemptMu.Unlock()
	return len(x.attempts) > 0
}

// release returns a hold for a request that will not be charged (it failed before the provider
// produced anything billable). Like settlement it runs detached from the stream.
func (x *exchange) release() {
	x.held = false
	log := x.log()
	id := x.requestID
	x.s.settling.Add(1)
	go func() {
		defer x.s.settling.Done()
		ctx, cancel := context.WithTimeout(context.Background(), x.s.cfg.SettleTimeout)
		defer cancel()
		if err := x.s.ledger.ReleaseHold(ctx, id); err != nil {
			log.Error("release hold", "err", err)
		}
	}()
}
