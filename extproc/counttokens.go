package extproc

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/tollgate/tollgate/extproc/anthropic"
	"github.com/tollgate/tollgate/extproc/apierror"
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

// parseCountTokens validates a count request as the generation it counts (Anthropic's without
// max_tokens, which counting does not take; Gemini's contents, bare or as a
// generateContentRequest) and keeps its pivot for the estimate.
func parseCountTokens(ep endpoint, body []byte) (*clientRequest, *apierror.Error) {
	fields, derr := apierror.DecodeObject(body)
	if derr != nil {
		return nil, derr
	}
	count := &countRequest{fields: fields}
	switch ep.proto {
	case protoAnthropic:
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
		pivot, err := r.ToOpenAI()
		if err != nil {
			return nil, apierror.As(err)
		}
		// Governed parameters (MCP servers, betas, …) are checked as for a generation: a count
		// reaches the same provider account.
		return &clientRequest{proto: protoAnthropic, model: r.Model, pivot: pivot, count: count, governed: r.Governed()}, nil
	case protoGemini:
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
	return nil, apierror.New(http.StatusNotFound, apierror.CodeNotFound, "No such endpoint")
}

// countUpstream is the provider's path and body for a count on backend b, or ok false when b's
// provider has no counting endpoint for the client's protocol and the gateway estimates.
func countUpstream(req *clientRequest, b *catalog.Backend) (path string, body []byte, ok bool, err error) {
	p := b.ProviderRef()
	if providerProtocol(p.Kind) != req.proto {
		return "", nil, false, nil
	}
	fields := make(map[string]json.RawMessage, len(req.count.fields))
	for k, v := range req.count.fields {
		fields[k] = v
	}
	switch req.proto {
	case protoAnthropic:
		model, _ := json.Marshal(b.UpstreamModel)
		fields["model"] = model
		body, err = json.Marshal(fields)
		return p.PathPrefix() + anthropic.Path + "/count_tokens", body, true, err
	case protoGemini:
		path = strings.TrimSuffix(gemini.Path(b.UpstreamModel, false), ":generateContent") + ":countTokens"
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
			if fields["generateContentRequest"], err = json.Marshal(inner); err != nil {
				return "", nil, false, err
			}
		}
		body, err = json.Marshal(fields)
		return p.PathPrefix() + path, body, true, err
	}
	return "", nil, false, nil
}

// countEstimateBody is the estimated count in the client protocol's response shape.
func countEstimateBody(req *clientRequest, m *catalog.Model) []byte {
	n := strconv.FormatInt(requestBounds(m, req.pivot).prompt, 10)
	if req.proto == protoGemini {
		// CountTokensResponse: totalTokens, and the per-modality split the reference documents.
		return []byte(`{"totalTokens":` + n + `,"promptTokensDetails":[{"modality":"TEXT","tokenCount":` + n + `}]}`)
	}
	return []byte(`{"input_tokens":` + n + `}`)
}

// countEstimateReply answers a count attempt on a backend without the endpoint: a 200 from the
// upstream filter, which Envoy's router takes as the attempt's response.
func countEstimateReply(req *clientRequest, b *catalog.Backend) *extprocv3.ProcessingResponse {
	var m mutation
	m.Set("content-type", "application/json")
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode_OK},
		Headers: m.proto(),
		Body:    countEstimateBody(req, b.ModelRef()),
		Details: "tollgate_count_estimated",
	}}}
}
