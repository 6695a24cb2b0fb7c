package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// stackOptions varies startStack for tests that need their own database, extra upstreams or
// extproc flags. The zero value is startStack.
type stackOptions struct {
	// dsn is the Postgres server to use (a schema of its own is still created); default
	// databaseURL().
	dsn string
	// providers and models are YAML list items added to the catalog's providers and models.
	providers, models []string
	// defaults is the catalog's defaults mapping, in YAML flow form ("{management_rpm: 3}").
	defaults string
	// extprocArgs are added to the extproc's command line.
	extprocArgs []string
	// beforeStart runs once the organisation and key exist and before any service starts, for
	// operator commands whose effect must be in place from the first request (limits).
	beforeStart func(s *stack)
	// productionTimeouts keeps the rate limiter's production deadlines (Redis and Envoy's RLS
	// timeout) instead of the generous ones other tests use on a loaded machine.
	productionTimeouts bool
	// redisURL replaces the rate-limit service's Redis (e.g. an address nothing listens on).
	redisURL string
	// envoyConfigArgs are added to envoy-config's command line (e.g. --upstream-timeout).
	envoyConfigArgs []string
}

// startStackWith starts a complete gateway for one test, in a Postgres schema of its own, and
// stops it when the test ends.
func startStackWith(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if base := os.Getenv("TOLLGATE_E2E_BASE_URL"); base != "" {
		return externalStack(t, base, o)
	}
	if o.dsn == "" {
		o.dsn = databaseURL()
	}
	s := &stack{bin: tollgateBinary(t), dir: t.TempDir()}
	ctx := t.Context()

	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "e2e_" + hex.EncodeToString(b[:])
	admin, err := pgxpool.New(ctx, o.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(o.dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	s.dbURL = u.String()
	if s.DB, err = pgxpool.New(ctx, s.dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)

	s.tollgate(t, "migrate")
	s.OrgID = s.tollgate(t, "org", "create", "--name", "e2e", "--markup-bps", "1000")
	s.tollgate(t, "credits", "add", "--org", s.OrgID, "--usd", "5.00")
	s.APIKey = s.tollgate(t, "key", "create", "--org", s.OrgID, "--name", "e2e")

	mockAddr, extprocAddr, gatewayAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	cat := strings.NewReplacer("{{MOCK}}", mockAddr, "{{DEAD}}", freeAddr(t)).Replace(catalogTemplate)
	if len(o.providers) > 0 {
		cat = strings.Replace(cat, "providers:\n", "providers:\n  - "+strings.Join(o.providers, "\n  - ")+"\n", 1)
	}
	if len(o.models) > 0 {
		cat += "  - " + strings.Join(o.models, "\n  - ") + "\n"
	}
	if o.defaults != "" {
		cat += "defaults: " + o.defaults + "\n"
	}
	catPath := filepath.Join(s.dir, "catalog.yaml")
	if err := os.WriteFile(catPath, []byte(cat), 0o600); err != nil {
		t.Fatal(err)
	}
	if o.beforeStart != nil {
		o.beforeStart(s)
	}
	rlsAddr, mgmtAddr := freeAddr(t), freeAddr(t)
	s.ExtprocAddr, s.RatelimitAddr = extprocAddr, rlsAddr
	envoyPath := filepath.Join(s.dir, "envoy.yaml")
	_, adminPort, _ := net.SplitHostPort(freeAddr(t))
	// Every stack runs the production trust boundary: Envoy (the stand-in) sends the peer
	// secret on every gRPC stream, and extproc and ratelimit refuse callers without it.
	s.PeerSecret = hex.EncodeToString(b[:]) + hex.EncodeToString(b[:]) + "0123456789abcdef0123"
	secretPath := filepath.Join(s.dir, "peer.secret")
	if err := os.WriteFile(secretPath, []byte(s.PeerSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	renderArgs := []string{"envoy-config", "--config", catPath, "--listen", gatewayAddr, "--extproc", extprocAddr,
		"--ratelimit", rlsAddr, "--management", mgmtAddr, "--admin-port", adminPort, "-o", envoyPath,
		"--peer-secret-file", secretPath}
	rlsArgs := []string{"ratelimit", "--addr", rlsAddr, "--config", catPath, "--reload", "200ms", "--peer-secret-file", secretPath}
	if !o.productionTimeouts {
		// Generous deadlines: on a loaded test machine a quota test must not see a timeout
		// where it expects a decision.
		renderArgs = append(renderArgs, "--ratelimit-timeout", "3s")
		rlsArgs = append(rlsArgs, "--redis-timeout", "2s")
	}
	if o.redisURL != "" {
		rlsArgs = append(rlsArgs, "--redis-url", o.redisURL)
	}
	s.tollgate(t, append(renderArgs, o.envoyConfigArgs...)...)

	s.daemon(t, "mockprovider", "--addr", mockAddr, "--api-key", mockKey)
	// Redis keys carry the org's id, unique to this test, so tests share Redis safely.
	s.daemon(t, rlsArgs...)
	// Each stack's extproc has its own spool and management port; a later flag in extprocArgs
	// overrides these.
	s.daemon(t, append([]string{"extproc", "--addr", extprocAddr, "--config", catPath, "--peer-secret-file", secretPath,
		"--spool-dir", filepath.Join(s.dir, "spool"), "--management-addr", mgmtAddr}, o.extprocArgs...)...)
	s.daemon(t, "standin", "-c", envoyPath, "--split-seed", fmt.Sprint(time.Now().UnixNano()))
	for _, a := range []string{mockAddr, extprocAddr, rlsAddr, mgmtAddr, gatewayAddr} {
		waitListening(t, a)
	}
	s.BaseURL = "http://" + gatewayAddr
	return s
}

// externalStack uses a gateway that is already running — `docker compose --profile e2e up`
// with real Envoy — instead of starting one: TOLLGATE_E2E_BASE_URL is its address and
// TOLLGATE_E2E_DATABASE_URL its Postgres, where the operator commands create this test's
// organisation and key. Its catalog must be config/e2e.yaml (TestE2ECatalogInSync keeps that file
// equal to catalogTemplate).
func externalStack(t *testing.T, base string, o stackOptions) *stack {
	t.Helper()
	dsn := os.Getenv("TOLLGATE_E2E_DATABASE_URL")
	if dsn == "" {
		t.Fatal("TOLLGATE_E2E_BASE_URL is set: TOLLGATE_E2E_DATABASE_URL must name the stack's Postgres")
	}
	if o.dsn != "" || len(o.providers) > 0 || len(o.models) > 0 || o.defaults != "" || len(o.extprocArgs) > 0 || o.redisURL != "" || len(o.envoyConfigArgs) > 0 {
		t.Fatal("this test controls the gateway's processes and cannot run against an external stack; run it without TOLLGATE_E2E_BASE_URL")
	}
	s := &stack{bin: tollgateBinary(t), dir: t.TempDir(), dbURL: dsn, BaseURL: strings.TrimSuffix(base, "/")}
	var err error
	if s.DB, err = pgxpool.New(t.Context(), dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)
	s.OrgID = s.tollgate(t, "org", "create", "--name", "e2e", "--markup-bps", "1000")
	s.tollgate(t, "credits", "add", "--org", s.OrgID, "--usd", "5.00")
	s.APIKey = s.tollgate(t, "key", "create", "--org", s.OrgID, "--name", "e2e")
	return s
}
