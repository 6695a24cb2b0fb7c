// Package ledger is Tollgate's Postgres store for organisations, API keys, credit and usage
// (docs/design.md section 6).
//
// A gateway request touches it three times:
//
//  1. LookupKey turns the SHA-256 of the presented key into a Principal (org, key kind, markup,
//     subscription and opt-in flags). Keys are stored only as hashes.
//  2. PlaceHold reserves an upper bound of the request's cost before it goes upstream. It is
//     one conditional UPDATE of the org's balance row, so it is admitted only while
//     balance - held covers it; no concurrency, however high, can overdraw an org through holds.
//  3. Settle records the completed request: a usage_records row, a 'usage' ledger entry, the
//     balance decrement and the release of the hold, in one statement, exactly once per request
//     id. ReleaseHold instead drops the hold of a request that failed before any usage, and
//     ExpireHolds sweeps holds left behind by a crashed process, charging each its input
//     (Hold.InputMicros) as a provisional usage record that a late Settle replaces and a late
//     ReleaseHold refunds, through 'adjustment' entries.
//
// Money is int64 micro-USD throughout. The ledger_entries table is append-only and the
// balance in org_balances is its materialised sum, checked by Reconcile.
//
// Every method is safe for concurrent use; Store holds nothing but the pool. Calls whose
// context has no deadline get DefaultTimeout. Settle and ReleaseHold detach from their
// context's cancellation, because a charge (or the release of a reservation) must be written
// even when the client has gone away. Schema changes live in package schemas and are applied by
// Migrate; package ledgertest gives tests an isolated, migrated schema.
package ledger
