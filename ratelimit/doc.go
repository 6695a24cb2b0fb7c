// Package ratelimit is Tollgate's rate-limit service: Envoy's
// envoy.service.ratelimit.v3.RateLimitService, backed by Redis.
//
// # Flow of one call
//
// Envoy's ratelimit filter calls ShouldRateLimit with domain "tollgate" and a
// list of descriptors, each naming a quota and a scope:
//
//	{quota: rpm|tpm|tpd} {org: ID} [{key: ID}] [{model: canonical ID}]
//
// The server then:
//
//  1. Refuses, with a gRPC error for the whole call, what a legitimate Envoy
//     never sends: a refund (is_negative_hits), a hits_addend above Envoy's
//     own bound of 1e9 (InvalidArgument), or a descriptor whose org, or key of
//     that org, Tollgate never issued (PermissionDenied; Config.IDs, checked
//     against Postgres with positives cached). Envoy turns the error into its
//     failure mode, so a forged descriptor can neither create counters nor
//     spend or refund someone else's quota. Then it parses each descriptor
//     into a Descriptor. One not in that shape, or for another domain, is
//     answered OK without a limit (and logged, throttled).
//  2. Asks Limits which Limit applies. No limit means OK without
//     current_limit, as in envoyproxy/ratelimit. StaticLimits serves per-model
//     defaults and per-scope overrides and can be replaced while serving. A
//     limit override sent inside a descriptor is ignored: limits are the
//     operator's, not Envoy's.
//  3. Turns every limited descriptor into one limiter.Request and sends the
//     whole batch to Redis as one EVALSHA (package limiter, GCRA): exactly one
//     round trip per call whatever the number of descriptors, atomic under any
//     concurrency, timed by Redis' clock so gateway instances need not agree
//     on the time. A call refused by one limit consumes none of the others.
//  4. Consumes according to quota and hits_addend: requests (rpm, hits_addend
//     unset, i.e. 1) are admitted only if they fit; tokens are checked on the
//     request path (hits_addend 0: OVER_LIMIT if the window is exhausted,
//     nothing consumed) and recorded after the response (hits_addend = tokens
//     used: consumed even past the limit, since the tokens were spent; Envoy
//     ignores that answer).
//  5. Answers with one status per descriptor, in order, with current_limit,
//     limit_remaining and duration_until_reset, plus OpenAI's
//     x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers for the
//     most restrictive limit of each class. Over the limit it adds
//     retry-after and an OpenAI-shaped JSON error body saying that the
//     gateway's quota, not the provider, refused the request.
//
// # When Redis is unavailable
//
// Each call to Redis has Config.RedisTimeout (250 ms by default, half of the
// 500 ms RLS timeout envoy-config renders, so this service's answer always
// reaches Envoy first; see DefaultRedisTimeout for why not less). When it
// fails, Config.FailOpen decides: OK without limits, or — the default and the
// production setting — gRPC Unavailable, which Envoy's failure_mode_deny
// (rendered by default) turns into a 500 that extproc rewrites into the
// client's protocol. go-redis reconnects by itself and the script is re-sent
// on NOSCRIPT, so service resumes when Redis returns.
//
// # Who may call
//
// Run listens on loopback or a Unix socket unless Config.PeerSecret is set;
// with it, every call must carry the secret (package peerauth), which Envoy
// sends as the GrpcService's initial_metadata.
package ratelimit
