// Package extproc is Tollgate's Envoy external processor: the gRPC
// envoy.service.ext_proc.v3.ExternalProcessor service that sees every request Envoy accepts.
//
// One gRPC stream carries one HTTP request, phase by phase (DESIGN.md section 2):
//
//   - request_headers: client-sent x-tollgate-* headers are removed, the caller is
//     authenticated, and requests that need no upstream (model listings, unknown routes, bad
//     keys) are answered at once with an ImmediateResponse.
//   - request_body (buffered whole): the request is parsed and validated, the model resolved
//     through the catalog, and the body translated for the chosen backend. The reply sets
//     :path, the upstream credential, x-tollgate-cluster (with clear_route_cache, so Envoy's
//     router re-reads the cluster header) and the rate-limit descriptor headers.
//   - response_headers: the gateway's request id is set; an event stream switches the response
//     body to STREAMED with a mode_override, anything else stays BUFFERED so it can be rewritten
//     whole (errors into the client's protocol shape).
//   - response_body: translated, usage read, and at the end of the response the request is
//     settled into the ledger, in the background so the client does not wait for Postgres.
//
// All state lives in the exchange for one stream; the Server holds only what requests share: the
// catalog (swapped atomically on reload), the key cache and the ledger.
package extproc
