// Package standin is the development stand-in for Envoy: a small HTTP proxy that reads the
// same bootstrap as Envoy (envoy/bootstrap) and implements, faithfully, the subset of Envoy
// that Tollgate's configuration uses, so that every test run exercises the whole path
// (client → proxy → extproc → provider) on machines where Envoy cannot be installed. It is a
// test and development tool, never a production proxy, and says so when it starts (Banner).
//
// # Refusing what it does not implement
//
// New walks the whole bootstrap, typed_configs included, against a table of implemented
// fields (allow.go) and then checks enum values and references (config.go). Anything else
// (another HTTP filter, filter-level ratelimit rate_limits, a rate limit action other than
// request_headers, generic_key and dynamic metadata, a retry host predicate, a retry_on
// condition like retriable-4xx, a body mode like FULL_DUPLEX_STREAMED) is an error that names
// its path. A mode a processor switches on at
// run time through mode_override that the stand-in does not implement fails that request
// with a 500 and an error log, rather than behaving differently from Envoy.
//
// # One request
//
// Each request is a stream (stream.go) run by its handler goroutine, mirroring Envoy's
// filter manager with the filter chain [ext_proc, ratelimit (optional), router]:
//
//  1. The connection manager builds the request header map (pseudo-headers, then headers)
//     and mutates it as Envoy's does (connmanager.go): with use_remote_address and no
//     internal addresses every client is external, so the x-envoy-* headers that steer the
//     router are removed, x-forwarded-for gets the peer, x-forwarded-proto is overwritten and
//     x-request-id replaced by a fresh UUID. The route is then resolved and cached, as
//     ext_proc's decodeHeaders does; cluster_header is read at that moment.
//  2. Decode path (decode.go): request_headers goes to the processor unless SKIP; the
//     body follows per request_body_mode: NONE streams it to the upstream, BUFFERED reads
//     it (one byte over the buffer limit is a 413 local reply) and sends one request_body
//     message while the headers stay held. Replies apply header mutations (mutation.go:
//     Envoy's default rules, append honoured, append_action ignored, raw_value only),
//     body mutations with Envoy's content-length check, clear_route_cache (only with a
//     header mutation in the same reply), CONTINUE_AND_REPLACE, mode_override and
//     dynamic metadata for the receiving namespaces (reply.go).
//  3. Ratelimit (ratelimit.go), when configured: its decodeHeaders runs when ext_proc
//     releases the request headers (after the request_body reply with BUFFERED bodies), so
//     request_headers and metadata actions see extproc's mutations and metadata. Descriptors
//     come from the route's RateLimitPerRoute; the ShouldRateLimit call has the filter's
//     timeout. OK adds request_headers_to_add; OVER_LIMIT is a 429 local reply (raw_body,
//     the RLS headers, x-envoy-ratelimited) through the encode path, ext_proc included;
//     an error or timeout continues, or is status_on_error with failure_mode_deny. Its
//     encodeHeaders (before ext_proc's) adds response_headers_to_add and the
//     DRAFT_VERSION_03 x-ratelimit-* headers. When the stream is done (finish, Envoy's
//     onDestroy) the apply_on_stream_done entries are evaluated, hits_addend formatted from
//     dynamic metadata, and sent fire-and-forget by a goroutine the Proxy owns.
//  4. Router (router.go): the route is re-matched if a reply cleared the cache (routes.go:
//     the first route whose prefix or path and exact string_match header matchers all
//     match; other header matchers are refused); a missing
//     route is 404, a missing or unknown cluster 503; the endpoint is picked (priority 0,
//     round robin by weight: Envoy's EDF scheduler from a seeded start, cluster.go);
//     auto_host_rewrite sets Host to the endpoint's hostname; the
//     route timeout runs from the end of the request to the end of the upstream response.
//     Connect failures and resets before headers are 503 with Envoy's body, a timeout
//     before headers 504.
//     Retries and fallback (attempt.go, retry.go, upstreamfilters.go, headermutation.go,
//     outlier.go), when the route has a retry_policy or the cluster upstream filters or
//     outlier detection: each attempt picks a priority level by health (outlier ejections)
//     as previous_priorities adjusts it, runs the cluster's upstream filters on the one
//     request header map (mutated in place across attempts) and a fresh copy of the router's
//     body — ext_proc in upstream mode (a new stream per attempt, request_headers with the
//     host's metadata in attributes, CONTINUE_AND_REPLACE replacing the body; with
//     response_header_mode SEND, the attempt's response_headers on the same stream, whose
//     header mutation applies before the retry decision) and
//     header_mutation (%DYNAMIC_METADATA% values, empty ones not written) — then goes
//     upstream with per-try and per-try idle timeouts. A retriable status (5xx, 502-504, the
//     retriable status codes) is decided at response headers and discarded before anything
//     reaches the client; resets, connect failures and per-try timeouts are retried too;
//     each retry waits Envoy's fully jittered exponential back-off. Only the final attempt's
//     response runs through the encoder filters.
//  5. Encode path (encode.go): response_headers (with :status) goes to the processor
//     unless SKIP; then NONE passes the body through, BUFFERED collects it and sends one
//     response_body message while holding the headers, STREAMED sends every chunk at once
//     (pipelined), applies replies first in first out and flushes each to the client.
//     Upstream bodies are cut at random byte boundaries from a seeded PRNG (split.go), and
//     a body of unknown length ends with an empty end_of_stream chunk.
//  6. Local replies (localreply.go) follow Envoy's rule: before any response they run
//     through the encode path (so the processor sees a router 503 as response_headers
//     with :status 503), except ext_proc's own errors and immediate responses, which mark
//     processing complete first; once the response is held they go straight to the client;
//     once headers are sent the stream is reset.
//
// Every gRPC stream or call to a GrpcService (ext_proc, upstream ext_proc, the RLS) carries
// its initial_metadata, as Envoy's async client adds it; gRPC clusters may be Unix sockets
// (pipe addresses) or TLS with a client certificate (alpn_protocols must name h2). Both ext_proc filters send the request.id attribute (the connection
// manager's x-request-id) on their first request message.
//
// The ext_proc gRPC stream (extproc.go) is opened lazily, one per request, read by one
// goroutine, and closed (half-close then cancel, as Envoy does without graceful close) when
// the request ends. Message timeouts (504), gRPC errors and spurious replies (500,
// status_on_error) and failure_mode_allow follow ext_proc.cc. A client that disconnects
// cancels the upstream request and the ext_proc stream.
//
// Where behaviour depends on Envoy's event loop (for example a processor message arriving
// while the router waits for upstream headers) the stand-in handles it at its next wait
// rather than at once; where Envoy would buffer data while waiting for a reply, the
// stand-in simply does not read yet. Trailers are not forwarded. Requests are treated as
// plain HTTP, never as gRPC.
package standin
