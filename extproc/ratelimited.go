package extproc

import (
	"encoding/json"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/tollgate/tollgate/extproc/apierror"
)

// gatewayQuotaMessage starts every refusal the rate-limit service words (ratelimit/response.go).
const gatewayQuotaMessage = "Rate limit exceeded: your Tollgate gateway quota "

// quotaError is the error for a request Envoy's ratelimit filter refused. The rate-limit service
// words the refusal (its raw_body, in OpenAI's shape); the gateway keeps that message, so clients
// can tell the gateway's quota from a provider's 429 ("The upstream provider is rate limiting
// requests"), and re-renders it in the client's protocol.
func quotaError(body []byte) *apierror.Error {
	e := apierror.New(http.StatusTooManyRequests, apierror.CodeRateLimit, "Rate limit exceeded: the gateway's quota for this key is used up; retry later")
	var b struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	// Only the rate-limit service's own wording is kept: a provider's 429 can carry Envoy's
	// x-envoy-ratelimited header too, and its text must not pass for the gateway's.
	if json.Unmarshal(body, &b) == nil && strings.HasPrefix(b.Error.Message, gatewayQuotaMessage) {
		e.Message = apierror.Redact(b.Error.Message)
	}
	return e
}

// preferLastRateLimitHeaders keeps one value of each x-ratelimit-* header: the last. Envoy's
// ratelimit filter adds the gateway's quota headers in its encodeHeaders, which runs before this
// filter's on the way back, after any the provider sent about the operator's own account; the
// gateway's are the ones that concern the client.
func preferLastRateLimitHeaders(hm *corev3.HeaderMap, m *mutation) {
	last := map[string]string{}
	count := map[string]int{}
	for _, h := range hm.GetHeaders() {
		if strings.HasPrefix(h.GetKey(), "x-ratelimit-") {
			last[h.GetKey()] = string(h.GetRawValue())
			count[h.GetKey()]++
		}
	}
	for k, n := range count {
		if n > 1 {
			m.Set(k, last[k])
		}
	}
}
