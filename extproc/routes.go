package extproc

import (
	"strings"

	"github.com/tollgate/tollgate/extproc/gemini"
)

type routeKind int

const (
	routeUnknown routeKind = iota
	routeChat
	routeMessages
	routeGenerate
	routeModels
	routeModel
	routeManagement
	// routeCountTokens is Anthropic's /v1/messages/count_tokens or Gemini's :countTokens.
	routeCountTokens
)

// endpoint is what a request path asks for.
type endpoint struct {
	kind   routeKind
	method string
	// proto is the client's protocol, which every answer (errors included) must speak.
	proto protocol
	// modelID is the model named in the path (routeModel, routeGenerate).
	modelID string
	// stream is set for Gemini's streamGenerateContent, where the path decides streaming.
	stream bool
}

// classify maps a request path (query ignored) to an endpoint. The OpenAI surface is served both
// at /v1 and under seed 000's /v1/gateway base path; Gemini's under /v1beta and, as current
// @google/genai releases call it, /v1.
func classify(path string) endpoint {
	if model, stream, ok := gemini.ParsePath(path); ok {
		return endpoint{kind: routeGenerate, method: "POST", proto: protoGemini, modelID: model, stream: stream}
	}
	if model, ok := countTokensPath(path); ok {
		return endpoint{kind: routeCountTokens, method: "POST", proto: protoGemini, modelID: model}
	}
	path, _, _ = strings.Cut(path, "?")
	if rest, ok := strings.CutPrefix(path, "/v1/gateway/"); ok {
		path = "/v1/" + rest
	}
	if strings.HasPrefix(path, "/v1/management/") {
		return endpoint{kind: routeManagement, method: "GET", proto: protoOpenAI}
	}
	switch path {
	case "/v1/chat/completions":
		return endpoint{kind: routeChat, method: "POST", proto: protoOpenAI}
	case "/v1/messages":
		return endpoint{kind: routeMessages, method: "POST", proto: protoAnthropic}
	case "/v1/messages/count_tokens":
		return endpoint{kind: routeCountTokens, method: "POST", proto: protoAnthropic}
	case "/v1/models":
		return endpoint{kind: routeModels, method: "GET", proto: protoOpenAI}
	case "/v1beta/models":
		return endpoint{kind: routeModels, method: "GET", proto: protoGemini}
	}
	for prefix, proto := range map[string]protocol{"/v1/models/": protoOpenAI, "/v1beta/models/": protoGemini} {
		if id, ok := strings.CutPrefix(path, prefix); ok && id != "" {
			// Model ids may contain a slash (eu/…), so everything after the prefix is the id.
			return endpoint{kind: routeModel, method: "GET", proto: proto, modelID: strings.TrimPrefix(id, "models/")}
		}
	}
	return endpoint{kind: routeUnknown}
}

// classifyListing tells the Anthropic SDK's model listing, which it asks for at OpenAI's path
// (/v1/models), from OpenAI's by the anthropic-version header every Anthropic request carries.
func classifyListing(ep endpoint, anthropicVersion bool) endpoint {
	if anthropicVersion && ep.proto == protoOpenAI && (ep.kind == routeModels || ep.kind == routeModel) {
		ep.proto = protoAnthropic
	}
	return ep
}
