package catalog

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// baseURL is a provider's base_url taken apart for Envoy (host, port, TLS) and for extproc
// (the path prefix every upstream path is appended to).
type baseURL struct {
	host string
	port uint32
	tls  bool
	path string
}

func parseBaseURL(raw string) (baseURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return baseURL{}, err
	}
	var b baseURL
	switch u.Scheme {
	case "https":
		b.tls, b.port = true, 443
	case "http":
		b.port = 80
	default:
		return baseURL{}, fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return baseURL{}, fmt.Errorf("%q: only scheme, host, port and path are allowed", raw)
	}
	b.host = u.Hostname()
	if b.host == "" {
		return baseURL{}, fmt.Errorf("%q: host is required", raw)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return baseURL{}, fmt.Errorf("%q: bad port", raw)
		}
		b.port = uint32(n)
	}
	b.path = strings.TrimRight(u.EscapedPath(), "/")
	return b, nil
}
