package extproc

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/openai"
)

// anthropicClient is the Anthropic Messages protocol as clients speak it.
type anthropicClient struct{}

func (anthropicClient) endpoint() string { return catalog.EndpointMessages }

func (anthropicClient) parse(_ endpoint, body []byte, headers map[string]string) (*clientRequest, *apierror.Error) {
	r, err := anthropic.ParseRequest(body)
	if err != nil {
		return nil, apierror.As(err)
	}
	return anthropicRequest(r, headers)
}

// anthropicRequest is r with its pivot, and the governed parameters of its body and of its
// anthropic-beta header: every beta value that is not harmless needs the model's allowed_params,
// as a body field does, and the values forwarded are those, de-duplicated in the client's order.
func anthropicRequest(r *anthropic.Request, headers map[string]string) (*clientRequest, *apierror.Error) {
	pivot, err := r.ToPivot()
	if err != nil {
		return nil, apierror.As(err)
	}
	uses, betas := anthropic.Betas(headers["anthropic-beta"])
	kept := map[string]string{"anthropic-version": headers["anthropic-version"], "anthropic-beta": strings.Join(betas, ",")}
	return &clientRequest{proto: protoAnthropic, model: r.Model, stream: r.Stream, pivot: pivot, native: r,
		governed: append(r.Governed(), uses...), headers: kept}, nil
}

// parseCount validates a count as the Messages request it counts, without max_tokens (which
// counting does not take) or stream.
func (anthropicClient) parseCount(_ endpoint, body []byte, headers map[string]string) (*clientRequest, *apierror.Error) {
	fields, derr := apierror.DecodeObject(body)
	if derr != nil {
		return nil, derr
	}
	probe := make(map[string]json.RawMessage, len(fields)+1)
	for k, v := range fields {
		probe[k] = v
	}
	delete(probe, "stream")
	probe["max_tokens"] = json.RawMessage("1")
	b, err := json.Marshal(probe)
	if err != nil {
		return nil, apierror.InvalidParam("", "Request body is not valid JSON")
	}
	r, err := anthropic.ParseRequest(b)
	if err != nil {
		return nil, apierror.As(err)
	}
	// Governed parameters (MCP servers, betas, …) are checked as for a generation: a count
	// reaches the same provider account.
	req, perr := anthropicRequest(r, headers)
	if perr != nil {
		return nil, perr
	}
	req.count = &countRequest{fields: fields}
	return req, nil
}

func (anthropicClient) encodeResponse(_ *clientRequest, c *openai.ChatCompletion, model string) []byte {
	return anthropic.EncodeResponse(c, model)
}

func (anthropicClient) newStreamEncoder(_ *clientRequest, model string) chunkEncoder {
	return anthropic.NewStreamEncoder(model)
}

func (anthropicClient) errorBody(e *apierror.Error) []byte { return anthropic.ErrorBody(e) }

func (anthropicClient) streamError(dst []byte, e *apierror.Error) []byte {
	return anthropic.StreamError(dst, e)
}

// models renders Anthropic's model list (or one model) shape.
func (anthropicClient) models(listed []catalog.ListedModel, created int64, one bool) []byte {
	models := listedModels(listed, created)
	if one {
		return anthropic.ModelObject(models[0])
	}
	return anthropic.ModelList(models)
}

func (anthropicClient) countBody(tokens int64) []byte {
	return []byte(`{"input_tokens":` + strconv.FormatInt(tokens, 10) + `}`)
}

// anthropicProvider is an Anthropic-kind provider (the Messages API).
type anthropicProvider struct{}

func (anthropicProvider) native() protocol { return protoAnthropic }

func (anthropicProvider) credential(p *catalog.Provider) (string, string) {
	if name, ok := customCredential(p); ok {
		return name, p.APIKey()
	}
	return "x-api-key", p.APIKey()
}

func (a anthropicProvider) request(req *clientRequest, b *catalog.Backend, limit int64) (string, []byte, error) {
	var body []byte
	var err error
	if native, ok := req.native.(*anthropic.Request); ok {
		body, err = anthropic.PassthroughBody(native.WithMaxTokens(limit), b.UpstreamModel)
	} else {
		body, err = anthropic.BuildRequest(req.pivot.WithMaxTokens(limit, "max_tokens"), b.UpstreamModel, limit)
	}
	return b.ProviderRef().PathPrefix() + anthropic.Path(b.UpstreamModel, req.stream), body, err
}

// headers: Anthropic requires a version header. A client speaking Anthropic keeps its own
// version and its betas (governed like body fields, so checkParams let them through); any other
// client's request is translated to the version the translation targets, with no betas.
func (a anthropicProvider) headers(m *mutation, req *clientRequest) {
	version, beta := anthropic.Version, ""
	if req.proto == a.native() {
		if v := req.headers["anthropic-version"]; v != "" {
			version = v
		}
		beta = req.headers["anthropic-beta"]
	}
	m.Set("anthropic-version", version)
	if beta != "" {
		m.Set("anthropic-beta", beta)
	}
}

func (anthropicProvider) countRequest(req *clientRequest, b *catalog.Backend) (string, []byte, bool, error) {
	fields := make(map[string]json.RawMessage, len(req.count.fields))
	for k, v := range req.count.fields {
		fields[k] = v
	}
	model, _ := json.Marshal(b.UpstreamModel)
	fields["model"] = model
	body, err := json.Marshal(fields)
	return b.ProviderRef().PathPrefix() + anthropic.Path(b.UpstreamModel, false) + "/count_tokens", body, true, err
}

func (anthropicProvider) decodeResponse(body []byte, model string) (*openai.ChatCompletion, billing.Usage, error) {
	return anthropic.DecodeResponse(body, model)
}

func (anthropicProvider) newStreamDecoder(model string) chunkDecoder {
	return anthropic.NewStreamDecoder(model)
}

func (anthropicProvider) rewriteResponse(body []byte, model string) ([]byte, billing.Usage, string, error) {
	return anthropic.RewriteResponse(body, model)
}

func (anthropicProvider) newStreamRewriter(_ *clientRequest, model string) streamProcessor {
	r := anthropic.NewStreamRewriter(model)
	return passthrough{r}
}

func (anthropicProvider) providerError(status int, body []byte) *apierror.Error {
	return anthropic.ProviderError(status, body)
}
