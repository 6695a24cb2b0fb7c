// Package ledgertest gives tests their own Postgres schema, so integration tests of any
// package can run against the real server side by side without seeing each other's rows.
//
// The server is DATABASE_URL, or DefaultDSN when that is unset. Tests fail, never skip, when
// it is unreachable: a skipped ledger test is a ledger that was not tested.
package ledgertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/extproc/ledger"
)

// DefaultDSN is the local test database used when DATABASE_URL is unset.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// maxConns caps each test's pool. Tests run in parallel against one server shared with other
// packages' tests, whose max_connections is typically 100.
const maxConns = 8

// DSN returns DATABASE_URL, or DefaultDSN.
func DSN() string {
	if dsn := os.Getenv("DATABASE_URL"); dsn != "" {
		return dsn
	}
	return DefaultDSN
}

// NewStore returns a Store over a fresh, migrated schema, and the pool behind it for direct
// queries. Both are cleaned up with t: the pool is closed and the schema dropped.
func NewStore(t testing.TB) (*ledger.Store, *pgxpool.Pool) {
	t.Helper()
	pool := NewSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ledger.Migrate(ctx, pool); err != nil {
		t.Fatalf("ledgertest: %v", err)
	}
	return ledger.New(pool), pool
}

// NewSchema creates an empty schema named after t and returns a pool whose search_path is that
// schema, for tests of Migrate itself. The pool is closed and the schema dropped with t.
func NewSchema(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	schema := schemaName(t.Name())
	admin, err := pgx.Connect(ctx, DSN())
	if err != nil {
		t.Fatalf("ledgertest: connect to %s: %v", redacted(DSN()), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("ledgertest: create schema %s: %v", schema, err)
	}

	cfg, err := pgxpool.ParseConfig(DSN())
	if err != nil {
		t.Fatalf("ledgertest: %v", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("ledgertest: %v", err)
	}
	// Registered before anything can fail below, so the schema never outlives the test.
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, DSN())
		if err != nil {
			t.Errorf("ledgertest: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("ledgertest: drop schema %s: %v", schema, err)
		}
	})
	return pool
}

// schemaName makes a unique, valid identifier that still says which test left it behind if a
// process is killed before cleanup.
func schemaName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 40 {
			break
		}
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	return "test_" + b.String() + "_" + hex.EncodeToString(suffix[:]) // at most 63 bytes
}

// redacted drops the password from a DSN for error messages.
func redacted(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "(unparseable DATABASE_URL)"
	}
	return cfg.User + "@" + cfg.Host + "/" + cfg.Database
}
