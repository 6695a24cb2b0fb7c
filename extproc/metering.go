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

// bounds is what one request may consume on one model: no more prompt tokens than its UTF-8
// bytes plus framing plus each non-text part at its catalog worst case, and no more output
// tokens than the limit the provider is sent. The hold prices exactly these, so usage inside
// them can never cost more than the hold.
type bounds struct{ prompt, output int64 }

func requestBounds(m *catalog.Model, chat *openai.ChatRequest) bounds {
	media := chat.MediaParts()
	prompt := chat.PromptBytes() + media.Images*m.PartTokens(catalog.PartImage) +
		media.Documents*m.PartTokens(catalog.PartDocument) + media.Audio*m.PartTokens(catalog.PartAudio)
	if len(chat.Tools) > 0 {
		prompt += toolUseOverheadTokens
	}
	return bounds{prompt: prompt, output: outputLimit(m, chat)}
}

// toolUseOverheadTokens bounds the system prompt a provider adds, unseen, when a request offers
// tools: Anthropic documents 346 such tokens for its current models (tool use pricing table),
// OpenAI and Gemini a similar preamble.
const toolUseOverheadTokens = 1024

// outputLimit is the output limit the provider is always sent, and the hold's: the client's,
// never above the model's max_output_tokens (which is the limit when the client set none).
func outputLimit(m *catalog.Model, chat *openai.ChatRequest) int64 {
	if chat.MaxTokens != nil && *chat.MaxTokens > 0 && *chat.MaxTokens < m.MaxOutputTokens {
		return *chat.MaxTokens
	}
	return m.MaxOutputTokens
}

// estimate is what a response whose usage is missing or not yet final is charged at least: the
// prompt at its bound when the provider reported nothing, and a token per byte of content
// delivered, within the output bound. Like the prompt's bound it errs in the operator's favour:
// no tokenizer in use makes a token of less than one byte, so the delivered output cannot have
// had more tokens than that, and a provider cannot make a cut answer cheap by reporting little.
func estimate(u billing.Usage, seen bool, contentBytes int64, b bounds) billing.Usage {
	if !seen {
		u = billing.Usage{InputTokens: b.prompt}
	}
	if out := min(contentBytes, b.output); out > completionTokens(u) {
		u.OutputTokens += out - completionTokens(u)
	}
	return u
}

// streamUsage is what the stream has consumed so far (metered).
func (x *exchange) streamUsage() (billing.Usage, bool) {
	return metered(x.proc, requestBounds(x.served(), x.req.pivot))
}

// runningUsage is streamUsage within the request's bounds: the running total that token quotas
// see must not count what settlement would not charge.
func (x *exchange) runningUsage() billing.Usage {
	b := requestBounds(x.served(), x.req.pivot)
	u, _ := metered(x.proc, b)
	u, _ = checkUsage(u, b)
	return u
}

// metered is what a stream has consumed so far: the provider's figure once final, else the
// larger of the provider's figure and the estimate from what was delivered.
func metered(p streamProcessor, b bounds) (u billing.Usage, final bool) {
	u, seen, final := p.Usage()
	if negative(u) {
		// A provider reporting negative counts has reported nothing usable.
		u, seen, final = billing.Usage{}, false, false
	}
	if final {
		return u, true
	}
	return estimate(u, seen, p.ContentBytes(), b), false
}

// settleStream settles a streamed request with what its stream reported, or, when the provider's
// final usage never arrived (the client left, or the stream broke), with streamUsage's estimate.
func (x *exchange) settleStream() billing.Usage {
	u, final := x.streamUsage()
	finish := x.proc.FinishReason()
	if !final && finish == "" {
		finish = "incomplete"
	}
	return x.settle(u, finish, true)
}

// capAtHold splits a cost into what is charged, never above the hold the organisation agreed
// to, and the excess, recorded for the operator instead.
func capAtHold(costMicros, holdMicros int64) (charge, excess int64) {
	if costMicros <= holdMicros {
		return costMicros, 0
	}
	return holdMicros, costMicros - holdMicros
}

// negative reports whether any count of u is below zero.
func negative(u billing.Usage) bool {
	return min(u.InputTokens, u.CacheReadTokens, u.CacheWriteTokens, u.CacheWrite1HTokens,
		u.OutputTokens, u.ReasoningTokens, u.Images, u.WebSearches) < 0
}

// checkUsage holds provider-reported usage to what the request could have consumed: counts are
// non-negative, the prompt within its bound and the output within the limit the provider was
// sent. Anything outside is a provider anomaly: logged, and clamped rather than charged.
func checkUsage(u billing.Usage, b bounds) (billing.Usage, []string) {
	var anomalies []string
	for _, f := range []*int64{&u.InputTokens, &u.CacheReadTokens, &u.CacheWriteTokens, &u.CacheWrite1HTokens,
		&u.OutputTokens, &u.ReasoningTokens, &u.Images, &u.WebSearches} {
		if *f < 0 {
			*f = 0
			anomalies = append(anomalies, "negative count")
		}
	}
	// Within a bound, the cheaper items keep their counts first: the hold priced every token of
	// the bound at the dearest item, so any split of it stays within the hold.
	clamp := func(limit int64, what string, fields ...*int64) {
		left := limit
		over := false
		for _, f := range fields {
			if *f > left {
				*f, over = left, true
			}
			left -= *f
		}
		if over {
			anomalies = append(anomalies, what)
		}
	}
	clamp(b.prompt, "prompt above its bound", &u.CacheReadTokens, &u.InputTokens, &u.CacheWriteTokens, &u.CacheWrite1HTokens)
	clamp(b.output, "output above the limit sent", &u.OutputTokens, &u.ReasoningTokens)
	return u, anomalies
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
//
// The usage is checked against the request's bounds, the per-request fee added, and the charge
// never exceeds the hold: an excess (which only a catalog change between hold and settlement
// could cause) is recorded for the operator as ExcessMicros instead of charged. It returns the
// usage charged.
func (x *exchange) settle(bu billing.Usage, finish string, streamed bool) billing.Usage {
	if x.settled {
		return bu
	}
	x.settled, x.held = true, false // settlement replaces the hold
	now := x.s.now()
	log := x.log()
	reported := bu
	bu, anomalies := checkUsage(bu, requestBounds(x.served(), x.req.pivot))
	if len(anomalies) > 0 {
		log.Warn("provider usage anomaly", "anomalies", anomalies, "provider", x.backend.Provider,
			"prompt_tokens", promptTokens(reported), "completion_tokens", completionTokens(reported))
	}
	bu.Requests = 1
	cost := billing.Compute(x.served().Prices(), bu, int64(x.principal.MarkupBps))
	var excess int64
	if x.holdPlaced {
		if cost.TotalMicros, excess = capAtHold(cost.TotalMicros, x.heldMicros); excess > 0 {
			log.Warn("charge above hold", "hold_micros", x.heldMicros, "excess_micros", excess)
		}
	}
	u := ledger.Usage{
		RequestID:        x.requestID,
		OrgID:            x.principal.OrgID,
		KeyID:            x.principal.KeyID,
		Endpoint:         clientFor(x.req.proto).endpoint(),
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
		ExcessMicros:     excess,
		CostItems:        cost.ItemsMicros(),
		Latency:          now.Sub(x.start),
		CreatedAt:        x.start,
	}
	if !x.firstByte.IsZero() {
		u.TimeToFirstToken = x.firstByte.Sub(x.start)
	}
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
	return bu
}

// hold reserves an upper bound of the request's cost before it goes upstream, so that no number
// of concurrent requests can spend credit the organisation does not have (docs/design.md section 6).
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
	x.held, x.holdPlaced, x.heldMicros = true, true, amount
	return nil
}

// holdMicros bounds a chat request's cost on model m: requestBounds' prompt, each token priced
// at the dearest input rate, its output limit at the dearest output rate, and the per-request
// fee.
func holdMicros(m *catalog.Model, chat *openai.ChatRequest, markupBps int64) int64 {
	p := m.Prices()
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
	b := requestBounds(m, chat)
	return billing.Compute(bound, billing.Usage{InputTokens: b.prompt, OutputTokens: b.output, Requests: 1}, markupBps).TotalMicros
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
func (x *exchange) chargeInput() { x.chargeUnanswered(statusClientClosed, "cancelled") }

// chargeUnanswered charges a request that a provider read but never answered its input, recording
// status and finish with the usage.
func (x *exchange) chargeUnanswered(status int, finish string) {
	x.syncAttempt()
	x.unansweredStatus = status
	x.settle(billing.Usage{InputTokens: inputTokenEstimate(x.req.pivot)}, finish, false)
}

// endUnsettled ends the hold of a request answered with e instead of a provider's success. A
// provider's own error is not billed, and a request no provider could be reached for cost
// nothing: both release the hold. A request that timed out after an attempt went out was read by
// a provider that may still be working on it, and bills it: it is charged its input.
func (x *exchange) endUnsettled(e *apierror.Error) {
	if !x.held {
		return
	}
	if e.Code == apierror.CodeProviderTimeout && x.reachedProvider() {
		x.chargeUnanswered(e.Status, "timeout")
		return
	}
	x.release()
}

// settleStatus is the status recorded with the usage: the client's, or, for a request charged
// without a response, why it had none (499 when the client closed it, nginx's convention).
func (x *exchange) settleStatus() int {
	if x.unansweredStatus != 0 {
		return x.unansweredStatus
	}
	return http.StatusOK
}

// statusClientClosed records a request the client abandoned before any response.
const statusClientClosed = 499

// reachedProvider reports whether a provider may have read the request: once an attempt has
// been sent.
func (x *exchange) reachedProvider() bool {
	if x.req == nil {
		return false
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
