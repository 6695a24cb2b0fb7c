package ledger_test

import (
	"context"
	"io/fs"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
	"github.com/tollgate/tollgate/schemas"
)

func TestMigrate(t *testing.T) {
	t.Parallel()
	files, err := fs.Glob(schemas.FS, "*.sql")
	if err != nil || len(files) < 2 {
		t.Fatalf("schemas.FS holds %v (%v); want 0001_init.sql and later", files, err)
	}
	tables := `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()`

	tests := []struct {
		name       string
		migrators  int // concurrent first runs
		extraRuns  int // sequential runs after that
		wantTables int
	}{
		{name: "once", migrators: 1, wantTables: 8},
		{name: "twice is a no-op", migrators: 1, extraRuns: 1, wantTables: 8},
		{name: "concurrent", migrators: 8, extraRuns: 1, wantTables: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := ledgertest.NewSchema(t)
			var wg sync.WaitGroup
			errs := make(chan error, tt.migrators)
			for range tt.migrators {
				wg.Go(func() { errs <- ledger.Migrate(ctx, pool) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("Migrate: %v", err)
				}
			}
			var firstApplied string
			if err := pool.QueryRow(ctx, `SELECT max(applied_at)::text FROM schema_migrations`).Scan(&firstApplied); err != nil {
				t.Fatal(err)
			}
			for range tt.extraRuns {
				if err := ledger.Migrate(ctx, pool); err != nil {
					t.Fatalf("Migrate again: %v", err)
				}
			}
			if got := count(t, pool, `SELECT count(*) FROM schema_migrations`); got != len(files) {
				t.Errorf("schema_migrations has %d rows; want %d", got, len(files))
			}
			var lastApplied string
			if err := pool.QueryRow(ctx, `SELECT max(applied_at)::text FROM schema_migrations`).Scan(&lastApplied); err != nil {
				t.Fatal(err)
			}
			if lastApplied != firstApplied {
				t.Errorf("a later run applied something (%s after %s)", lastApplied, firstApplied)
			}
			// schema_migrations plus the seven ledger tables.
			if got := count(t, pool, tables); got != tt.wantTables {
				t.Errorf("%d tables; want %d", got, tt.wantTables)
			}
		})
	}
}

func TestMigrateRefusesEditedMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := ledgertest.NewStore(t)
	if _, err := pool.Exec(ctx, `UPDATE schema_migrations SET checksum = '\x00' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Migrate(ctx, pool); err == nil {
		t.Fatal("Migrate accepted a migration whose text changed after it was applied")
	}
}

func TestLedgerIsAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := ledgertest.NewStore(t)
	newOrg(t, s, 1_000)
	for _, sql := range []string{
		`UPDATE ledger_entries SET amount_micros = 1`,
		`DELETE FROM ledger_entries`,
		`TRUNCATE ledger_entries`,
	} {
		if _, err := pool.Exec(ctx, sql); err == nil {
			t.Errorf("%s: succeeded on an append-only table", sql)
		}
	}
}
