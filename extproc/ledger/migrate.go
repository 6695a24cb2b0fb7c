package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/schemas"
)

// migrateLockClass is the first key of the advisory lock Migrate holds; the second is a hash of
// the target schema, so migrators of different schemas (parallel tests) do not wait on each
// other while two migrators of the same schema are serialised.
const migrateLockClass = 0x746f6c6c // "toll"

var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

type migration struct {
	version  int
	name     string
	sql      string
	checksum [32]byte
}

// Migrate applies the migrations of schemas.FS that the database has not seen yet, in order,
// to the first schema of the pool's search_path. Applied versions are recorded in a
// schema_migrations table with a checksum of their text.
//
// Everything runs in one transaction under a transaction-scoped advisory lock, so concurrent
// migrators are safe (the losers wait, then find nothing to do) and a failing migration leaves
// the schema as it was. Migrate is idempotent. It fails if an applied migration's text has
// changed since: migrations are append-only, like the ledger. Unlike Store methods it gets no
// default deadline, since a migration may legitimately run long; ctx bounds it.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	migs, err := loadMigrations(schemas.FS)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`,
		int32(migrateLockClass)); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		checksum   bytea NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}

	applied := map[int][]byte{}
	rows, err := tx.Query(ctx, `SELECT version, checksum FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		var sum []byte
		if err := rows.Scan(&v, &sum); err != nil {
			return fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		applied[v] = sum
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}

	for _, m := range migs {
		if sum, ok := applied[m.version]; ok {
			if !bytes.Equal(sum, m.checksum[:]) {
				return fmt.Errorf("migrate: %s was changed after it was applied; add a new migration instead", m.name)
			}
			continue
		}
		// No arguments: pgx sends this with the simple protocol, which allows many statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("migrate: apply %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
			m.version, m.name, m.checksum[:]); err != nil {
			return fmt.Errorf("migrate: record %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// loadMigrations reads the *.sql files at the root of fsys, sorted by version. Files that do
// not follow the naming scheme, and duplicate versions, are errors rather than being skipped:
// a silently ignored migration is a schema that differs between environments.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var migs []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("%s: migration names are NNNN_lower_snake.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1]) // four digits: cannot fail
		if version == 0 {
			return nil, fmt.Errorf("%s: versions start at 0001", e.Name())
		}
		if prev, dup := seen[version]; dup {
			return nil, fmt.Errorf("%s and %s share version %d", prev, e.Name(), version)
		}
		seen[version] = e.Name()
		text, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		migs = append(migs, migration{version: version, name: e.Name(), sql: string(text), checksum: sha256.Sum256(text)})
	}
	slices.SortFunc(migs, func(a, b migration) int { return a.version - b.version })
	return migs, nil
}
