// Package extproc is Tollgate's Envoy external processor: the gRPC
// envoy.service.ext_proc.v3.ExternalProcessor service that sees every request Envoy accepts.
//
// Envoy runs this processor twice per request: as the router filter's ext_proc (one gRPC
// stream per HTTP request) and as an upstream filter of the model's cluster (one stream per
// attempt). The router filter's stream, phase by phase:
//
//   - request_headers: client-sent x-tollgate-* headers are removed, the caller is
//     authenticated, and requests that need no upstream (model listings, unknown routes, bad
//     keys) are answered at once with an ImmediateResponse.
//   - request_body (buffered whole): the request is parsed and validated and the model resolved
//     through the catalog. The reply only routes: x-tollgate-cluster (with clear_route_cache, so
//     Envoy's router re-reads the cluster header) and the dynamic metadata in namespace
//     tollgate that the rate-limit descriptors and the attempts read. The body is left as the
//     client sent it.
//   - each attempt (attempt.go), on its own stream: the first places the credit hold; every one
//     rebuilds the provider's path, credential and body from the original client request for the
//     backend Envoy chose, so a retry or a fallback of another provider kind starts clean.
//   - response_headers: the gateway's request id is set; an event stream switches the response
//     body to STREAMED with a mode_override, anything else stays BUFFERED so it can be rewritten
//     whole (errors into the client's protocol shape).
//   - response_body: translated, usage read, and at the end of the response the request is
//     settled into the ledger, in the background so the client does not wait for Postgres.
//
// All state lives in the exchange for one stream; the Server holds only what requests share: the
// catalog (swapped atomically on reload), the key cache and the ledger.
package extproc
