package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/peerauth"
	"github.com/tollgate/tollgate/ratelimit"
)

func runRatelimit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ratelimit", stderr)
	cfg := ratelimit.Config{}
	fs.StringVar(&cfg.Addr, "addr", envOr("TOLLGATE_RATELIMIT_ADDR", defaultRatelimitAddr), "gRPC listen address: host:port or unix:/path; beyond loopback it needs --peer-secret-file (env TOLLGATE_RATELIMIT_ADDR)")
	secretFile := fs.String("peer-secret-file", envOr("TOLLGATE_PEER_SECRET_FILE", ""), "file holding the secret Envoy sends on every gRPC call (envoy-config --peer-secret-file renders it); required for a listener beyond loopback (env TOLLGATE_PEER_SECRET_FILE)")
	tlsFlags(fs, &cfg.TLS)
	fs.StringVar(&cfg.RedisURL, "redis-url", envOr("REDIS_URL", defaultRedisURL), "Redis URL (env REDIS_URL)")
	fs.BoolVar(&cfg.FailOpen, "fail-open", envOr("TOLLGATE_RATELIMIT_FAIL_OPEN", "false") == "true", "admit requests while Redis is unreachable; the production setting is false, with envoy-config's --ratelimit-failure-mode-deny (env TOLLGATE_RATELIMIT_FAIL_OPEN)")
	fs.DurationVar(&cfg.RedisTimeout, "redis-timeout", ratelimit.DefaultRedisTimeout, "deadline of one Redis call; keep it under Envoy's RLS timeout (envoy-config --ratelimit-timeout)")
	fs.StringVar(&cfg.KeyPrefix, "key-prefix", envOr("TOLLGATE_RATELIMIT_KEY_PREFIX", ratelimit.DefaultKeyPrefix), "prefix of every Redis key (env TOLLGATE_RATELIMIT_KEY_PREFIX)")
	cfgPath := fs.String("config", envOr("TOLLGATE_CONFIG", defaultConfig), "catalog file with default limits (env TOLLGATE_CONFIG)")
	dbURL := fs.String("database-url", envOr("DATABASE_URL", defaultDatabaseURL), "Postgres URL with the limit overrides (env DATABASE_URL)")
	reload := fs.Duration("reload", 5*time.Second, "how often overrides are re-read from Postgres")
	if err := parse(fs, args); err != nil {
		return err
	}
	log := newLogger(stderr)
	if *secretFile != "" {
		secret, err := peerauth.LoadSecret(*secretFile)
		if err != nil {
			return err
		}
		cfg.PeerSecret = secret
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cat, err := catalog.Load(*cfgPath, func(string) string { return "" })
	if err != nil {
		return err
	}
	table := limitTable(cat)
	limits, err := ratelimit.NewStaticLimits(table)
	if err != nil {
		return err
	}
	_, pool, err := openLedger(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	return serveRatelimit(ctx, cfg, table, limits, pool, *reload, log)
}

// serveRatelimit runs the rate-limit service with the catalog's defaults and the overrides in
// Postgres, reloaded every reload; descriptors must name orgs and keys that Postgres holds.
func serveRatelimit(ctx context.Context, cfg ratelimit.Config, table ratelimit.LimitTable, limits *ratelimit.StaticLimits, pool *pgxpool.Pool, reload time.Duration, log *slog.Logger) error {
	cfg.IDs = ratelimit.NewIssuedIDs(pool)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return ratelimit.NewOverrides(pool).Watch(ctx, limits, table, reload, log)
	})
	g.Go(func() error { return ratelimit.Run(ctx, cfg, limits, log) })
	return g.Wait()
}

func runLimits(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "set" {
		return usagef("usage: limits set --org ORG [--key KEY_ID] [--model M] [--rpm N] [--tpm N] [--tpd N]")
	}
	fs := newFlags("limits set", stderr)
	dbURL := fs.String("database-url", envOr("DATABASE_URL", defaultDatabaseURL), "Postgres URL (env DATABASE_URL)")
	var scope ratelimit.Scope
	fs.StringVar(&scope.Org, "org", "", "organisation id (required)")
	fs.StringVar(&scope.Key, "key", "", "key id: limit this key only")
	fs.StringVar(&scope.Model, "model", "", "canonical model id: limit this model only")
	var rpm, tpm, tpd optionalUint
	fs.Var(&rpm, "rpm", "requests per minute (0: back to the default)")
	fs.Var(&tpm, "tpm", "tokens per minute (0: back to the default)")
	fs.Var(&tpd, "tpd", "tokens per day (0: back to the default)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if scope.Org == "" || (rpm.v == nil && tpm.v == nil && tpd.v == nil) {
		return usagef("--org and at least one of --rpm, --tpm, --tpd are required")
	}
	_, pool, err := openLedger(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	return ratelimit.NewOverrides(pool).Set(ctx, scope, rpm.v, tpm.v, tpd.v)
}

// optionalUint is a flag that remembers whether it was given.
type optionalUint struct{ v *uint64 }

func (o *optionalUint) String() string {
	if o.v == nil {
		return ""
	}
	return strconv.FormatUint(*o.v, 10)
}

func (o *optionalUint) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return err
	}
	o.v = &n
	return nil
}

// limitTable turns the catalog's per-model default quotas and the management API's per-key limit
// into the rate-limit service's table.
func limitTable(cat *catalog.Catalog) ratelimit.LimitTable {
	t := ratelimit.LimitTable{Defaults: map[string]ratelimit.Rates{}, ManagementRPM: cat.ManagementRPM()}
	for i := range cat.Models {
		m := &cat.Models[i]
		l := cat.LimitsFor(m)
		t.Defaults[m.ID] = ratelimit.Rates{RPM: l.RPM, TPM: l.TPM, TPD: l.TPD}
	}
	return t
}
