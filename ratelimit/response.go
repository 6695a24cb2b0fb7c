package ratelimit

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/tollgate/tollgate/ratelimit/limiter"
)

// binding tracks the most restrictive limit of one class (requests or
// tokens): OpenAI's headers describe a single limit per class, and the one a
// client runs into first is the one with the least left.
type binding struct {
	set       bool
	limit     uint64
	remaining uint64
	reset     time.Duration
}

func (b *binding) consider(limit uint64, r limiter.Result) {
	if !b.set || r.Remaining < b.remaining || (r.Remaining == b.remaining && r.Reset > b.reset) {
		*b = binding{set: true, limit: limit, remaining: r.Remaining, reset: r.Reset}
	}
}

func (b *binding) appendHeaders(h []*corev3.HeaderValue, class string) []*corev3.HeaderValue {
	if !b.set {
		return h
	}
	return append(h,
		header("x-ratelimit-limit-"+class, strconv.FormatUint(b.limit, 10)),
		header("x-ratelimit-remaining-"+class, strconv.FormatUint(b.remaining, 10)),
		header("x-ratelimit-reset-"+class, formatReset(b.reset)),
	)
}

// addHeaders sets the OpenAI-style x-ratelimit-* headers Envoy adds to the
// response and, when over the limit, retry-after and the 429 body.
func addHeaders(resp *rlsv3.RateLimitResponse, checks []limited, results []limiter.Result) {
	var requests, tokens binding
	var over *limited
	var retry time.Duration
	for j := range checks {
		c, r := &checks[j], results[j]
		if c.desc.Quota.Tokens() {
			tokens.consider(c.limit.PerUnit, r)
		} else {
			requests.consider(c.limit.PerUnit, r)
		}
		// The request gets through once every limit has room: report the
		// one that takes longest.
		if !r.Allowed && (over == nil || r.RetryAfter > retry) {
			over, retry = c, r.RetryAfter
		}
	}
	h := make([]*corev3.HeaderValue, 0, 9)
	h = requests.appendHeaders(h, "requests")
	h = tokens.appendHeaders(h, "tokens")
	if over != nil {
		secs := max(1, int64((retry+time.Second-1)/time.Second))
		h = append(h,
			header("retry-after", strconv.FormatInt(secs, 10)),
			header("content-type", "application/json"),
		)
		resp.RawBody = errorBody(over, time.Duration(secs)*time.Second)
	}
	resp.ResponseHeadersToAdd = h
}

func header(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, Value: v} }

// formatReset writes a duration the way OpenAI's reset headers do ("20ms",
// "1.5s", "6m0s"), rounded up so that waiting that long is enough.
func formatReset(d time.Duration) string {
	unit := time.Second
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		unit = time.Millisecond
	case d < time.Minute:
		unit = 10 * time.Millisecond
	}
	return ((d + unit - 1) / unit * unit).String()
}

// openAIError is OpenAI's error envelope; Tollgate's extproc reshapes it for
// Anthropic and Gemini clients.
type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func errorBody(c *limited, retry time.Duration) []byte {
	what := "requests"
	if c.desc.Quota.Tokens() {
		what = "tokens"
	}
	var e openAIError
	e.Error.Type = "rate_limit"
	e.Error.Code = "rate_limit"
	// Say whose limit it is: clients treat a provider's 429 differently
	// (switch provider, back off globally) from their own gateway quota.
	e.Error.Message = fmt.Sprintf(
		"Rate limit exceeded: your Tollgate gateway quota %q allows %d %s %s; retry after %v. "+
			"This limit is set by the gateway operator, not by the upstream model provider.",
		c.limit.Name, c.limit.PerUnit, what, perUnit(c.limit.Unit), retry)
	b, err := json.Marshal(e)
	if err != nil { // cannot happen: strings only
		return nil
	}
	return b
}

func perUnit(d time.Duration) string {
	switch d {
	case time.Second:
		return "per second"
	case time.Minute:
		return "per minute"
	case time.Hour:
		return "per hour"
	case 24 * time.Hour:
		return "per day"
	case 7 * 24 * time.Hour:
		return "per week"
	}
	return "per " + d.String()
}
