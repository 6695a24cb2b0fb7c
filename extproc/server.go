package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/ledger"
)

// Authenticator resolves an API key to its principal.
type Authenticator interface {
	Authenticate(ctx context.Context, key string) (ledger.Principal, error)
}

// Ledger reserves credit before a request goes upstream and records what it cost.
type Ledger interface {
	PlaceHold(ctx context.Context, h ledger.Hold) error
	ReleaseHold(ctx context.Context, requestID string) error
	Settle(ctx context.Context, u ledger.Usage) (charged bool, err error)
}

// Config holds the extproc settings that shape request handling.
type Config struct {
	// MaxBodyBytes is the largest request body accepted; Envoy's buffer limit enforces it first
	// (413), and the gRPC message limits are raised to match. Default 32 MiB.
	MaxBodyBytes int
	// SettleTimeout bounds one settlement's database work. Default 10s.
	SettleTimeout time.Duration
	// HoldTimeout bounds placing a credit hold on the request path. Default 2s.
	HoldTimeout time.Duration
	// HoldTTL is how long a hold outlives a process that died before settling it; it must exceed
	// the longest request (Envoy's route timeout). Default 15m.
	HoldTTL time.Duration
	// PeerIdentity names the authenticated caller of a stream (Envoy), so that an attempt is
	// answered only on a stream from the peer that opened its request. Default: every caller
	// is the same peer.
	PeerIdentity func(context.Context) string
}

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 32 << 20

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.SettleTimeout <= 0 {
		c.SettleTimeout = 10 * time.Second
	}
	if c.HoldTimeout <= 0 {
		c.HoldTimeout = 2 * time.Second
	}
	if c.HoldTTL <= 0 {
		c.HoldTTL = 15 * time.Minute
	}
	if c.PeerIdentity == nil {
		c.PeerIdentity = func(context.Context) string { return "" }
	}
	return c
}

// Server implements the ext_proc service. It is safe for concurrent use by many streams.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer

	cfg     Config
	catalog atomic.Pointer[catalog.Catalog]
	auth    Authenticator
	ledger  Ledger
	log     *slog.Logger
	now     func() time.Time

	settling sync.WaitGroup

	// pending maps request ids to admitted exchanges, for their per-attempt upstream streams.
	pendingMu sync.Mutex
	pending   map[string]*exchange
	// created is the "created" time of listed models: when this server loaded its catalog.
	created int64
}

// NewServer returns a Server using cat until SetCatalog replaces it.
func NewServer(cfg Config, cat *catalog.Catalog, auth Authenticator, l Ledger, log *slog.Logger) *Server {
	s := &Server{cfg: cfg.withDefaults(), auth: auth, ledger: l, log: log, now: time.Now, created: time.Now().Unix(), pending: map[string]*exchange{}}
	s.catalog.Store(cat)
	return s
}

func (s *Server) peerIdentity(ctx context.Context) string { return s.cfg.PeerIdentity(ctx) }

// SetCatalog swaps the catalog; requests already past model resolution keep the one they used.
func (s *Server) SetCatalog(c *catalog.Catalog) { s.catalog.Store(c) }

// Drain waits for in-flight settlements, or for ctx.
func (s *Server) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.settling.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain settlements: %w", ctx.Err())
	}
}

// Process serves one HTTP request's ext_proc stream.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return nil // Envoy gave up on the request before its first message
	}
	if isAttempt(first) {
		return s.serveAttempt(stream, first)
	}
	x := newExchange(s)
	x.envoyID, x.peer = envoyRequestID(first), s.peerIdentity(ctx)
	defer x.finish()
	for req := first; ; {
		resp := x.handle(ctx, req)
		if resp == nil {
			return status.Errorf(codes.InvalidArgument, "unexpected ext_proc message %T", req.GetRequest())
		}
		if err := stream.Send(resp); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if x.closed {
			return nil
		}
		req, err = stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || ctx.Err() != nil {
			// Envoy closed the stream: the request is over, normally or because the client left.
			return nil
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
	}
}
