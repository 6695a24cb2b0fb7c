package extproc

import (
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/openai"
)

// Translation is a pure function of (client request, chosen backend), so that a per-attempt
// upstream filter can call it unchanged once retries land (DESIGN.md section 2).

// parseClient parses and validates body in the endpoint's protocol.
func parseClient(ep endpoint, body []byte) (*clientRequest, *apierror.Error) {
	switch ep.kind {
	case routeChat:
		chat, err := openai.ParseChatRequest(body)
		if err != nil {
			return nil, apierror.As(err)
		}
		return &clientRequest{proto: protoOpenAI, model: chat.Model, stream: chat.Stream,
			includeUsage: chat.IncludeUsage, pivot: chat, native: chat}, nil
	}
	return nil, apierror.New(http.StatusNotFound, apierror.CodeNotFound, "No such endpoint")
}

// catalogEndpoint names the catalog endpoint a client protocol uses.
func catalogEndpoint(p protocol) string {
	switch p {
	case protoAnthropic:
		return catalog.EndpointMessages
	case protoGemini:
		return catalog.EndpointGemini
	}
	return catalog.EndpointChatCompletions
}

// upstreamRequest builds the provider's path and body for req: the client's own request when the
// provider speaks its protocol, else a translation of the pivot.
func upstreamRequest(req *clientRequest, b *catalog.Backend, m *catalog.Model) (path string, body []byte, err error) {
	p := b.ProviderRef()
	switch providerProtocol(p.Kind) {
	case protoOpenAI:
		body, err = openai.UpstreamBody(req.pivot, b.UpstreamModel)
		return p.PathPrefix() + "/v1/chat/completions", body, err
	}
	return "", nil, fmt.Errorf("provider kind %s is not supported yet", p.Kind)
}

// setUpstreamCredential replaces the caller's credentials with the provider's. The client's key
// must never reach a provider, whichever header it came in.
func setUpstreamCredential(m *mutation, p *catalog.Provider) {
	name, value := "authorization", "Bearer "+p.APIKey()
	switch {
	case p.AuthHeader != "":
		name, value = p.AuthHeader, p.APIKey()
	}
	for _, h := range []string{"authorization", "x-api-key", "x-goog-api-key"} {
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
// naming the canonical model, and reads its usage.
func translateResponse(req *clientRequest, provider protocol, body []byte, model string) (out []byte, u billing.Usage, finish string, err error) {
	if req.proto == provider {
		switch provider {
		case protoOpenAI:
			out, res, err := openai.RewriteResponse(body, model)
			return out, res.Usage.Billing(), res.FinishReason, err
		}
	}
	var c *openai.ChatCompletion
	switch provider {
	case protoOpenAI:
		c, u, err = openai.DecodeCompletion(body, model)
	default:
		err = fmt.Errorf("provider protocol %s is not supported yet", provider)
	}
	if err != nil {
		return nil, u, "", err
	}
	if len(c.Choices) > 0 {
		finish = c.Choices[0].FinishReason
	}
	switch req.proto {
	default:
		out = openai.EncodeCompletion(c, model)
	}
	return out, u, finish, nil
}

// newStreamProcessor returns the processor that turns the provider's stream into the client's.
func newStreamProcessor(req *clientRequest, provider protocol, model string) streamProcessor {
	if req.proto == provider {
		switch provider {
		case protoOpenAI:
			return openaiPassthrough{openai.NewStreamRewriter(model, req.includeUsage)}
		}
	}
	b := &bridge{}
	switch provider {
	default:
		b.dec = openai.NewStreamDecoder(model)
	}
	switch req.proto {
	default:
		b.enc = openai.NewStreamEncoder(model, req.includeUsage)
	}
	return b
}

// providerError turns a provider's error response (or Envoy's local reply in its place) into the
// gateway's error.
func providerError(provider protocol, status int, body []byte) *apierror.Error {
	switch provider {
	default:
		return openai.ProviderError(status, body)
	}
}
