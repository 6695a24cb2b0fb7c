package extproc

import (
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/gemini"
	"github.com/tollgate/tollgate/extproc/openai"
)

// Translation is a pure function of (client request, chosen backend), so that every attempt's
// upstream filter rebuilds its request from the client's, whatever an earlier attempt sent.

// parseClient parses and validates body in the endpoint's protocol.
func parseClient(ep endpoint, body []byte) (*clientRequest, *apierror.Error) {
	switch ep.kind {
	case routeChat:
		chat, err := openai.ParseChatRequest(body)
		if err != nil {
			return nil, apierror.As(err)
		}
		return &clientRequest{proto: protoOpenAI, model: chat.Model, stream: chat.Stream,
			includeUsage: chat.IncludeUsage, pivot: chat, native: chat, governed: chat.Governed()}, nil
	case routeMessages:
		r, err := anthropic.ParseRequest(body)
		if err != nil {
			return nil, apierror.As(err)
		}
		pivot, err := r.ToOpenAI()
		if err != nil {
			return nil, apierror.As(err)
		}
		return &clientRequest{proto: protoAnthropic, model: r.Model, stream: r.Stream, pivot: pivot, native: r, governed: r.Governed()}, nil
	case routeGenerate:
		r, err := gemini.ParseRequest(body, ep.modelID, ep.stream)
		if err != nil {
			return nil, apierror.As(err)
		}
		pivot, err := r.ToPivot()
		if err != nil {
			return nil, apierror.As(err)
		}
		return &clientRequest{proto: protoGemini, model: r.Model, stream: r.Stream, pivot: pivot, native: r, governed: r.Governed()}, nil
	case routeCountTokens:
		return parseCountTokens(ep, body)
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
// provider speaks its protocol, else a translation of the pivot. Either way the body carries an
// explicit output limit, the one the credit hold assumed for model m (outputLimit): a client's
// max_tokens above the model's maximum, or none at all, must not let a provider bill more.
func upstreamRequest(req *clientRequest, b *catalog.Backend, m *catalog.Model) (path string, body []byte, err error) {
	p := b.ProviderRef()
	limit := outputLimit(m, req.pivot)
	switch providerProtocol(p.Kind) {
	case protoAnthropic:
		if native, ok := req.native.(*anthropic.Request); ok {
			body, err = anthropic.UpstreamBody(native.WithMaxTokens(limit), b.UpstreamModel)
		} else {
			body, err = anthropic.FromOpenAI(req.pivot.WithMaxTokens(limit, "max_tokens"), b.UpstreamModel, limit)
		}
		return p.PathPrefix() + anthropic.Path, body, err
	case protoGemini:
		if native, ok := req.native.(*gemini.Request); ok {
			body, err = gemini.PassthroughBody(native.WithMaxOutputTokens(limit), b.UpstreamModel)
		} else {
			body, err = gemini.BuildRequest(req.pivot.WithMaxTokens(limit, "max_tokens"), b.UpstreamModel)
		}
		return p.PathPrefix() + gemini.Path(b.UpstreamModel, req.stream), body, err
	default:
		// OpenAI itself takes max_completion_tokens (its reasoning models refuse max_tokens);
		// compatible hosts (vLLM, Mistral, …) all take max_tokens.
		param := "max_tokens"
		if p.Kind == catalog.KindOpenAI {
			param = "max_completion_tokens"
		}
		pivot := req.pivot.WithMaxTokens(limit, param)
		if req.proto != protoOpenAI && p.Kind == catalog.KindOpenAI && pivot.TopK != nil {
			// OpenAI refuses top_k, which Anthropic and Gemini clients may send; compatible
			// hosts (vLLM and the like) take it. pivot is already a copy.
			pivot.TopK = nil
		}
		body, err = openai.UpstreamBody(pivot, b.UpstreamModel)
		return p.PathPrefix() + "/v1/chat/completions", body, err
	}
}

// credentialHeader is the header, and its value, that carries provider p's credential.
func credentialHeader(p *catalog.Provider) (name, value string) {
	switch {
	case p.AuthHeader != "":
		return strings.ToLower(p.AuthHeader), p.APIKey()
	case p.Kind == catalog.KindAnthropic:
		return "x-api-key", p.APIKey()
	case p.Kind == catalog.KindGemini:
		return "x-goog-api-key", p.APIKey()
	}
	return "authorization", "Bearer " + p.APIKey()
}

// setUpstreamCredential replaces the caller's credentials with the provider's. The client's key
// must never reach a provider, whichever header it came in; others lists further credential
// headers to clear (a previous attempt's provider's).
func setUpstreamCredential(m *mutation, p *catalog.Provider, others ...string) {
	name, value := credentialHeader(p)
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
// naming the canonical model, and reads its usage.
func translateResponse(req *clientRequest, provider protocol, body []byte, model string) (out []byte, u billing.Usage, finish string, err error) {
	if req.proto == provider {
		switch provider {
		case protoAnthropic:
			return anthropic.RewriteResponse(body, model)
		case protoGemini:
			return gemini.RewriteResponse(body, model)
		default:
			out, res, err := openai.RewriteResponse(body, model)
			return out, res.Usage.Billing(), res.FinishReason, err
		}
	}
	var c *openai.ChatCompletion
	switch provider {
	case protoAnthropic:
		c, u, err = anthropic.ToOpenAI(body, model)
	case protoGemini:
		c, u, err = gemini.DecodeResponse(body, model)
	default:
		c, u, err = openai.DecodeCompletion(body, model)
	}
	if err != nil {
		return nil, u, "", err
	}
	if len(c.Choices) > 0 {
		finish = c.Choices[0].FinishReason
	}
	switch req.proto {
	case protoAnthropic:
		out = anthropic.ResponseFromOpenAI(c, model)
	case protoGemini:
		out = gemini.EncodeResponse(c, model, gemini.ShowThoughts(req.pivot))
	default:
		out = openai.EncodeCompletion(c, model)
	}
	return out, u, finish, nil
}

// newStreamProcessor returns the processor that turns the provider's stream into the client's.
func newStreamProcessor(req *clientRequest, provider protocol, model string) streamProcessor {
	if req.proto == provider {
		switch provider {
		case protoAnthropic:
			r := anthropic.NewStreamRewriter(model)
			return &passthrough{feed: r.Feed, usage: r.Usage, final: r.UsageFinal, finish: r.StopReason, content: r.ContentBytes}
		case protoGemini:
			r := gemini.NewStreamRewriter(model)
			return &passthrough{feed: r.Feed, usage: r.Usage, final: r.Done, finish: r.FinishReason, content: r.ContentBytes}
		default:
			return openaiPassthrough{openai.NewStreamRewriter(model, req.includeUsage)}
		}
	}
	b := &bridge{}
	switch provider {
	case protoAnthropic:
		b.dec = anthropic.NewStreamDecoder(model)
	case protoGemini:
		b.dec = gemini.NewStreamDecoder(model)
	default:
		b.dec = openai.NewStreamDecoder(model)
	}
	switch req.proto {
	case protoAnthropic:
		b.enc = anthropic.NewStreamEncoder(model)
	case protoGemini:
		b.enc = gemini.NewStreamEncoder(model, gemini.ShowThoughts(req.pivot))
	default:
		b.enc = openai.NewStreamEncoder(model, req.includeUsage)
	}
	return b
}

// providerError turns a provider's error response (or Envoy's local reply in its place) into the
// gateway's error.
func providerError(provider protocol, status int, body []byte) *apierror.Error {
	switch provider {
	case protoAnthropic:
		return anthropic.ProviderError(status, body)
	case protoGemini:
		return gemini.ProviderError(status, body)
	default:
		return openai.ProviderError(status, body)
	}
}
