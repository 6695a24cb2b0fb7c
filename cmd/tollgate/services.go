package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/standin"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/mockprovider"
	"github.com/tollgate/tollgate/peerauth"
)

func runEnvoyConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("envoy-config", stderr)
	cfgPath := fs.String("config", envOr("TOLLGATE_CONFIG", defaultConfig), "catalog file (env TOLLGATE_CONFIG)")
	listen := fs.String("listen", "0.0.0.0:8080", "gateway listen address")
	extprocAddr := fs.String("extproc", defaultExtprocAddr, "extproc address as Envoy reaches it: host:port or unix:/path")
	adminPort := fs.Uint("admin-port", bootstrap.DefaultAdminPort, "Envoy admin port on 127.0.0.1")
	rlsAddr := fs.String("ratelimit", envOr("TOLLGATE_ENVOY_RATELIMIT", ""), "ratelimit service address as Envoy reaches it (host:port or unix:/path); empty renders no ratelimit filter (env TOLLGATE_ENVOY_RATELIMIT)")
	failureModeDeny := fs.Bool("ratelimit-failure-mode-deny", envOr("TOLLGATE_RATELIMIT_FAILURE_MODE_DENY", "true") == "true", "refuse requests (503 service_unavailable in the client's protocol) when the rate-limit service fails or times out, the production setting; false admits requests unmetered during an outage (env TOLLGATE_RATELIMIT_FAILURE_MODE_DENY)")
	secretFile := fs.String("peer-secret-file", envOr("TOLLGATE_PEER_SECRET_FILE", ""), "file holding the secret Envoy sends to extproc and ratelimit as gRPC initial_metadata; the rendered file then holds it and is written mode 0600 (env TOLLGATE_PEER_SECRET_FILE)")
	mgmtAddr := fs.String("management", envOr("TOLLGATE_ENVOY_MANAGEMENT", ""), "management API address as Envoy reaches it; empty leaves /v1/management/* unrouted (env TOLLGATE_ENVOY_MANAGEMENT)")
	var sidecarTLS bootstrap.SidecarTLS
	fs.StringVar(&sidecarTLS.CertFile, "sidecar-tls-cert", envOr("TOLLGATE_SIDECAR_TLS_CERT", ""), "speak mutual TLS to extproc and ratelimit, presenting this client certificate (PEM, as Envoy reads it) (env TOLLGATE_SIDECAR_TLS_CERT)")
	fs.StringVar(&sidecarTLS.KeyFile, "sidecar-tls-key", envOr("TOLLGATE_SIDECAR_TLS_KEY", ""), "the --sidecar-tls-cert certificate's private key (env TOLLGATE_SIDECAR_TLS_KEY)")
	fs.StringVar(&sidecarTLS.CAFile, "sidecar-ca", envOr("TOLLGATE_SIDECAR_CA", ""), "CA that signed extproc's and ratelimit's --tls-cert (env TOLLGATE_SIDECAR_CA)")
	rlsTimeout := fs.Duration("ratelimit-timeout", 0, "Envoy's deadline for one rate-limit decision, above ratelimit's --redis-timeout (0: 500ms)")
	upstreamTimeout := fs.Duration("upstream-timeout", bootstrap.DefaultUpstreamTimeout, "bound of a whole model request, every retry and a streamed response included: the route timeout and the stream idle timeout; past it the client gets 524 provider_timeout")
	out := fs.String("o", "", "write to this file instead of stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	cat, err := catalog.Load(*cfgPath, func(string) string { return "" })
	if err != nil {
		return err
	}
	var extra []bootstrap.CatalogOption
	if *rlsTimeout > 0 || !*failureModeDeny {
		extra = append(extra, func(p *bootstrap.Params) error {
			if p.RateLimit != nil {
				p.RateLimit.Timeout = *rlsTimeout
				p.RateLimit.FailOpen = !*failureModeDeny
			}
			return nil
		})
	}
	extra = append(extra, func(p *bootstrap.Params) error {
		p.UpstreamTimeout = *upstreamTimeout
		return nil
	})
	if sidecarTLS != (bootstrap.SidecarTLS{}) {
		extra = append(extra, bootstrap.WithSidecarTLS(&sidecarTLS))
	}
	perm := os.FileMode(0o644)
	if *secretFile != "" {
		secret, err := peerauth.LoadSecret(*secretFile)
		if err != nil {
			return err
		}
		extra = append(extra, bootstrap.WithPeerSecret(string(secret)))
		perm = 0o600
	}
	yaml, err := renderBootstrap(cat, *listen, *extprocAddr, *rlsAddr, *mgmtAddr, uint32(*adminPort), extra...)
	if err != nil {
		return err
	}
	if *out != "" {
		return writePrivate(*out, yaml, perm)
	}
	_, err = stdout.Write(yaml)
	return err
}

// renderBootstrap renders Envoy's bootstrap; an empty rlsAddr renders no ratelimit filter and an
// empty managementAddr no management cluster.
func renderBootstrap(cat *catalog.Catalog, listen, extprocAddr, rlsAddr, managementAddr string, adminPort uint32, extra ...bootstrap.CatalogOption) ([]byte, error) {
	opts := append([]bootstrap.CatalogOption{bootstrap.WithRateLimit(rlsAddr), bootstrap.WithManagement(managementAddr)}, extra...)
	params, err := bootstrap.FromCatalog(cat, listen, extprocAddr, opts...)
	if err != nil {
		return nil, err
	}
	params.AdminPort = adminPort
	b, err := bootstrap.Render(params)
	if err != nil {
		return nil, err
	}
	return bootstrap.Marshal(b)
}

// writePrivate writes data to path with perm, also when the file exists with wider
// permissions (os.WriteFile keeps an existing file's mode).
func writePrivate(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func runStandin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("standin", stderr)
	path := fs.String("c", "", "Envoy bootstrap file (as envoy -c)")
	seed := fs.Int64("split-seed", 0, "seed for splitting upstream bodies (0: random, logged)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usagef("-c is required")
	}
	raw, err := os.ReadFile(*path)
	if err != nil {
		return fmt.Errorf("read bootstrap: %w", err)
	}
	b, err := bootstrap.Load(raw)
	if err != nil {
		return err
	}
	log := newLogger(stderr)
	p, err := standin.New(b, standin.Options{SplitSeed: *seed}, log)
	if err != nil {
		return err
	}
	return p.Start(ctx)
}

func runMockProvider(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("mockprovider", stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	key := fs.String("api-key", os.Getenv("MOCK_API_KEY"), "require this bearer key (env MOCK_API_KEY)")
	if err := parse(fs, args); err != nil {
		return err
	}
	log := newLogger(stderr)
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("mock provider listening", "addr", lis.Addr().String())
	return serveHTTP(ctx, lis, mockprovider.Handler(mockprovider.Config{APIKey: *key}, log))
}

// serveHTTP serves h on lis until ctx is done, then shuts down gracefully.
func serveHTTP(ctx context.Context, lis net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: mockprovider.ReadHeaderTimeout}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// waitReachable polls addr until it accepts a TCP connection, or ctx ends.
func waitReachable(ctx context.Context, addr string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
