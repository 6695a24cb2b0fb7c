package extproc

import (
	"encoding/json"
	"net/http"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/gemini"
)

// Token counting: Anthropic's POST /v1/messages/count_tokens and Gemini's
// POST /v1beta/models/{model}:countTokens. A count is authenticated, validated, resolved and
// rate-limited like a generation, but neither held nor charged: both providers document the
// endpoint as free (Anthropic: "Token counting is free to use"; Google bills only
// generation). When an attempt reaches a provider of the client's own protocol, which has the
// endpoint, the client's request goes to it (its model replaced by the backend's) and its answer
// back unchanged. Any other provider (another protocol, or an OpenAI-kind one, which has no
// counting endpoint) is answered by the attempt itself with an estimate, marked by the
// headerEstimated response header, in the protocol's exact shape so SDKs parse it. The estimate
// is the prompt bound the credit hold uses (requestBounds): the prompt's UTF-8 bytes plus a
// per-message overhead, non-text parts at the catalog's per-part worst case and the tool-use
// preamble when tools are offered. No tokenizer makes a token of less than a byte, so it never
// counts low; it can count several times high, which a client sizing a context window can live
// with, and which the header tells it.

// headerEstimated marks a count the gateway estimated instead of the provider counting.
const headerEstimated = "x-tollgate-estimated"

// countRequest is a token-count request: the client's top-level fields, forwarded to a provider
// of the client's protocol, and whether Gemini's were wrapped in generateContentRequest.
type countRequest struct {
	fields  map[string]json.RawMessage
	wrapped bool
}

// countTokensPath reads a Gemini :countTokens path, under /v1beta or /v1 as ParsePath does.
func countTokensPath(path string) (model string, ok bool) {
	p, _, _ := strings.Cut(path, "?")
	base, found := strings.CutSuffix(p, ":countTokens")
	if !found {
		return "", false
	}
	model, _, ok = gemini.ParsePath(base + ":generateContent")
	return model, ok
}

// countUpstream is the provider's path and body for a count on backend b, or ok false when b's
// provider does not speak the client's protocol (or has no counting endpoint) and the gateway
// estimates.
func countUpstream(req *clientRequest, b *catalog.Backend) (path string, body []byte, ok bool, err error) {
	pc := providerFor(b)
	if pc.native() != req.proto {
		return "", nil, false, nil
	}
	return pc.countRequest(req, b)
}

// countEstimateBody is the estimated count in the client protocol's response shape.
func countEstimateBody(req *clientRequest, m *catalog.Model) []byte {
	return clientFor(req.proto).countBody(requestBounds(m, req.pivot).prompt)
}

// countEstimateReply answers a count attempt on a backend without the endpoint: a 200 from the
// upstream filter, which Envoy's router takes as the attempt's response.
func countEstimateReply(req *clientRequest, b *catalog.Backend) *extprocv3.ProcessingResponse {
	var m mutation
	m.Set("content-type", "application/json")
	return immediateReply(http.StatusOK, &m, countEstimateBody(req, b.ModelRef()), "tollgate_count_estimated", nil)
}
