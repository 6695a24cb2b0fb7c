package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/ledger"
)

// openLedger connects to Postgres (flag, else DATABASE_URL, else the local default).
func openLedger(ctx context.Context, url string) (*ledger.Store, *pgxpool.Pool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return ledger.New(pool), pool, nil
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", stderr)
	dbURL := fs.String("database-url", envOr("DATABASE_URL", defaultDatabaseURL), "Postgres URL (env DATABASE_URL)")
	if err := parse(fs, args); err != nil {
		return err
	}
	_, pool, err := openLedger(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := ledger.Migrate(ctx, pool); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "migrations applied")
	return nil
}

func runOrg(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("usage: org create --name N | org plan ORG --models a,b | org show ORG")
	}
	fs := newFlags("org "+args[0], stderr)
	dbURL := fs.String("database-url", envOr("DATABASE_URL", defaultDatabaseURL), "Postgres URL (env DATABASE_URL)")
	switch args[0] {
	case "create":
		name := fs.String("name", "", "organisation name (required)")
		markup := fs.Int("markup-bps", 0, "markup on provider cost in basis points")
		noSub := fs.Bool("no-subscription", false, "create without an active subscription")
		disabled := fs.Bool("gateway-disabled", false, "create with the gateway not yet enabled")
		models := fs.String("models", "", "the plan: comma-separated canonical model ids (default: every model)")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *name == "" {
			return usagef("--name is required")
		}
		store, pool, err := openLedger(ctx, *dbURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		id, err := store.CreateOrg(ctx, ledger.OrgOptions{Name: *name, MarkupBps: *markup, NoSubscription: *noSub, GatewayDisabled: *disabled, Models: planFlag(*models)})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, id)
		return nil
	case "plan":
		models := fs.String("models", "", "comma-separated canonical model ids")
		all := fs.Bool("all", false, "allow every model")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 || (*models == "") == !*all {
			return usagef("usage: org plan ORG --models a,b | --all")
		}
		store, pool, err := openLedger(ctx, *dbURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		return store.SetPlan(ctx, fs.Arg(0), planFlag(*models))
	case "show":
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usagef("usage: org show ORG")
		}
		store, pool, err := openLedger(ctx, *dbURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		o, err := store.Org(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "id:             %s\nname:           %s\nbalance_usd:    %s\nheld_usd:       %s\nmarkup_bps:     %d\nsubscription:   %v\ngateway:        %v\n",
			o.ID, o.Name, billing.FormatMicros(o.BalanceMicros), billing.FormatMicros(o.HeldMicros), o.MarkupBps, o.SubscriptionActive, o.GatewayEnabled)
		return nil
	}
	return usagef("unknown org subcommand %q", args[0])
}

// planFlag parses a --models list; empty means no plan (every model).
func planFlag(v string) []string {
	if v == "" {
		return nil
	}
	var out []string
	for _, m := range strings.Split(v, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

func runKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("usage: key create --org ORG | key revoke KEY_ID")
	}
	fs := newFlags("key "+args[0], stderr)
	dbURL := fs.String("database-url", envOr("DATABASE_URL", defaultDatabaseURL), "Postgres URL (env DATABASE_URL)")
	switch args[0] {
	case "create":
		org := fs.String("org", "", "organisation id (required)")
		kind := fs.String("kind", "standard", "standard or management")
		name := fs.String("name", "", "a name to tell keys apart")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *org == "" {
			return usagef("--org is required")
		}
		if *kind != string(ledger.KeyStandard) && *kind != string(ledger.KeyManagement) {
			return usagef("--kind must be standard or management")
		}
		store, pool, err := openLedger(ctx, *dbURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		key, id, err := store.CreateKey(ctx, *org, ledger.KeyKind(*kind), *name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "key %s created; it is shown once, store it now\n", id)
		fmt.Fprintln(stdout, key)
		return nil
	case "revoke":
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usagef("usage: key revoke KEY_ID")
		}
		store, pool, err := openLedger(ctx, *dbURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		return store.RevokeKey(ctx, fs.Arg(0))
	}
	return usagef("unknown key subcommand %q", args[0])
}

func runCredits(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		return usagef("usage: credits add --org ORG --usd AMOUNT")
	}
	fs := newFlags("credits add", stderr)
	dbURL := fs.String("database-url", envOr("DATABASE_URL", defaultDatabaseURL), "Postgres URL (env DATABASE_URL)")
	org := fs.String("org", "", "organisation id (required)")
	usd := fs.String("usd", "", "amount in USD as a decimal string, e.g. 12.50 (required)")
	note := fs.String("note", "", "note recorded with the top-up")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *org == "" || *usd == "" {
		return usagef("--org and --usd are required")
	}
	micros, err := billing.ParseUSD(*usd)
	if err != nil || micros <= 0 {
		return usagef("--usd %q: want a positive decimal amount in USD", *usd)
	}
	store, pool, err := openLedger(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	balance, err := store.AddCredits(ctx, *org, micros, *note)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, billing.FormatMicros(balance))
	return nil
}

func runLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "reconcile" {
		return usagef("usage: ledger reconcile --org ORG")
	}
	fs := newFlags("ledger reconcile", stderr)
	dbURL := fs.String("database-url", envOr("DATABASE_URL", defaultDatabaseURL), "Postgres URL (env DATABASE_URL)")
	org := fs.String("org", "", "organisation id (required)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *org == "" {
		return usagef("--org is required")
	}
	store, pool, err := openLedger(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	materialised, sum, err := store.Reconcile(ctx, *org)
	if err != nil {
		return err
	}
	if materialised != sum {
		return fmt.Errorf("org %s: materialised balance %s differs from the ledger's sum %s",
			*org, billing.FormatMicros(materialised), billing.FormatMicros(sum))
	}
	held, open, err := store.ReconcileHolds(ctx, *org)
	if err != nil {
		return err
	}
	if held != open {
		return fmt.Errorf("org %s: materialised held amount %s differs from its open holds' sum %s",
			*org, billing.FormatMicros(held), billing.FormatMicros(open))
	}
	fmt.Fprintln(stdout, billing.FormatMicros(sum))
	return nil
}
