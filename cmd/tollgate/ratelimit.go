package main

import (
	"context"
	"io"

	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/ratelimit"
)

func runRatelimit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ratelimit", stderr)
	cfg := ratelimit.Config{}
	fs.StringVar(&cfg.Addr, "addr", envOr("TOLLGATE_RATELIMIT_ADDR", ratelimit.DefaultAddr), "gRPC listen address (env TOLLGATE_RATELIMIT_ADDR)")
	fs.StringVar(&cfg.RedisURL, "redis-url", envOr("REDIS_URL", defaultRedisURL), "Redis URL (env REDIS_URL)")
	fs.BoolVar(&cfg.FailOpen, "fail-open", envOr("TOLLGATE_RATELIMIT_FAIL_OPEN", "true") == "true", "admit requests while Redis is unreachable (env TOLLGATE_RATELIMIT_FAIL_OPEN)")
	fs.DurationVar(&cfg.RedisTimeout, "redis-timeout", ratelimit.DefaultRedisTimeout, "deadline of one Redis call; keep it under Envoy's RLS timeout")
	cfgPath := fs.String("config", envOr("TOLLGATE_CONFIG", defaultConfig), "catalog file with default limits (env TOLLGATE_CONFIG)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cat, err := catalog.Load(*cfgPath, func(string) string { return "" })
	if err != nil {
		return err
	}
	limits, err := ratelimit.NewStaticLimits(limitTable(cat))
	if err != nil {
		return err
	}
	return ratelimit.Run(ctx, cfg, limits, newLogger(stderr))
}

// limitTable turns the catalog's per-model default quotas into the rate-limit service's table.
func limitTable(cat *catalog.Catalog) ratelimit.LimitTable {
	t := ratelimit.LimitTable{Defaults: map[string]ratelimit.Rates{}}
	for i := range cat.Models {
		m := &cat.Models[i]
		l := cat.LimitsFor(m)
		t.Defaults[m.ID] = ratelimit.Rates{RPM: l.RPM, TPM: l.TPM, TPD: l.TPD}
	}
	return t
}
