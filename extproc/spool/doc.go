// Package spool makes settlement durable before it reaches Postgres, so that no usage is lost
// when the database is slow or down (docs/design.md section 6, "no lost usage").
//
// # Flow
//
// The extproc hands every completed request to Pipeline.Settle (and every hold it gives back to
// Pipeline.ReleaseHold). The call encodes one record, appends it to an in-memory buffer and
// waits for the flusher goroutine to write and fsync that buffer to the spool file. Callers that
// arrive while an fsync is running share the next one (group commit): under load one fsync
// covers hundreds of settlements. Once the record is on disk, Settle returns; the charge can no
// longer be lost, whatever happens to the process or to Postgres.
//
// A writer goroutine then moves durable records into Postgres in batches: it takes up to
// Config.MaxBatch records (default 256), waiting at most Config.MaxDelay (default 5 ms) after the
// first one for the batch to fill, and applies the settlements with one ledger.Store.SettleBatch
// (one transaction, one round trip) and the releases with one ledger.Store.ReleaseHolds. Both are
// idempotent by request id, so applying a record twice — after a crash between the commit and
// the "applied" mark, or after an ambiguous error — charges it once. On success the writer
// appends an "applied" mark to the spool (written with the next group commit; losing it only
// costs an idempotent replay). When Postgres fails, the writer retries the same batch with
// capped exponential backoff (Config.RetryMin to Config.RetryMax) and records pile up in the
// spool until it returns. A batch that fails permanently (an unknown org, say) is settled record
// by record; records that still fail are written to rejected.jsonl in the spool directory and
// logged at error level, for an operator to correct and replay, instead of blocking the rest.
//
// A charge is never dropped. If the spool cannot be written (a full or failing disk), the records
// of that group commit are "stranded": each caller settles its own in Postgres directly,
// retrying with backoff for up to Config.DirectTimeout, and a rescuer goroutine takes over any
// that still fail, offering them to Postgres and then to the spool (with fresh sequence numbers)
// with capped backoff until one takes them. While any record is held only in memory the alarm is
// up: Stranded reports it, and an error is logged at most every Config.AlarmEvery. Close gives
// what is still stranded one last write to the spool and otherwise logs each record in full, as
// the spool line that replays it.
//
// Holds are not spooled: PlaceHold goes straight to Postgres and fails closed, because admitting
// a request without a hold could overspend. Releases are spooled, like settlements, rather than
// left to expire: an outage would otherwise keep every in-flight request's credit locked for the
// whole hold TTL after Postgres returns.
//
// Open replays whatever the spool holds, so a restart after a crash or an outage settles
// everything that was acknowledged. Close stops accepting records, waits (up to its ctx) for the
// writer to apply what is pending, and leaves anything left over in the spool for the next Open.
//
// # On-disk format
//
// The spool is Config.Dir/spool.log, a sequence of lines, each
//
//	<crc> <json>\n
//
// where <crc> is the CRC-32C (Castagnoli) of <json> as 8 lowercase hex digits and <json> is one
// record:
//
//	{"seq":7,"op":"settle","usage":{...}}    a completed request (see usageJSON for the fields)
//	{"seq":8,"op":"release","request_id":"…"} a hold to give back
//	{"op":"applied","upto":8}                 every record with seq ≤ 8 is in Postgres
//
// Sequence numbers increase through the file, and the writer applies records in order, so one
// watermark describes what is applied. A crash can leave the last line torn (no newline, or a
// CRC that does not match); its writer never returned, so nobody was told it was durable. A line
// damaged elsewhere (a bad disk block, a stray edit) is not replayed either, but the lines around
// it are. Neither is ever deleted: Open first appends each such line verbatim, with its request
// id when one can be read, to quarantine.log in Config.Dir (fsynced; see quarantine for the
// format), logs it, and only then rewrites the spool without it.
//
// The file is compacted by rewriting it with only the unapplied records (to spool.log.tmp,
// fsynced, renamed over spool.log, directory fsynced): on Open, on Close when everything is
// applied, and whenever it has grown past Config.CompactBytes (default 4 MiB) and less than half
// of it is still unapplied. The directory is locked (flock on spool.lock) so that two processes
// never share a spool.
//
// # Ownership
//
// A Pipeline owns three goroutines, the flusher, the writer and the rescuer, started by Open and
// stopped by Close. A record is in exactly one place at a time: the group commit, pending, or
// stranded (the rescuer takes a batch out while it works on it). Unapplied records are also held in memory (about 1 KiB each), so a very long outage
// under heavy traffic costs memory in proportion; Pending reports how many there are.
package spool
