package extproc

import "strings"

type routeKind int

const (
	routeUnknown routeKind = iota
	routeChat
	routeModels
	routeModel
)

// endpoint is what a request path asks for.
type endpoint struct {
	kind   routeKind
	method string
	// proto is the client's protocol, which every answer (errors included) must speak.
	proto protocol
	// modelID is the model named in the path, for routeModel.
	modelID string
}

// classify maps a request path (query ignored) to an endpoint. The OpenAI surface is served both
// at /v1 and under seed 000's /v1/gateway base path.
func classify(path string) endpoint {
	path, _, _ = strings.Cut(path, "?")
	if rest, ok := strings.CutPrefix(path, "/v1/gateway/"); ok {
		path = "/v1/" + rest
	}
	switch path {
	case "/v1/chat/completions":
		return endpoint{kind: routeChat, method: "POST", proto: protoOpenAI}
	case "/v1/models":
		return endpoint{kind: routeModels, method: "GET"}
	}
	if id, ok := strings.CutPrefix(path, "/v1/models/"); ok && id != "" {
		// Model ids may contain a slash (eu/…), so everything after the prefix is the id.
		return endpoint{kind: routeModel, method: "GET", modelID: id}
	}
	return endpoint{kind: routeUnknown}
}
