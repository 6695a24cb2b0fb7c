package extproc

import (
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/catalog"
)

// Translation is a pure function of (client request, chosen backend), so that every attempt's
// upstream filter rebuilds its request from the client's, whatever an earlier attempt sent.

// parseClient parses and validates body in the endpoint's protocol: a generation, or a token
// count.
func parseClient(ep endpoint, body []byte, headers map[string]string) (*clientRequest, *apierror.Error) {
	c := clientFor(ep.proto)
	switch ep.kind {
	case routeChat, routeMessages, routeGenerate:
		return c.parse(ep, body, headers)
	case routeCountTokens:
		return c.parseCount(ep, body, headers)
	}
	return nil, apierror.New(http.StatusNotFound, apierror.CodeNotFound, "No such endpoint")
}

// upstreamRequest builds the provider's path and body for req: the client's own request when the
// provider speaks its protocol, else a translation of the pivot. Either way the body carries an
// explicit output limit, the one the credit hold assumed for model m (outputLimit): a client's
// max_tokens above the model's maximum, or none at all, must not let a provider bill more.
func upstreamRequest(req *clientRequest, b *catalog.Backend, m *catalog.Model) (path string, body []byte, err error) {
	return providerFor(b).request(req, b, outputLimit(m, req.pivot))
}

// customCredential is the credential header an operator configured for provider p (Azure's
// api-key, a proxy's own), if any.
func customCredential(p *catalog.Provider) (string, bool) {
	if p.AuthHeader == "" {
		return "", false
	}
	return strings.ToLower(p.AuthHeader), true
}

// setUpstreamCredential replaces the caller's credentials with the provider's. The client's key
// must never reach a provider, whichever header it came in; others lists further credential
// headers to clear (a previous attempt's provider's).
func setUpstreamCredential(m *mutation, p *catalog.Provider, others ...string) {
	name, value := providerCodecs[p.Kind].credential(p)
	for _, h := range append([]string{"authorization", "x-api-key", "x-goog-api-key"}, others...) {
		if h != name {
			m.Remove(h)
		}
	}
	if p.APIKey() == "" {
		m.Remove(name)
		return
	}
	m.Set(name, value)
}

// translateResponse turns a provider's successful non-streaming response into the client's,
// naming the canonical model, and reads its usage: relayed natively when the provider speaks the
// client's protocol, else through the pivot.
func translateResponse(req *clientRequest, provider providerCodec, body []byte, model string) (out []byte, u billing.Usage, finish string, err error) {
	if provider.native() == req.proto {
		return provider.rewriteResponse(body, model)
	}
	c, u, err := provider.decodeResponse(body, model)
	if err != nil {
		return nil, u, "", err
	}
	if len(c.Choices) > 0 {
		finish = c.Choices[0].FinishReason
	}
	return clientFor(req.proto).encodeResponse(req, c, model), u, finish, nil
}

// newStreamProcessor returns the processor that turns the provider's stream into the client's.
func newStreamProcessor(req *clientRequest, provider providerCodec, model string) streamProcessor {
	if provider.native() == req.proto {
		return provider.newStreamRewriter(req, model)
	}
	return &bridge{dec: provider.newStreamDecoder(model), enc: clientFor(req.proto).newStreamEncoder(req, model)}
}
