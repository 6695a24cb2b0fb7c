package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"golang.org/x/sync/errgroup"

	"github.com/tollgate/tollgate/extproc"
	"github.com/tollgate/tollgate/extproc/auth"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/management"
	"github.com/tollgate/tollgate/extproc/spool"
	"github.com/tollgate/tollgate/peerauth"
)

// Default sidecar addresses: loopback, so that only Envoy on the same host (or in the same
// network namespace) can connect unless a peer secret is configured.
const (
	defaultExtprocAddr   = "127.0.0.1:50051"
	defaultRatelimitAddr = "127.0.0.1:50052"
	peerSecretFlag       = "--peer-secret-file (env TOLLGATE_PEER_SECRET_FILE) or --tls-cert, --tls-key and --client-ca"
)

// tlsFlags adds a sidecar's mutual TLS flags.
func tlsFlags(fs interface {
	StringVar(*string, string, string, string)
}, f *peerauth.TLSFiles) {
	fs.StringVar(&f.Cert, "tls-cert", envOr("TOLLGATE_TLS_CERT", ""), "serve gRPC over TLS with this certificate (PEM), requiring a client certificate signed by --client-ca (env TOLLGATE_TLS_CERT)")
	fs.StringVar(&f.Key, "tls-key", envOr("TOLLGATE_TLS_KEY", ""), "the --tls-cert certificate's private key (PEM) (env TOLLGATE_TLS_KEY)")
	fs.StringVar(&f.ClientCA, "client-ca", envOr("TOLLGATE_CLIENT_CA", ""), "CA (PEM) whose client certificates may call: Envoy's, envoy-config --sidecar-tls-cert (env TOLLGATE_CLIENT_CA)")
}

// peerGuard returns the caller check for a gRPC sidecar: the secret in path (none when path
// is empty) and mutual TLS when f names its files. With neither, only local listeners work.
func peerGuard(path string, f peerauth.TLSFiles, log *slog.Logger) (*peerauth.Guard, error) {
	var secret []byte
	if path != "" {
		var err error
		if secret, err = peerauth.LoadSecret(path); err != nil {
			return nil, err
		}
	}
	g := peerauth.New(secret, log)
	if f.Set() {
		if err := g.WithTLS(f); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// extprocOptions configure the extproc process: the ext_proc gRPC server, its settlement spool,
// the hold sweeper and the management API.
type extprocOptions struct {
	Addr, ManagementAddr, SpoolDir string
	// PeerSecretFile holds the secret Envoy must send on every ext_proc stream (peerauth);
	// TLS, when set, requires Envoy's client certificate. With neither, only a Unix socket or
	// loopback listener is allowed.
	PeerSecretFile string
	TLS            peerauth.TLSFiles
	MaxBodyBytes   int

	// reloader, when set, reloads the catalog into the server on SIGHUP and file changes.
	reloader *catalogReloader
}

func (o *extprocOptions) flags(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
}, addr string) {
	fs.StringVar(&o.Addr, "addr", envOr("TOLLGATE_EXTPROC_ADDR", addr), "ext_proc gRPC listen address: host:port or unix:/path; beyond loopback it needs --peer-secret-file (env TOLLGATE_EXTPROC_ADDR)")
	fs.StringVar(&o.PeerSecretFile, "peer-secret-file", envOr("TOLLGATE_PEER_SECRET_FILE", ""), "file holding the secret Envoy sends on every gRPC stream (envoy-config --peer-secret-file renders it); this or mutual TLS is required for a listener beyond loopback (env TOLLGATE_PEER_SECRET_FILE)")
	tlsFlags(fs, &o.TLS)
	fs.StringVar(&o.ManagementAddr, "management-addr", envOr("TOLLGATE_MANAGEMENT_ADDR", "127.0.0.1:8090"), "management API listen address, reached through Envoy at /v1/management/*; empty disables it (env TOLLGATE_MANAGEMENT_ADDR)")
	fs.StringVar(&o.SpoolDir, "spool-dir", envOr("TOLLGATE_SPOOL_DIR", "var/spool"), "local settlement spool, one per process (env TOLLGATE_SPOOL_DIR)")
	fs.IntVar(&o.MaxBodyBytes, "max-body-bytes", extproc.DefaultMaxBodyBytes, "largest request body accepted")
}

func runExtproc(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("extproc", stderr)
	var opts extprocOptions
	opts.flags(fs, defaultExtprocAddr)
	cfgPath := fs.String("config", envOr("TOLLGATE_CONFIG", defaultConfig), "catalog file (env TOLLGATE_CONFIG)")
	dbURL := fs.String("database-url", envOr("DATABASE_URL", defaultDatabaseURL), "Postgres URL (env DATABASE_URL)")
	if err := parse(fs, args); err != nil {
		return err
	}
	// Refuse an exposed listener before touching anything else.
	if err := peerauth.CheckAddr(opts.Addr, opts.PeerSecretFile != "" || opts.TLS.Set(), peerSecretFlag); err != nil {
		return err
	}
	log := newLogger(stderr)
	opts.reloader = newCatalogReloader(*cfgPath, log)
	cat, err := catalog.Load(*cfgPath, nil)
	if err != nil {
		return err
	}
	logCatalogWarnings(log, cat)
	store, pool, err := openLedger(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	return serveExtproc(ctx, opts, cat, store, log)
}

// serveExtproc runs everything the extproc process owns until ctx ends, then shuts down in order:
// stop taking streams, drain in-flight settlements into the spool, then drain the spool into
// Postgres (whatever cannot be written stays spooled for the next start).
func serveExtproc(ctx context.Context, opts extprocOptions, cat *catalog.Catalog, store *ledger.Store, log *slog.Logger) error {
	pipe, err := spool.Open(spool.Config{Dir: opts.SpoolDir}, store, log)
	if err != nil {
		return fmt.Errorf("open settlement spool: %w", err)
	}
	keys := auth.New(store, 0)
	// An attempt's upstream filter stream is answered only for a request its own peer opened:
	// the identity peerauth established for the stream (local, the secret, or Envoy's
	// certificate subject) and the host it came from.
	srv := extproc.NewServer(extproc.Config{MaxBodyBytes: opts.MaxBodyBytes, PeerIdentity: peerauth.Name}, cat, keys, pipe, log)
	guard, err := peerGuard(opts.PeerSecretFile, opts.TLS, log)
	if err != nil {
		return errors.Join(err, pipe.Close(context.WithoutCancel(ctx)))
	}
	lis, err := peerauth.Listen(ctx, opts.Addr, guard, peerSecretFlag)
	if err != nil {
		return errors.Join(err, pipe.Close(context.WithoutCancel(ctx)))
	}
	var mgmt net.Listener
	if opts.ManagementAddr != "" {
		if mgmt, err = net.Listen("tcp", opts.ManagementAddr); err != nil {
			lis.Close()
			return errors.Join(fmt.Errorf("listen management: %w", err), pipe.Close(context.WithoutCancel(ctx)))
		}
	}
	log.Info("extproc listening", "addr", lis.Addr().String(), "peer_secret", guard.RequiresSecret(), "mutual_tls", opts.TLS.Set(), "models", len(cat.Models), "spool", opts.SpoolDir)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, lis, guard.ServerOptions()...) })
	g.Go(func() error { return store.SweepHolds(gctx, 0, log) })
	if opts.reloader != nil {
		g.Go(func() error { return opts.reloader.run(gctx, srv) })
	}
	if mgmt != nil {
		log.Info("management API listening", "addr", mgmt.Addr().String())
		g.Go(func() error { return serveHTTP(gctx, mgmt, management.New(store, keys, log)) })
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), extproc.ShutdownGrace)
	defer cancel()
	return errors.Join(err, pipe.Close(closeCtx))
}
