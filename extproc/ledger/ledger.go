package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var (
	// ErrNotFound reports an unknown (or malformed) org, key, request or hold id, and a revoked
	// key. It is permanent: retrying the same call cannot succeed.
	ErrNotFound = errors.New("not found")
	// ErrInsufficientCredit reports that an org's balance minus its open holds cannot cover a
	// new hold (402 insufficient_quota for the client).
	ErrInsufficientCredit = errors.New("insufficient credit")
)

// DefaultTimeout bounds every call whose context carries no deadline, and the detached writes
// of Settle and ReleaseHold.
const DefaultTimeout = 5 * time.Second

// Store is the Postgres ledger. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store over pool. The pool's search_path must reach a schema migrated by
// Migrate. The Store does not own the pool: closing it is the caller's job.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

// bounded gives ctx a deadline if it has none, so no query can hang forever.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// detached keeps ctx's values but not its cancellation or deadline, for writes that must
// complete even if the request that caused them is gone.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), DefaultTimeout)
}

// pgCode returns the SQLSTATE of a Postgres error, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// SQLSTATEs we act on.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// validUUID reports whether s is a canonical textual UUID. Ids are checked before they reach
// Postgres so that a malformed id is ErrNotFound, as any other id that matches nothing.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// nullable maps "" to SQL NULL, for optional id columns.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
