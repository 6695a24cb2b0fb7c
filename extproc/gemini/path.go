package gemini

import (
	"net/url"
	"strings"
)

const (
	methodGenerate = "generateContent"
	methodStream   = "streamGenerateContent"
)

// ParsePath reads the model and the streaming flag from a Gemini client's request path:
// /v1beta/models/{model}:generateContent or :streamGenerateContent, also under /v1/. The query
// (alt=sse for streams) is ignored.
//
// The model is everything between "models/" and the last ":", percent-decoded, so a catalog id
// with a slash reaches the gateway either way an SDK sends it: models/eu/gemini-2.5-pro:… and
// models/eu%2Fgemini-2.5-pro:… both name "eu/gemini-2.5-pro". A doubled "models/" prefix (an
// SDK given "models/x" that escaped its slash) is stripped. ok is false for any other path.
func ParsePath(path string) (model string, stream bool, ok bool) {
	path, _, _ = strings.Cut(path, "?")
	var rest string
	switch {
	case strings.HasPrefix(path, "/v1beta/models/"):
		rest = strings.TrimPrefix(path, "/v1beta/models/")
	case strings.HasPrefix(path, "/v1/models/"):
		rest = strings.TrimPrefix(path, "/v1/models/")
	default:
		return "", false, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return "", false, false
	}
	switch rest[i+1:] {
	case methodGenerate:
	case methodStream:
		stream = true
	default:
		return "", false, false
	}
	model, err := url.PathUnescape(rest[:i])
	if err != nil {
		return "", false, false
	}
	model = strings.TrimPrefix(model, "models/")
	if model == "" || strings.ContainsAny(model, "?#:") || strings.ContainsFunc(model, isControl) {
		return "", false, false
	}
	return model, stream, true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Path is the upstream path for a Gemini provider's model id. Streams ask for SSE framing
// (alt=sse); without it Gemini streams one JSON array. A "models/" prefix on the id is accepted;
// "tunedModels/…" ids keep their own collection.
func Path(upstreamModel string, stream bool) string {
	name := upstreamModel
	if !strings.HasPrefix(name, "tunedModels/") {
		name = "models/" + strings.TrimPrefix(name, "models/")
	}
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	p := "/v1beta/" + strings.Join(segs, "/")
	if stream {
		return p + ":" + methodStream + "?alt=sse"
	}
	return p + ":" + methodGenerate
}
