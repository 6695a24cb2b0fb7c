package extproc

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// forwardedHeaders are the request headers a provider may receive from the client. Everything
// else on the request (the client's cookies, proxy credentials, account-selecting headers such
// as OpenAI-Organization, SDK telemetry, accept-encoding that would have the provider compress
// what extproc must read, and every x-tollgate-* header the gateway itself set for routing) is
// removed by each attempt. The attempt sets the provider's credential and, for Anthropic, the
// version and betas itself.
var forwardedHeaders = map[string]bool{
	"accept":         true,
	"content-type":   true,
	"content-length": true, // reset by the cluster's header_mutation filter for every attempt
}

// removeUnforwarded adds to m the removal of every header of hm that must not reach a provider:
// those neither on the allow-list nor already set or removed by m. Pseudo-headers and host
// belong to Envoy and cannot be removed; Envoy also refuses an ext_proc server's mutation of
// x-envoy-* headers (mutation_rules.cc: allow_envoy defaults to false), and the connection
// manager has already stripped any a client sent (conn_manager_utility.cc cleanInternalHeaders),
// so those left are Envoy's own.
func removeUnforwarded(hm *corev3.HeaderMap, m *mutation) {
	for _, h := range hm.GetHeaders() {
		k := h.GetKey()
		switch {
		case strings.HasPrefix(k, ":"), k == "host", strings.HasPrefix(k, "x-envoy-"), forwardedHeaders[k], m.touches(k):
			continue
		}
		m.Remove(k)
	}
}
