package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tollgate/tollgate/peerauth"
	"github.com/tollgate/tollgate/ratelimit/limiter"
)

// Defaults for Config's zero values.
const (
	// DefaultAddr is loopback: only Envoy on this host may call the service unless
	// Config.PeerSecret is set (package peerauth).
	DefaultAddr     = "127.0.0.1:50052"
	DefaultRedisURL = "redis://127.0.0.1:6379/0"
	// DefaultRedisTimeout bounds one decision's store work: its Redis round trip, and the
	// lookup of an org or key id in Postgres the first time one is seen. It must stay below Envoy's
	// ratelimit filter timeout (bootstrap.DefaultRateLimitTimeout, 500 ms) so that Envoy gets
	// this service's answer, not its own timeout. A round trip normally takes well under a
	// millisecond, but on a loaded 2-core host a burst of concurrent decisions queues behind
	// the scheduler, the connection pool and GC: at 15 ms a burst of 40 requests timed out
	// and (failing open) admitted 38 against a limit of 20. 250 ms is met there with room,
	// and leaves half of Envoy's budget for gRPC and scheduling on the way back.
	DefaultRedisTimeout = 250 * time.Millisecond
	DefaultKeyPrefix    = "tollgate:rl:"
)

// shutdownGrace bounds how long Run waits for in-flight decisions once its
// context is done; they take milliseconds, so this only matters if one hangs.
const shutdownGrace = 5 * time.Second

// Config configures the rate-limit service.
type Config struct {
	// Addr is the gRPC listen address: host:port, or unix:/path for a Unix socket. A TCP
	// address beyond loopback requires PeerSecret. Default "127.0.0.1:50052".
	Addr string
	// PeerSecret, when set, must be presented by every caller as gRPC metadata
	// peerauth.MetadataKey (Envoy's GrpcService initial_metadata); without it only Unix
	// socket and loopback listeners are allowed.
	PeerSecret []byte
	// TLS, when set, serves mutual TLS: callers must present a certificate from TLS.ClientCA.
	// It also allows a listener beyond loopback.
	TLS peerauth.TLSFiles
	// RedisURL locates Redis, e.g. "redis://:password@host:6379/0".
	// Default "redis://127.0.0.1:6379/0".
	RedisURL string
	// FailOpen answers OK, without limits, when Redis cannot decide in time.
	// False, the zero value and the production setting, fails closed: the call
	// returns gRPC Unavailable, which Envoy turns into status_on_error (500)
	// when its failure_mode_deny is set, as envoy-config renders by default.
	FailOpen bool
	// RedisTimeout bounds each decision's store work: the Redis round trip, and an id lookup
	// (Config.IDs) the first time an org or key is seen. Keep it below Envoy's RLS
	// timeout so that Envoy receives our answer, even a fail-open one, rather
	// than timing out itself. Default DefaultRedisTimeout.
	RedisTimeout time.Duration
	// IDs, when set, refuses descriptors whose org or key is not an id
	// Tollgate issued (see Server). Nil checks nothing.
	IDs IDs
	// KeyPrefix starts every Redis key; it must not contain '{' or '}',
	// which would change the Redis Cluster hash tag. Default "tollgate:rl:".
	KeyPrefix string
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.RedisURL == "" {
		c.RedisURL = DefaultRedisURL
	}
	if c.RedisTimeout == 0 {
		c.RedisTimeout = DefaultRedisTimeout
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	return c
}

// Validate reports every problem with c (after defaults) at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := peerauth.CheckAddr(c.Addr, len(c.PeerSecret) > 0 || c.TLS.Set(), "--peer-secret-file or --tls-cert, --tls-key and --client-ca"); err != nil {
		errs = append(errs, err)
	}
	if _, err := redis.ParseURL(c.RedisURL); err != nil {
		errs = append(errs, fmt.Errorf("redis url: %w", err))
	}
	if c.RedisTimeout < 0 {
		errs = append(errs, fmt.Errorf("redis timeout %v is negative", c.RedisTimeout))
	}
	if strings.ContainsAny(c.KeyPrefix, "{}") {
		errs = append(errs, fmt.Errorf("key prefix %q contains a brace", c.KeyPrefix))
	}
	return errors.Join(errs...)
}

// OpenRedis returns a client for rawURL set up for rate limiting: commands
// honour their context's deadline, and failed commands are never retried,
// because a script whose reply was lost has already consumed and a retry
// would consume twice. The client reconnects by itself after an outage.
// Options given in the URL's query are overridden where they conflict.
func OpenRedis(rawURL string) (*redis.Client, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = -1
	opt.DisableIdentity = true // one command less on every new connection
	// One dial attempt per call: the default backoff between attempts
	// (100 ms) is far beyond a decision's deadline anyway.
	opt.DialerRetries = 1
	return redis.NewClient(opt), nil
}

// Run serves the rate-limit service (and gRPC health) on cfg.Addr until ctx
// is done, then stops gracefully. Redis need not be up at start: decisions
// follow cfg.FailOpen until it is.
func Run(ctx context.Context, cfg Config, limits Limits, log *slog.Logger) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("ratelimit config: %w", err)
	}
	if limits == nil {
		return errors.New("ratelimit: no limits source")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rdb, err := OpenRedis(cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()

	lim := limiter.New(rdb)
	// Preloading saves the first decisions an EVAL; a failure only means
	// Redis is not there yet.
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	if err := lim.Load(lctx); err != nil {
		log.WarnContext(ctx, "ratelimit: redis not ready at start", "error", err, "fail_open", cfg.FailOpen)
	}
	cancel()

	guard := peerauth.New(cfg.PeerSecret, log)
	if cfg.TLS.Set() {
		if err := guard.WithTLS(cfg.TLS); err != nil {
			return fmt.Errorf("ratelimit: %w", err)
		}
	}
	lis, err := peerauth.Listen(ctx, cfg.Addr, guard, "--peer-secret-file or --tls-cert, --tls-key and --client-ca")
	if err != nil {
		return fmt.Errorf("ratelimit: %w", err)
	}
	gs := grpc.NewServer(guard.ServerOptions()...)
	rlsv3.RegisterRateLimitServiceServer(gs, NewServer(cfg, lim, limits, log))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// ErrServerStopped: ctx was done before Serve began.
		if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("ratelimit serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		hs.Shutdown()
		stopGracefully(gs, shutdownGrace)
		return nil
	})
	log.InfoContext(ctx, "ratelimit: serving", "addr", lis.Addr().String(), "peer_secret", guard.RequiresSecret(), "mutual_tls", cfg.TLS.Set(), "fail_open", cfg.FailOpen,
		"redis_timeout", cfg.RedisTimeout)
	return g.Wait()
}

// stopGracefully lets in-flight calls finish, for at most grace.
func stopGracefully(gs *grpc.Server, grace time.Duration) {
	done := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		gs.Stop()
		<-done
	}
}
