package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/standin"
	"github.com/tollgate/tollgate/extproc"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/mockprovider"
	"github.com/tollgate/tollgate/peerauth"
	"github.com/tollgate/tollgate/ratelimit"
)

// devMockKey is the mock provider's credential in a dev run: it proves extproc injects provider
// credentials, and is not a secret.
const devMockKey = "mock-provider-key"

// runDev runs everything on one machine: migrations, a demo organisation with credit, the mock
// provider, extproc, and Envoy when an envoy binary is on PATH, otherwise the stand-in.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dev", stderr)
	cfgPath := fs.String("config", envOr("TOLLGATE_CONFIG", defaultConfig), "catalog file (env TOLLGATE_CONFIG)")
	dbURL := fs.String("database-url", envOr("DATABASE_URL", defaultDatabaseURL), "Postgres URL (env DATABASE_URL)")
	listen := fs.String("listen", "127.0.0.1:8080", "gateway listen address")
	extprocAddr := fs.String("extproc-addr", defaultExtprocAddr, "extproc listen address (host:port or unix:/path)")
	mockAddr := fs.String("mock-addr", "127.0.0.1:8081", "mock provider listen address (must match the catalog)")
	managementAddr := fs.String("management-addr", "127.0.0.1:8090", "management API listen address")
	rlsAddr := fs.String("ratelimit-addr", defaultRatelimitAddr, "rate-limit service listen address (host:port or unix:/path)")
	redisURL := fs.String("redis-url", envOr("REDIS_URL", defaultRedisURL), "Redis URL (env REDIS_URL)")
	stateDir := fs.String("state-dir", ".run", "where the dev run keeps its demo key, peer secret and rendered envoy.yaml")
	if err := parse(fs, args); err != nil {
		return err
	}
	log := newLogger(stderr)
	if os.Getenv("MOCK_API_KEY") == "" {
		os.Setenv("MOCK_API_KEY", devMockKey)
	}
	cat, err := catalog.Load(*cfgPath, nil)
	if err != nil {
		return err
	}
	store, pool, err := openLedger(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := ledger.Migrate(ctx, pool); err != nil {
		return err
	}
	if err := os.MkdirAll(*stateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	key, err := demoKey(ctx, store, filepath.Join(*stateDir, "demo.key"))
	if err != nil {
		return err
	}

	// The dev stack runs the production trust boundary: both sidecars require the secret,
	// and the rendered bootstrap sends it, so every dev run and e2e test exercises it.
	secretPath := filepath.Join(*stateDir, "peer.secret")
	secret, err := devPeerSecret(secretPath)
	if err != nil {
		return err
	}
	envoyYAML, err := renderBootstrap(cat, *listen, *extprocAddr, *rlsAddr, *managementAddr, bootstrap.DefaultAdminPort,
		bootstrap.WithPeerSecret(string(secret)))
	if err != nil {
		return err
	}
	envoyPath := filepath.Join(*stateDir, "envoy.yaml")
	if err := writePrivate(envoyPath, envoyYAML, 0o600); err != nil {
		return fmt.Errorf("write envoy.yaml: %w", err)
	}

	mockLis, err := net.Listen("tcp", *mockAddr)
	if err != nil {
		return fmt.Errorf("mock provider: %w", err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return serveHTTP(ctx, mockLis, mockprovider.Handler(mockprovider.Config{APIKey: os.Getenv("MOCK_API_KEY")}, log))
	})
	table := limitTable(cat)
	limits, err := ratelimit.NewStaticLimits(table)
	if err != nil {
		return err
	}
	g.Go(func() error {
		cfg := ratelimit.Config{Addr: *rlsAddr, RedisURL: *redisURL, PeerSecret: secret}
		return serveRatelimit(ctx, cfg, table, limits, pool, 5*time.Second, log)
	})
	g.Go(func() error {
		return serveExtproc(ctx, extprocOptions{
			Addr:           *extprocAddr,
			PeerSecretFile: secretPath,
			ManagementAddr: *managementAddr,
			SpoolDir:       filepath.Join(*stateDir, "spool"),
			MaxBodyBytes:   extproc.DefaultMaxBodyBytes,
		}, cat, store, log)
	})
	g.Go(func() error {
		if envoy, err := exec.LookPath("envoy"); err == nil {
			cmd := exec.CommandContext(ctx, envoy, "-c", envoyPath)
			cmd.Stdout, cmd.Stderr = stderr, stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("envoy: %w", err)
		}
		b, err := bootstrap.Load(envoyYAML)
		if err != nil {
			return err
		}
		p, err := standin.New(b, standin.Options{}, log)
		if err != nil {
			return err
		}
		return p.Start(ctx)
	})
	g.Go(func() error {
		if err := waitReachable(ctx, *listen); err != nil {
			return err
		}
		url := "http://" + *listen
		fmt.Fprintf(stdout, `
Tollgate is running at %s (Envoy config: %s)

  API key:  %s

Try it:

  curl -s %s/v1/chat/completions -H "Authorization: Bearer %s" -H "Content-Type: application/json" -d '{"model":"mock-gpt","messages":[{"role":"user","content":"Hello"}]}'

Press Ctrl-C to stop.
`, url, envoyPath, key, url, key)
		return nil
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// devPeerSecret returns the dev stack's peer secret from path, creating a random one (mode
// 0600) on first run.
func devPeerSecret(path string) ([]byte, error) {
	if _, err := os.Stat(path); err == nil {
		return peerauth.LoadSecret(path)
	}
	secret, err := newPeerSecret()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("save peer secret: %w", err)
	}
	return peerauth.LoadSecret(path)
}

// demoKey returns the demo organisation's key, creating the organisation (with $10 of credit) and
// key on first run. Keys are stored hashed, so the plaintext is kept in a private file of the
// dev state directory; a key that no longer works (a wiped database) is replaced.
func demoKey(ctx context.Context, store *ledger.Store, path string) (string, error) {
	if raw, err := os.ReadFile(path); err == nil {
		key := strings.TrimSpace(string(raw))
		if _, err := store.LookupKey(ctx, ledger.HashKey(key)); err == nil {
			return key, nil
		}
	}
	org, err := store.CreateOrg(ctx, ledger.OrgOptions{Name: "demo"})
	if err != nil {
		return "", err
	}
	if _, err := store.AddCredits(ctx, org, 10_000_000, "demo credit"); err != nil {
		return "", err
	}
	key, _, err := store.CreateKey(ctx, org, ledger.KeyStandard, "demo")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save demo key: %w", err)
	}
	return key, nil
}
