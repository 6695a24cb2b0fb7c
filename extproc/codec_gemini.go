package extproc

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/gemini"
	"github.com/tollgate/tollgate/extproc/openai"
)

// geminiClient is the Gemini API's generateContent protocol as clients speak it; the path names
// the model and whether to stream.
type geminiClient struct{}

func (geminiClient) endpoint() string { return catalog.EndpointGemini }

func (geminiClient) parse(ep endpoint, body []byte, _ map[string]string) (*clientRequest, *apierror.Error) {
	r, err := gemini.ParseRequest(body, ep.modelID, ep.stream)
	if err != nil {
		return nil, apierror.As(err)
	}
	pivot, err := r.ToPivot()
	if err != nil {
		return nil, apierror.As(err)
	}
	return &clientRequest{proto: protoGemini, model: r.Model, stream: r.Stream, pivot: pivot, native: r, governed: r.Governed()}, nil
}

// parseCount validates a count's contents, bare or as a generateContentRequest.
func (geminiClient) parseCount(ep endpoint, body []byte, _ map[string]string) (*clientRequest, *apierror.Error) {
	fields, derr := apierror.DecodeObject(body)
	if derr != nil {
		return nil, derr
	}
	count := &countRequest{fields: fields}
	inner := body
	if g, ok := fields["generateContentRequest"]; ok {
		if _, has := fields["contents"]; has {
			return nil, apierror.InvalidParam("contents", "Set either contents or generateContentRequest, not both")
		}
		inner, count.wrapped = g, true
	}
	r, err := gemini.ParseRequest(inner, ep.modelID, false)
	if err != nil {
		return nil, apierror.As(err)
	}
	pivot, err := r.ToPivot()
	if err != nil {
		return nil, apierror.As(err)
	}
	return &clientRequest{proto: protoGemini, model: r.Model, pivot: pivot, count: count, governed: r.Governed()}, nil
}

func (geminiClient) encodeResponse(req *clientRequest, c *openai.ChatCompletion, model string) []byte {
	return gemini.EncodeResponse(c, model, gemini.ShowThoughts(req.pivot))
}

func (geminiClient) newStreamEncoder(req *clientRequest, model string) chunkEncoder {
	return gemini.NewStreamEncoder(model, gemini.ShowThoughts(req.pivot))
}

func (geminiClient) errorBody(e *apierror.Error) []byte { return gemini.ErrorBody(e) }

func (geminiClient) streamError(dst []byte, e *apierror.Error) []byte {
	return gemini.StreamError(dst, e)
}

// models renders the Gemini API's model list (or one model) shape.
func (geminiClient) models(listed []catalog.ListedModel, created int64, one bool) []byte {
	models := listedModels(listed, created)
	if one {
		return gemini.ModelObject(models[0])
	}
	return gemini.ModelList(models)
}

// countBody is a CountTokensResponse: totalTokens, and the per-modality split the reference
// documents.
func (geminiClient) countBody(tokens int64) []byte {
	n := strconv.FormatInt(tokens, 10)
	return []byte(`{"totalTokens":` + n + `,"promptTokensDetails":[{"modality":"TEXT","tokenCount":` + n + `}]}`)
}

// geminiProvider is a Gemini-kind provider (the Gemini API's generateContent).
type geminiProvider struct{}

func (geminiProvider) native() protocol { return protoGemini }

func (geminiProvider) credential(p *catalog.Provider) (string, string) {
	if name, ok := customCredential(p); ok {
		return name, p.APIKey()
	}
	return "x-goog-api-key", p.APIKey()
}

func (geminiProvider) request(req *clientRequest, b *catalog.Backend, limit int64) (string, []byte, error) {
	var body []byte
	var err error
	if native, ok := req.native.(*gemini.Request); ok {
		body, err = gemini.PassthroughBody(native.WithMaxOutputTokens(limit), b.UpstreamModel)
	} else {
		body, err = gemini.BuildRequest(req.pivot.WithMaxTokens(limit, "max_tokens"), b.UpstreamModel)
	}
	return b.ProviderRef().PathPrefix() + gemini.Path(b.UpstreamModel, req.stream), body, err
}

func (geminiProvider) headers(*mutation, *clientRequest) {}

func (geminiProvider) countRequest(req *clientRequest, b *catalog.Backend) (string, []byte, bool, error) {
	fields := make(map[string]json.RawMessage, len(req.count.fields))
	for k, v := range req.count.fields {
		fields[k] = v
	}
	path := strings.TrimSuffix(gemini.Path(b.UpstreamModel, false), ":generateContent") + ":countTokens"
	// The path names the model, resolved by the catalog; a body's own must not reach the
	// provider (CountTokensRequest has none at the top level).
	delete(fields, "model")
	if req.count.wrapped {
		// Google requires the wrapped request to name its model, as models/{model}.
		var inner map[string]json.RawMessage
		if err := json.Unmarshal(fields["generateContentRequest"], &inner); err != nil {
			return "", nil, false, err
		}
		name := b.UpstreamModel
		if !strings.HasPrefix(name, "tunedModels/") {
			name = "models/" + strings.TrimPrefix(name, "models/")
		}
		inner["model"], _ = json.Marshal(name)
		wrapped, err := json.Marshal(inner)
		if err != nil {
			return "", nil, false, err
		}
		fields["generateContentRequest"] = wrapped
	}
	body, err := json.Marshal(fields)
	return b.ProviderRef().PathPrefix() + path, body, true, err
}

func (geminiProvider) decodeResponse(body []byte, model string) (*openai.ChatCompletion, billing.Usage, error) {
	return gemini.DecodeResponse(body, model)
}

func (geminiProvider) newStreamDecoder(model string) chunkDecoder {
	return gemini.NewStreamDecoder(model)
}

func (geminiProvider) rewriteResponse(body []byte, model string) ([]byte, billing.Usage, string, error) {
	return gemini.RewriteResponse(body, model)
}

func (geminiProvider) newStreamRewriter(_ *clientRequest, model string) streamProcessor {
	r := gemini.NewStreamRewriter(model)
	return passthrough{r}
}

func (geminiProvider) providerError(status int, body []byte) *apierror.Error {
	return gemini.ProviderError(status, body)
}
