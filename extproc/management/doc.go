// Package management serves the management API (docs/design.md section 6): an organisation's
// balance, its usage and cost totals, and its request logs, as JSON and as CSV exports.
//
// # Flow
//
// Every request carries "Authorization: Bearer <key>". The key is resolved through KeyLookup
// (the extproc's auth cache, so a busy dashboard does not become a query per call) to a
// ledger.Principal: an unknown or revoked key is 401 auth_invalid, a standard key is 403
// access_denied, and only a management key gets through. From then on the principal's org is
// the only org any query can see: it is passed to every ledger query, and no parameter can
// name another.
//
//	GET /v1/management/balance             balance, held and available credit
//	GET /v1/management/usage               totals, optionally grouped by model, key or provider
//	                                       and bucketed by hour, day or month (UTC)
//	GET /v1/management/usage.csv           the same, as CSV
//	GET /v1/management/request-logs        usage records, newest first, filtered and paginated
//	GET /v1/management/request-logs.csv    the same filters, every matching row, streamed
//
// Time ranges are [from, to), given as RFC 3339 timestamps or YYYY-MM-DD dates (UTC midnight);
// the default is the 30 days up to now. Request logs are paged with an opaque keyset cursor
// (next_cursor), so pages stay consistent while new requests arrive.
//
// Money is shown twice, never as a float: integer micro-USD (fields ending in _micros) and a
// decimal USD string with six places ("12.500000"). Errors use OpenAI's body,
// {"error":{"message","type","param","code"}}.
package management
