// Package schemas holds Tollgate's numbered Postgres migrations.
//
// Files are named NNNN_description.sql and are applied in numeric order, each exactly once, by
// ledger.Migrate (the `tollgate migrate` subcommand). An applied migration is never edited: a
// schema change is a new file. Each file runs inside the migrator's transaction, so statements
// that refuse to run in a transaction (CREATE INDEX CONCURRENTLY) do not belong here.
package schemas

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
