package extproc

import (
	"net/http"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/openai"
)

// openaiClient is the OpenAI chat completions protocol as clients speak it. Its request is the
// pivot itself.
type openaiClient struct{}

func (openaiClient) endpoint() string { return catalog.EndpointChatCompletions }

func (openaiClient) parse(_ endpoint, body []byte, _ map[string]string) (*clientRequest, *apierror.Error) {
	chat, err := openai.ParseRequest(body)
	if err != nil {
		return nil, apierror.As(err)
	}
	return &clientRequest{proto: protoOpenAI, model: chat.Model, stream: chat.Stream,
		includeUsage: chat.IncludeUsage, pivot: chat, native: chat, governed: chat.Governed()}, nil
}

// parseCount: the OpenAI API has no token-counting endpoint; classify never routes one here.
func (openaiClient) parseCount(endpoint, []byte, map[string]string) (*clientRequest, *apierror.Error) {
	return nil, apierror.New(http.StatusNotFound, apierror.CodeNotFound, "No such endpoint")
}

func (openaiClient) encodeResponse(_ *clientRequest, c *openai.ChatCompletion, model string) []byte {
	return openai.EncodeResponse(c, model)
}

func (openaiClient) newStreamEncoder(req *clientRequest, model string) chunkEncoder {
	return openai.NewStreamEncoder(model, req.includeUsage)
}

func (openaiClient) errorBody(e *apierror.Error) []byte { return openai.ErrorBody(e) }

func (openaiClient) streamError(dst []byte, e *apierror.Error) []byte {
	return openai.StreamError(dst, e)
}

func (openaiClient) models(listed []catalog.ListedModel, created int64, one bool) []byte {
	models := listedModels(listed, created)
	if one {
		return openai.ModelObject(models[0])
	}
	return openai.ModelList(models)
}

func (openaiClient) countBody(int64) []byte { return nil }

// openaiProvider is an OpenAI-kind provider: OpenAI itself, or an OpenAI-compatible host (vLLM,
// Mistral, Azure's v1 API, …). param is the output limit's name: OpenAI takes
// max_completion_tokens (its reasoning models refuse max_tokens), compatible hosts max_tokens.
type openaiProvider struct {
	param string
	// compatible hosts take top_k, which OpenAI refuses.
	compatible bool
}

func (openaiProvider) native() protocol { return protoOpenAI }

func (openaiProvider) credential(p *catalog.Provider) (string, string) {
	if name, ok := customCredential(p); ok {
		return name, p.APIKey()
	}
	return "authorization", "Bearer " + p.APIKey()
}

func (o openaiProvider) request(req *clientRequest, b *catalog.Backend, limit int64) (string, []byte, error) {
	pivot := req.pivot.WithMaxTokens(limit, o.param)
	if req.proto != o.native() && !o.compatible && pivot.TopK != nil {
		// Anthropic and Gemini clients may send top_k; pivot is already a copy.
		pivot.TopK = nil
	}
	body, err := openai.BuildRequest(pivot, b.UpstreamModel)
	return b.ProviderRef().PathPrefix() + openai.Path(b.UpstreamModel, req.stream), body, err
}

func (openaiProvider) headers(*mutation, *clientRequest) {}

func (openaiProvider) countRequest(*clientRequest, *catalog.Backend) (string, []byte, bool, error) {
	return "", nil, false, nil
}

func (openaiProvider) decodeResponse(body []byte, model string) (*openai.ChatCompletion, billing.Usage, error) {
	return openai.DecodeResponse(body, model)
}

func (openaiProvider) newStreamDecoder(model string) chunkDecoder {
	return openai.NewStreamDecoder(model)
}

func (openaiProvider) rewriteResponse(body []byte, model string) ([]byte, billing.Usage, string, error) {
	return openai.RewriteResponse(body, model)
}

func (openaiProvider) newStreamRewriter(req *clientRequest, model string) streamProcessor {
	r := openai.NewStreamRewriter(model, req.includeUsage)
	return passthrough{r}
}

func (openaiProvider) providerError(status int, body []byte) *apierror.Error {
	return openai.ProviderError(status, body)
}
