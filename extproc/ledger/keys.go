package ledger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// KeyKind says what an API key may do.
type KeyKind string

const (
	// KeyStandard keys call the model APIs.
	KeyStandard KeyKind = "standard"
	// KeyManagement keys call the management API (balance, usage, keys).
	KeyManagement KeyKind = "management"
)

// KeyPrefix starts every Tollgate API key, so secret scanners and humans can recognise one.
const KeyPrefix = "tg_"

// displayPrefixLen is how much of a key is stored in clear to tell keys apart in listings:
// "tg_" plus 7 characters (42 bits) of the random part, far too few to help guess the rest.
const displayPrefixLen = 10

// Principal is who a request acts for, resolved from its API key.
type Principal struct {
	KeyID, OrgID       string
	Kind               KeyKind
	MarkupBps          int
	SubscriptionActive bool
	GatewayEnabled     bool
	// Plan lists the canonical model ids the org may use; nil means every model.
	Plan []string
}

// Allows reports whether the principal's plan includes model.
func (p Principal) Allows(model string) bool {
	if p.Plan == nil {
		return true
	}
	return slices.Contains(p.Plan, model)
}

// keySecretBytes is the size of a key's random part; KeyLen follows from it.
const keySecretBytes = 32

// KeyLen is the length of every key CreateKey issues: KeyPrefix and 43 characters of unpadded
// base64url (6 bits each, rounded up).
const KeyLen = len(KeyPrefix) + (keySecretBytes*8+5)/6

// WellFormedKey reports whether key could have been issued by CreateKey: KeyPrefix followed by
// the unpadded base64url encoding of exactly 32 bytes, in its canonical form (the last character
// carries 2 unused bits, which must be zero). Anything else cannot match a stored hash, so callers
// refuse it without a lookup.
func WellFormedKey(key string) bool {
	if len(key) != KeyLen || key[:len(KeyPrefix)] != KeyPrefix {
		return false
	}
	// By hand rather than through base64.Decode: the check runs on every request, and a decode
	// needs the secret as a []byte, a copy that escapes.
	for i := len(KeyPrefix); i < len(key); i++ {
		v := base64URLValue(key[i])
		if v < 0 || i == len(key)-1 && v&0b11 != 0 {
			return false
		}
	}
	return true
}

// base64URLValue is the 6-bit value of c in base64url, or -1.
func base64URLValue(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// HashKey returns the SHA-256 of a presented key, the form in which keys are stored and
// looked up. A plain hash is enough (no salt or stretching): keys are 256 random bits.
func HashKey(key string) [32]byte {
	return sha256.Sum256([]byte(key))
}

// CreateKey creates an API key of kind for orgID and returns it with its id. The key is
// KeyPrefix followed by 43 characters of base64url (32 random bytes); it exists only in the
// return value, so the caller must show it to the user now. ErrNotFound if orgID is unknown.
func (s *Store) CreateKey(ctx context.Context, orgID string, kind KeyKind, name string) (key, keyID string, err error) {
	if kind != KeyStandard && kind != KeyManagement {
		return "", "", fmt.Errorf("create key: unknown kind %q", kind)
	}
	if !validUUID(orgID) {
		return "", "", fmt.Errorf("create key for org %s: %w", orgID, ErrNotFound)
	}
	var secret [keySecretBytes]byte
	rand.Read(secret[:]) // never returns an error (crypto/rand, Go ≥ 1.24)
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	hash := HashKey(key)

	ctx, cancel := bounded(ctx)
	defer cancel()
	err = s.pool.QueryRow(ctx, `
		INSERT INTO api_keys (org_id, kind, name, prefix, hash) VALUES ($1, $2, $3, $4, $5)
		RETURNING id::text`, orgID, string(kind), name, key[:displayPrefixLen], hash[:]).Scan(&keyID)
	if pgCode(err) == codeForeignKeyViolation {
		return "", "", fmt.Errorf("create key for org %s: %w", orgID, ErrNotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("create key for org %s: %w", orgID, err)
	}
	return key, keyID, nil
}

// LookupKey resolves a key hash (see HashKey) to its Principal. Unknown and revoked keys are
// both ErrNotFound, so callers cannot tell them apart and neither can clients.
//
// It also refreshes the key's last_used_at, but only when that is more than a minute old: the
// lookup runs on every request, and a write per request would cost far more than it is worth.
func (s *Store) LookupKey(ctx context.Context, hash [32]byte) (Principal, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var p Principal
	var kind string
	err := s.pool.QueryRow(ctx, `
		WITH k AS (
			SELECT k.id, k.org_id, k.kind, o.markup_bps, o.subscription_active, o.gateway_enabled, o.models
			FROM api_keys k JOIN orgs o ON o.id = k.org_id
			WHERE k.hash = $1 AND k.revoked_at IS NULL
		), touched AS (
			UPDATE api_keys a SET last_used_at = now()
			FROM k
			WHERE a.id = k.id AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '1 minute')
		)
		SELECT id::text, org_id::text, kind, markup_bps, subscription_active, gateway_enabled, models FROM k`,
		hash[:]).Scan(&p.KeyID, &p.OrgID, &kind, &p.MarkupBps, &p.SubscriptionActive, &p.GatewayEnabled, &p.Plan)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, fmt.Errorf("lookup key: %w", ErrNotFound)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("lookup key: %w", err)
	}
	p.Kind = KeyKind(kind)
	return p, nil
}

// RevokeKey revokes keyID; later lookups return ErrNotFound. Revoking a revoked key is a no-op
// that keeps the first revocation time. ErrNotFound if keyID is unknown.
func (s *Store) RevokeKey(ctx context.Context, keyID string) error {
	if !validUUID(keyID) {
		return fmt.Errorf("revoke key %s: %w", keyID, ErrNotFound)
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, keyID)
	if err != nil {
		return fmt.Errorf("revoke key %s: %w", keyID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke key %s: %w", keyID, ErrNotFound)
	}
	return nil
}
