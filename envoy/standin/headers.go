package standin

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// header is one entry of a headerMap.
type header struct {
	key, value string
}

// headerMap is Envoy's header map as ext_proc sees it: ordered entries with lower-case keys,
// pseudo-headers (:method, :path, :authority, :scheme; :status) first, one entry per value.
// The host header of a request is its :authority, as in Envoy. Not safe for concurrent use.
type headerMap struct {
	entries []header
}

func (h *headerMap) get(key string) (string, bool) {
	if h == nil {
		return "", false
	}
	for _, e := range h.entries {
		if e.key == key {
			return e.value, true
		}
	}
	return "", false
}

func (h *headerMap) has(key string) bool {
	_, ok := h.get(key)
	return ok
}

// add appends an entry (Envoy's addCopy).
func (h *headerMap) add(key, value string) {
	h.entries = append(h.entries, header{key, value})
}

// set replaces every entry of key by one with value, kept at the first entry's position,
// or appends it (Envoy's setCopy).
func (h *headerMap) set(key, value string) {
	i := slices.IndexFunc(h.entries, func(e header) bool { return e.key == key })
	if i < 0 {
		h.add(key, value)
		return
	}
	h.entries[i].value = value
	rest := slices.DeleteFunc(h.entries[i+1:], func(e header) bool { return e.key == key })
	h.entries = h.entries[:i+1+len(rest)]
}

func (h *headerMap) remove(key string) {
	h.entries = slices.DeleteFunc(h.entries, func(e header) bool { return e.key == key })
}

// byteSize is Envoy's HeaderMap::byteSize: the sum of key and value lengths.
func (h *headerMap) byteSize() int {
	n := 0
	for _, e := range h.entries {
		n += len(e.key) + len(e.value)
	}
	return n
}

// toProto renders h for a ProcessingRequest, values in raw_value.
//
// Envoy: source/extensions/filters/http/ext_proc/mutation_utils.cc headersToProto; raw_value
// is the only encoding since send_header_raw_value was removed.
func (h *headerMap) toProto() *corev3.HeaderMap {
	out := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, 0, len(h.entries))}
	for _, e := range h.entries {
		out.Headers = append(out.Headers, &corev3.HeaderValue{Key: e.key, RawValue: []byte(e.value)})
	}
	return out
}

// contentLength reports the parsed content-length, if present and valid.
func (h *headerMap) contentLength() (int64, bool) {
	v, ok := h.get("content-length")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// hopByHop headers are consumed by the HTTP/1 codec and never reach filters or the peer.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true,
	"transfer-encoding": true, "upgrade": true, "te": true, "trailer": true,
}

// requestHeaderMap builds the request header map Envoy's codec hands to the connection manager:
// pseudo-headers, then the client's headers (sorted: Go does not keep wire order). The
// connection manager then applies connManagerConfig.mutateRequestHeaders.
func requestHeaderMap(r *http.Request) *headerMap {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	h := &headerMap{}
	h.add(":authority", r.Host)
	h.add(":path", r.URL.RequestURI())
	h.add(":method", r.Method)
	h.add(":scheme", scheme)
	appendHeaders(h, r.Header)
	return h
}

// responseHeaderMap builds the response header map the router hands to encoder filters.
func responseHeaderMap(status int, hdr http.Header) *headerMap {
	h := &headerMap{}
	h.add(":status", strconv.Itoa(status))
	appendHeaders(h, hdr)
	return h
}

func appendHeaders(h *headerMap, hdr http.Header) {
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		lk := strings.ToLower(k)
		if hopByHop[lk] || lk == "host" {
			continue
		}
		for _, v := range hdr[k] {
			h.add(lk, v)
		}
	}
}

// isTokenChar reports whether c may appear in an HTTP/1 header name (RFC 9110 tchar).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// headerNameIsValid mirrors Envoy's HeaderUtility::headerNameIsValid: HTTP/2 rules (lower
// case) for pseudo-headers, HTTP/1 token rules otherwise.
func headerNameIsValid(name string) bool {
	if name == "" {
		return false
	}
	rest := name
	if name[0] == ':' {
		rest = name[1:]
		if rest == "" || strings.ToLower(rest) != rest {
			return false
		}
	}
	for i := 0; i < len(rest); i++ {
		if !isTokenChar(rest[i]) {
			return false
		}
	}
	return true
}

// headerValueIsValid mirrors Envoy's HeaderUtility::headerValueIsValid (nghttp2's value
// check): no NUL, CR, LF or other control characters except horizontal tab.
func headerValueIsValid(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
