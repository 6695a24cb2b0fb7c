package standin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate/tollgate/envoy/bootstrap"
)

// Options tune the stand-in beyond what the bootstrap says.
type Options struct {
	// SplitSeed seeds the PRNG that splits upstream bodies at random byte boundaries.
	// 0 picks a time-based seed, which Start logs so a failure can be replayed.
	SplitSeed int64
	// OnStreamComplete, if set, is called with each finished request's StreamInfo, on the
	// request's goroutine. Tests use it to read dynamic metadata.
	OnStreamComplete func(StreamInfo)
}

// Proxy is the development stand-in for Envoy. Create it with New, run it with Start.
type Proxy struct {
	cfg      *config
	opts     Options
	log      *slog.Logger
	seed     int64
	clusters map[string]*cluster
	stats    counters

	extproc extprocsvc.ExternalProcessorClient // set by Start
	rls     rlsv3.RateLimitServiceClient       // set by Start, nil without a ratelimit filter
	// background owns the fire-and-forget stream-done RLS calls; run waits for them.
	// bgMu guards bgClosed, which stops new calls once run has begun waiting (a handler
	// outliving a forced shutdown must not Add to a WaitGroup being waited on).
	background sync.WaitGroup
	bgMu       sync.Mutex
	bgClosed   bool
	bgCtx      context.Context // set by Start: outlives requests, ends with Start's ctx
	nextID     atomic.Uint64
	ready      chan struct{}
	addr       string
	adminAddr  string
	startOnce  sync.Once
}

// New checks b and builds a stand-in for it. It refuses, naming the field, any filter,
// field or mode it does not implement, rather than ignore configuration; it also runs the
// bootstrap's own validation rules, as Envoy does at start-up.
func New(b *bootstrapv3.Bootstrap, opts Options, log *slog.Logger) (*Proxy, error) {
	if err := bootstrap.Validate(b); err != nil {
		return nil, fmt.Errorf("standin: invalid bootstrap: %w", err)
	}
	if err := refuseUnimplemented(b); err != nil {
		return nil, fmt.Errorf("standin: bootstrap uses what the stand-in does not implement:\n%w", err)
	}
	cfg, err := parseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("standin: %w", err)
	}
	seed := opts.SplitSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	p := &Proxy{
		cfg:      cfg,
		opts:     opts,
		log:      log,
		seed:     seed,
		clusters: map[string]*cluster{},
		ready:    make(chan struct{}),
	}
	for name, c := range cfg.clusters {
		// The load balancer's seed_ (Envoy draws it from the server's random generator):
		// here from the proxy's seed and the cluster's name, so a seed replays.
		p.clusters[name] = newCluster(c, lbSeed(seed, name))
		for _, level := range c.levels {
			for _, e := range level {
				if e.tls != nil && e.tls.roots == nil {
					log.Warn("cluster uses TLS without a validation context: upstream certificates are not verified (as in Envoy)",
						"cluster", name, "host", e.host)
				}
			}
		}
	}
	return p, nil
}

// Banner says what this is; Start logs it.
func (p *Proxy) Banner() string {
	return "tollgate envoy stand-in: a DEVELOPMENT STAND-IN for Envoy, not a production proxy. " +
		"It implements only the subset of Envoy that Tollgate's bootstrap uses (see envoy/standin/doc.go); " +
		"run the official Envoy image in production."
}

// Ready is closed once Start has bound its listeners; Addr and AdminAddr are then set.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Addr is the bound listener address (host:port), "" before Ready.
func (p *Proxy) Addr() string {
	select {
	case <-p.ready:
		return p.addr
	default:
		return ""
	}
}

// AdminAddr is the bound admin address, "" before Ready or without admin.
func (p *Proxy) AdminAddr() string {
	select {
	case <-p.ready:
		return p.adminAddr
	default:
		return ""
	}
}

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats { return p.stats.snapshot() }

// Start binds the listener and admin (port 0 picks a free port), serves until ctx ends,
// then shuts down gracefully. It may be called once.
func (p *Proxy) Start(ctx context.Context) error {
	err := errors.New("standin: Start called twice")
	p.startOnce.Do(func() { err = p.run(ctx) })
	return err
}

func (p *Proxy) run(ctx context.Context) error {
	epCfg := p.cfg.listener.extProc
	if epCfg != nil {
		conn, err := p.dialExtProc(epCfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		p.extproc = extprocsvc.NewExternalProcessorClient(conn)
	}
	p.bgCtx = ctx
	if rlCfg := p.cfg.listener.rateLimit; rlCfg != nil {
		conn, err := p.dialGRPC(rlCfg.cluster, rlCfg.maxRecvMsgBytes)
		if err != nil {
			return err
		}
		defer conn.Close()
		p.rls = rlsv3.NewRateLimitServiceClient(conn)
		// Runs before conn.Close: stream-done calls still in flight finish (or time out).
		defer func() {
			p.bgMu.Lock()
			p.bgClosed = true
			p.bgMu.Unlock()
			p.background.Wait()
		}()
	}
	defer func() {
		for _, c := range p.clusters {
			c.closeIdle()
		}
	}()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", p.cfg.listener.addr)
	if err != nil {
		return fmt.Errorf("standin: listen %s: %w", p.cfg.listener.addr, err)
	}
	var adminLn net.Listener
	if p.cfg.admin != "" {
		if adminLn, err = lc.Listen(ctx, "tcp", p.cfg.admin); err != nil {
			ln.Close()
			return fmt.Errorf("standin: admin listen %s: %w", p.cfg.admin, err)
		}
		p.adminAddr = adminLn.Addr().String()
	}
	p.addr = ln.Addr().String()
	close(p.ready)
	p.log.Warn(p.Banner(), "listener", p.addr, "admin", p.adminAddr, "split_seed", p.seed)

	var protos http.Protocols
	switch p.cfg.listener.codec {
	case hcmv3.HttpConnectionManager_HTTP1:
		protos.SetHTTP1(true)
	case hcmv3.HttpConnectionManager_HTTP2:
		protos.SetUnencryptedHTTP2(true)
	default: // AUTO: HTTP/1.1 and prior-knowledge h2c on the same port
		protos.SetHTTP1(true)
		protos.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           p,
		Protocols:         &protos,
		ReadHeaderTimeout: time.Minute,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	servers := []*http.Server{srv}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serve(srv, ln) })
	if adminLn != nil {
		admin := &http.Server{Handler: p.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, admin)
		g.Go(func() error { return serve(admin, adminLn) })
	}
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var errs []error
		for _, s := range servers {
			if err := s.Shutdown(sctx); err != nil {
				errs = append(errs, err)
				s.Close()
			}
		}
		return errors.Join(errs...)
	})
	return g.Wait()
}

func serve(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("standin: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// dialExtProc creates the client for the ext_proc cluster: cleartext HTTP/2 to its first
// endpoint, with Envoy's max_receive_message_length and no send limit (Envoy has none).
func (p *Proxy) dialExtProc(cfg *extProcConfig) (*grpc.ClientConn, error) {
	return p.dialGRPC(cfg.cluster, cfg.maxRecvMsgBytes)
}

// dialGRPC creates a client for a gRPC cluster (HTTP/2 checked by config.go): cleartext to
// its first endpoint.
func (p *Proxy) dialGRPC(cluster string, maxRecvMsgBytes int) (*grpc.ClientConn, error) {
	ep := p.clusters[cluster].pick()
	target := "passthrough:///" + ep.addr
	if ep.cfg.pipe != "" {
		target = ep.addr // grpc-go's unix: scheme
	}
	creds := insecure.NewCredentials()
	if t := ep.cfg.tls; t != nil {
		// The cluster's UpstreamTlsContext: its client certificate, verification and ALPN.
		tc := t.clientConfig(true)
		tc.NextProtos = t.alpn
		if t.cert != nil {
			tc.Certificates = []tls.Certificate{*t.cert}
		}
		creds = credentials.NewTLS(tc)
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxRecvMsgBytes),
			grpc.MaxCallSendMsgSize(1<<31-1),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("standin: gRPC client for cluster %s (%s): %w", cluster, ep.addr, err)
	}
	return conn, nil
}

// ServeHTTP runs one request as a stream.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := p.nextID.Add(1)
	s := &stream{
		p:   p,
		log: p.log.With("stream_id", id),
		ctx: r.Context(),
		w:   w,
		rc:  http.NewResponseController(w),
		r:   r,
		rng: rand.New(rand.NewPCG(uint64(p.seed), id)),
		// A second stream of the same seed: the body reader owns rng.
		lbRng: rand.New(rand.NewPCG(uint64(p.seed)^0x7f4a7c15, id)),
		head:  r.Method == http.MethodHead,
	}
	if cfg := p.cfg.listener.extProc; cfg != nil {
		s.ep = newProcessor(cfg, p.extproc, s.log, &p.stats)
	}
	if cfg := p.cfg.listener.rateLimit; cfg != nil {
		s.rl = &rateLimiter{cfg: cfg, client: p.rls}
	}
	s.serve()
	if s.aborted {
		// Envoy resets the downstream stream (HTTP/1: closes the connection; HTTP/2:
		// RST_STREAM). This panic is net/http's documented way to do that; the server
		// recovers it without logging.
		panic(http.ErrAbortHandler)
	}
}

// lbSeed derives a cluster load balancer's seed from the proxy's seed and the cluster name
// (FNV-1a).
func lbSeed(seed int64, name string) uint64 {
	h := uint64(14695981039346656037) ^ uint64(seed)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return h
}
