package standin

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// connManagerConfig is the part of the HTTP connection manager that decides who is trusted:
// whether the peer of the connection is the client, and what happens to the request id.
type connManagerConfig struct {
	useRemoteAddress bool
	skipXffAppend    bool
	// generateRequestID is generate_request_id (default true); preserveExternalRequestID keeps
	// an edge request's x-request-id instead of replacing it.
	generateRequestID         bool
	preserveExternalRequestID bool
}

// envoyInternalHeaders are the x-envoy-* request headers Envoy removes from every request it
// does not consider internal, so a client cannot steer the router (retries, timeouts, stats,
// tracing). Edge requests also lose edgeOnlyHeaders.
//
// Envoy: source/common/http/conn_manager_utility.cc ConnectionManagerUtility::
// cleanInternalHeaders.
var (
	envoyInternalHeaders = []string{
		"x-envoy-retriable-status-codes",
		"x-envoy-retriable-header-names",
		"x-envoy-retry-on",
		"x-envoy-retry-grpc-on",
		"x-envoy-max-retries",
		"x-envoy-upstream-alt-stat-name",
		"x-envoy-upstream-rq-timeout-ms",
		"x-envoy-upstream-rq-per-try-timeout-ms",
		"x-envoy-upstream-rq-timeout-alt-response",
		"x-envoy-expected-rq-timeout-ms",
		"x-envoy-force-trace",
		"x-envoy-ip-tags",
		"x-envoy-original-url",
		"x-envoy-hedge-on-per-try-timeout",
	}
	edgeOnlyHeaders = []string{
		"x-envoy-decorator-operation",
		"x-envoy-downstream-service-cluster",
		"x-envoy-downstream-service-node",
	}
)

// mutateRequestHeaders is what the connection manager does to a request's headers before the
// first filter sees them, for the configuration the stand-in implements: no address is
// internal (internal_address_config unset or without CIDRs: Envoy ≥ 1.36 trusts no address by
// default, and the stand-in refuses cidr_ranges; the listener is TCP, so unix_sockets never
// applies), no xff_num_trusted_hops, no via, no user_agent, no scheme_to_set, no
// append_x_forwarded_port, forward_client_cert SANITIZE (the default). So every request is
// external, and an edge request when use_remote_address is set:
//
//   - x-envoy-internal and the proxy hop-by-hop headers are removed (hop-by-hop ones never
//     enter the map here);
//   - with use_remote_address, the peer's address is appended to x-forwarded-for (the local
//     address instead when the peer is loopback), unless skip_xff_append, and
//     x-forwarded-proto is overwritten (xff_num_trusted_hops is 0); without it
//     x-forwarded-proto is only added when absent;
//   - cleanInternalHeaders removes the x-envoy-* headers that steer the router
//     (envoyInternalHeaders), and for an edge request edgeOnlyHeaders too;
//   - an edge request gets x-envoy-external-address, the peer's IP;
//   - x-request-id: with generate_request_id, an edge request always gets a fresh UUID unless
//     preserve_external_request_id; any other request gets one only if it has none;
//   - x-forwarded-client-cert is removed: no client certificate is ever presented.
//
// Referer sanitising and 0-RTT early-data marking do not apply to what the stand-in serves.
//
// Envoy: source/common/http/conn_manager_utility.cc ConnectionManagerUtility::
// mutateRequestHeaders, cleanInternalHeaders, mutateXfccRequestHeader; Utility::appendXff
// (source/common/http/utility.cc: appended with a "," delimiter);
// source/extensions/request_id/uuid/config.cc UUIDRequestIDExtension::set.
func (c *connManagerConfig) mutateRequestHeaders(h *headerMap, r *http.Request) {
	h.remove("x-envoy-internal")
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	remoteIP := hostOf(r.RemoteAddr)
	edge := c.useRemoteAddress // no address is internal
	if c.useRemoteAddress {
		if !c.skipXffAppend {
			ip := remoteIP
			if addr := net.ParseIP(ip); addr != nil && addr.IsLoopback() {
				if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
					ip = hostOf(la.String())
				}
			}
			appendXff(h, ip)
		}
		h.set("x-forwarded-proto", scheme)
	} else if !h.has("x-forwarded-proto") {
		h.add("x-forwarded-proto", scheme)
	}
	for _, k := range envoyInternalHeaders {
		h.remove(k)
	}
	if edge {
		for _, k := range edgeOnlyHeaders {
			h.remove(k)
		}
		if net.ParseIP(remoteIP) != nil {
			h.set("x-envoy-external-address", remoteIP)
		}
	}
	if c.generateRequestID && ((edge && !c.preserveExternalRequestID) || !h.has("x-request-id")) {
		h.set("x-request-id", newUUID())
	}
	h.remove("x-forwarded-client-cert")
}

// appendXff appends ip to x-forwarded-for, one header whose values are joined with ",".
func appendXff(h *headerMap, ip string) {
	var vals []string
	for _, e := range h.entries {
		if e.key == "x-forwarded-for" {
			vals = append(vals, e.value)
		}
	}
	vals = append(vals, ip)
	h.set("x-forwarded-for", strings.Join(vals, ","))
}

func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// newUUID is a random (version 4) UUID in lower-case hex, as Envoy's request id extension
// makes them (Random::RandomGeneratorImpl::uuid).
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
