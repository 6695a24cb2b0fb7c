package extproc

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate/tollgate/envoy/contract"
)

// headerRequestID is the gateway's request id on every response, beside the x-request-id and
// request-id the SDKs read.
const headerRequestID = "x-tollgate-request-id"

// header returns the value of name (lower case) in hm. Envoy sends values in raw_value; value is
// read as a fallback for processors driven by older clients.
func header(hm *corev3.HeaderMap, name string) string {
	for _, h := range hm.GetHeaders() {
		if h.GetKey() == name {
			if rv := h.GetRawValue(); len(rv) > 0 {
				return string(rv)
			}
			return h.GetValue()
		}
	}
	return ""
}

// headerValues returns every value of name (lower case) in hm, joined with commas.
func headerValues(hm *corev3.HeaderMap, name string) string {
	var vals []string
	for _, h := range hm.GetHeaders() {
		if h.GetKey() != name {
			continue
		}
		if rv := h.GetRawValue(); len(rv) > 0 {
			vals = append(vals, string(rv))
		} else if h.GetValue() != "" {
			vals = append(vals, h.GetValue())
		}
	}
	return strings.Join(vals, ",")
}

// mutation accumulates a header mutation. Envoy honours only the deprecated append flag (false
// means overwrite) and reads only raw_value (docs/envoy.md 1.6).
type mutation struct {
	set    []*corev3.HeaderValueOption
	remove []string
}

func (m *mutation) Set(key, value string) {
	m.set = append(m.set, &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: key, RawValue: []byte(value)},
		//lint:ignore SA1019 Envoy's ext_proc honours only this deprecated flag, not append_action.
		Append: wrapperspb.Bool(false),
	})
}

func (m *mutation) Remove(keys ...string) { m.remove = append(m.remove, keys...) }

// touches reports whether m already sets or removes key.
func (m *mutation) touches(key string) bool {
	for _, h := range m.set {
		if h.GetHeader().GetKey() == key {
			return true
		}
	}
	return slices.Contains(m.remove, key)
}

func (m *mutation) SetContentLength(n int) { m.Set("content-length", strconv.Itoa(n)) }

func (m *mutation) proto() *extprocv3.HeaderMutation {
	if len(m.set) == 0 && len(m.remove) == 0 {
		return nil
	}
	return &extprocv3.HeaderMutation{SetHeaders: m.set, RemoveHeaders: m.remove}
}

// clientInternalHeaders lists the x-tollgate-* headers present in hm: trusted routing inputs
// (contract.InternalHeaderPrefix) that a client must never set, so every client-sent one is
// removed before anything reads it.
func clientInternalHeaders(hm *corev3.HeaderMap) []string {
	var out []string
	for _, h := range hm.GetHeaders() {
		if strings.HasPrefix(h.GetKey(), contract.InternalHeaderPrefix) {
			out = append(out, h.GetKey())
		}
	}
	return out
}

// credential extracts the caller's API key from where each SDK puts it: Authorization Bearer
// (OpenAI), x-api-key (Anthropic), x-goog-api-key or ?key= (Gemini).
func credential(hm *corev3.HeaderMap) string {
	if v := header(hm, "authorization"); v != "" {
		if scheme, token, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(token)
		}
	}
	if v := header(hm, "x-api-key"); v != "" {
		return v
	}
	if v := header(hm, "x-goog-api-key"); v != "" {
		return v
	}
	// The Gemini API also takes the key as a query parameter (?key=…); the path the provider
	// sees is rebuilt, so it goes no further.
	if _, query, ok := strings.Cut(header(hm, ":path"), "?"); ok {
		if q, err := url.ParseQuery(query); err == nil {
			return q.Get("key")
		}
	}
	return ""
}
