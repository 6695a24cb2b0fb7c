package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
)

// command is one subcommand. Operator commands print the single value a script needs on stdout
// and everything meant for people on stderr (docs/design.md section 8).
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"extproc":      {"run the Envoy external processor (gRPC, 127.0.0.1:50051) and the management API (127.0.0.1:8090)", runExtproc},
	"ratelimit":    {"run the rate-limit service (gRPC, 127.0.0.1:50052)", runRatelimit},
	"peer-secret":  {"peer-secret [-o FILE]: make the secret Envoy presents to extproc and ratelimit", runPeerSecret},
	"limits":       {"limits set --org ORG [--key KEY_ID] [--model M] [--rpm N] [--tpm N] [--tpd N]", runLimits},
	"migrate":      {"apply database migrations", runMigrate},
	"envoy-config": {"render the Envoy bootstrap from the catalog to stdout", runEnvoyConfig},
	"standin":      {"run the development stand-in for Envoy: standin -c envoy.yaml", runStandin},
	"mockprovider": {"run the deterministic mock provider (OpenAI, Anthropic and Gemini APIs)", runMockProvider},
	"dev":          {"run the whole gateway on this machine with a mock provider", runDev},
	"org":          {"org create | org plan ORG --models a,b | org show ORG", runOrg},
	"key":          {"key create | key revoke KEY_ID", runKey},
	"credits":      {"credits add --org ORG --usd AMOUNT", runCredits},
	"ledger":       {"ledger reconcile --org ORG", runLedger},
}

// Run executes the subcommand named by args[0] and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tollgate: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "tollgate %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "tollgate %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tollgate <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].summary)
	}
}

// usageError marks a mistake in how a command was invoked (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

// envOr returns the environment variable's value, or def.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/tollgate?sslmode=disable"
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
	defaultConfig      = "config/dev.yaml"
)

// newLogger returns the service logger: JSON unless TOLLGATE_LOG_FORMAT=text.
func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if strings.EqualFold(os.Getenv("TOLLGATE_LOG_LEVEL"), "debug") {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("TOLLGATE_LOG_FORMAT") == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
