package extproc

import (
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/openai"
)

// Protocols are codecs (docs/design.md section 2): every client protocol is reached through a
// clientCodec and every provider kind through a providerCodec, held in the two tables below, and
// everything between them goes through the OpenAI-shaped pivot, so N client protocols and M
// provider kinds need N+M adapters, not N×M translators. The core never switches on a protocol:
// adding a provider kind is one package, one providerCodec adapter and one entry in
// providerCodecs.

// clientCodec is one client protocol: how its requests are read and its answers written.
type clientCodec interface {
	// endpoint is the catalog endpoint a model must support to serve this protocol's generations.
	endpoint() string
	// parse reads and validates a generation request for ep, into its pivot and native forms;
	// headers are the client's protocol headers (clientHeaders), whose governed values it
	// reports with the body's.
	parse(ep endpoint, body []byte, headers map[string]string) (*clientRequest, *apierror.Error)
	// parseCount reads a token-count request for ep (counttokens.go).
	parseCount(ep endpoint, body []byte, headers map[string]string) (*clientRequest, *apierror.Error)
	// encodeResponse writes a pivot completion as this protocol's response, naming model.
	encodeResponse(req *clientRequest, c *openai.ChatCompletion, model string) []byte
	// newStreamEncoder writes pivot chunks as this protocol's stream.
	newStreamEncoder(req *clientRequest, model string) chunkEncoder
	// errorBody is e in this protocol's error shape; streamError appends it as the in-stream
	// error event that ends a stream.
	errorBody(e *apierror.Error) []byte
	streamError(dst []byte, e *apierror.Error) []byte
	// models renders a model listing (or, with one, a single model) in this protocol's shape.
	models(listed []catalog.ListedModel, created int64, one bool) []byte
	// countBody is a token count of tokens in this protocol's count response shape.
	countBody(tokens int64) []byte
}

// providerCodec is one provider kind: what its requests carry and how its answers are read. Its
// native protocol is the client protocol it speaks; a request of that protocol passes through
// natively (rewritten, not translated), keeping what the pivot cannot carry.
type providerCodec interface {
	native() protocol
	// credential is the header, and its value, that carries provider p's key.
	credential(p *catalog.Provider) (name, value string)
	// request builds the provider's path and body for req on backend b, with the explicit
	// output limit the credit hold assumed.
	request(req *clientRequest, b *catalog.Backend, limit int64) (path string, body []byte, err error)
	// headers sets the protocol headers an attempt sends besides the credential (Anthropic's
	// version and betas, the client's own when it speaks the same protocol).
	headers(m *mutation, req *clientRequest)
	// countRequest is the provider's path and body for a token count of a native request, or
	// ok false when this kind has no counting endpoint and the gateway estimates.
	countRequest(req *clientRequest, b *catalog.Backend) (path string, body []byte, ok bool, err error)
	// decodeResponse reads a successful answer into the pivot, with its usage.
	decodeResponse(body []byte, model string) (*openai.ChatCompletion, billing.Usage, error)
	newStreamDecoder(model string) chunkDecoder
	// rewriteResponse and newStreamRewriter relay a native answer, naming model and reading
	// its usage.
	rewriteResponse(body []byte, model string) ([]byte, billing.Usage, string, error)
	newStreamRewriter(req *clientRequest, model string) streamProcessor
	// providerError turns an error answer into the gateway's error.
	providerError(status int, body []byte) *apierror.Error
}

// clientCodecs holds every client protocol by the protocol its endpoints speak.
var clientCodecs = map[protocol]clientCodec{
	protoOpenAI:    openaiClient{},
	protoAnthropic: anthropicClient{},
	protoGemini:    geminiClient{},
}

// providerCodecs holds every provider kind the catalog accepts.
var providerCodecs = map[string]providerCodec{
	catalog.KindOpenAI:           openaiProvider{param: "max_completion_tokens"},
	catalog.KindOpenAICompatible: openaiProvider{param: "max_tokens", compatible: true},
	catalog.KindAnthropic:        anthropicProvider{},
	catalog.KindGemini:           geminiProvider{},
}

// providerFor is the codec of backend b's provider kind. The catalog refuses any other kind at
// load, so every backend has one.
func providerFor(b *catalog.Backend) providerCodec { return providerCodecs[b.ProviderRef().Kind] }

// clientFor is the codec of client protocol p. A path no endpoint claims has no protocol, and is
// answered in OpenAI's shape, the API every SDK's base URL points at first.
func clientFor(p protocol) clientCodec {
	if c, ok := clientCodecs[p]; ok {
		return c
	}
	return clientCodecs[protoOpenAI]
}

// listedModels describes listed in the pivot's neutral model description, from which every
// protocol package renders its own listing shape.
func listedModels(listed []catalog.ListedModel, created int64) []openai.Model {
	models := make([]openai.Model, 0, len(listed))
	for _, lm := range listed {
		models = append(models, openai.Model{
			ID:                     lm.ID,
			Created:                created,
			OwnedBy:                lm.Model.OwnedBy,
			SupportedEndpointTypes: lm.Model.Endpoints,
			Lifecycle:              lm.Model.Lifecycle,
			MaxOutputTokens:        lm.Model.MaxOutputTokens,
		})
	}
	return models
}
