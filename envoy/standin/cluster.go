package standin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cluster is a cluster's runtime: its endpoints by priority and their transports.
type cluster struct {
	name    string
	http2   bool
	levels  [][]*endpoint
	filters *upstreamFilterChain
	outlier *outlierDetector // nil without outlier_detection

	seed  uint64 // the load balancer's seed_: where round robin starts
	mu    sync.Mutex
	sched map[string]*hostScheduler // by the set of hosts picked from
}

type endpoint struct {
	cfg       endpointConfig
	priority  int
	addr      string // host:port, or unix:/path for a pipe
	transport *http.Transport
}

func newCluster(c *clusterConfig, seed uint64) *cluster {
	cl := &cluster{name: c.name, http2: c.http2, filters: c.upstreamFilters, seed: seed, sched: map[string]*hostScheduler{}}
	total := 0
	for prio, level := range c.levels {
		var eps []*endpoint
		for _, e := range level {
			addr := net.JoinHostPort(e.host, strconv.FormatUint(uint64(e.port), 10))
			if e.pipe != "" {
				addr = "unix:" + e.pipe // a gRPC target; pipes are only for gRPC clusters
			}
			eps = append(eps, &endpoint{
				cfg:       e,
				priority:  prio,
				addr:      addr,
				transport: newTransport(e, c.connectTimeout, c.http2),
			})
		}
		total += len(eps)
		cl.levels = append(cl.levels, eps)
	}
	cl.outlier = newOutlierDetector(c.outlier, total, time.Now())
	return cl
}

// Envoy's load balancer defaults: overprovisioning_factor 140 and healthy_panic_threshold 50%
// (api/envoy/config/endpoint/v3/endpoint.proto, cluster.proto CommonLbConfig).
const (
	overprovisioningFactor = 140
	panicThresholdPercent  = 50
)

// choose picks the endpoint for an attempt: a priority level by the priority load (each
// level's health, as the retry priority adjusts it), then within the level weighted round
// robin over its healthy hosts, or over all of them when the level is in panic (under 50%
// healthy). A level's health is min(100, 1.4 × healthy/total) in percent; the load goes to
// the lowest levels first, and all of it to level 0 when nothing is healthy.
//
// Envoy: source/common/upstream/load_balancer_impl.cc LoadBalancerBase::
// recalculatePerPriorityState, choosePriority, isHostSetInPanic; the retry priority through
// LoadBalancerContext::determinePriorityLoad (router.cc).
func (c *cluster) choose(rs *retryState, rng *rand.Rand, now time.Time) *endpoint {
	if len(c.levels) == 0 {
		return nil
	}
	health := make([]int, len(c.levels))
	healthy := make([][]*endpoint, len(c.levels))
	total := 0
	for i, level := range c.levels {
		for _, e := range level {
			if !c.outlier.isEjected(e, now) {
				healthy[i] = append(healthy[i], e)
			}
		}
		health[i] = min(100, overprovisioningFactor*len(healthy[i])/len(level))
		total += health[i]
	}
	load := rs.priorityLoad(health, distributeLoad(health, min(total, 100)))
	prio, r := 0, rng.IntN(100)
	for i, l := range load {
		if r < l {
			prio = i
			break
		}
		r -= l
	}
	hosts := healthy[prio]
	if len(hosts)*100 < panicThresholdPercent*len(c.levels[prio]) {
		hosts = c.levels[prio]
	}
	return c.pickIn(hosts)
}

// pickIn is Envoy's default load balancer, ROUND_ROBIN, over hosts (one priority level's
// healthy hosts, or all of them in panic). Each set of hosts has its own scheduler, built
// when the set is first used, as Envoy rebuilds it when the host set changes.
//
// Envoy: source/common/upstream/load_balancer_impl.cc EdfLoadBalancerBase::refresh (equal
// weights: no scheduler, plain round robin from seed_, RoundRobinLoadBalancer::
// unweightedHostPick; otherwise an EDF scheduler built with createWithPicks(hosts, weight,
// seed_) so that load balancers do not all start on the same host) and
// EdfLoadBalancerBase::chooseHostOnce (pickAndAdd).
func (c *cluster) pickIn(hosts []*endpoint) *endpoint {
	if len(hosts) == 0 {
		return nil
	}
	key := make([]byte, 0, 4*len(hosts))
	for _, e := range hosts {
		key = append(key, e.addr...)
		key = append(key, '|')
		key = strconv.AppendInt(key, int64(e.priority), 10)
		key = append(key, ';')
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sc := c.sched[string(key)]
	if sc == nil {
		sc = newHostScheduler(hosts, c.seed)
		c.sched[string(key)] = sc
	}
	return sc.pick()
}

// pick chooses an endpoint. Without health checking every host is healthy, so Envoy sends
// all traffic to priority 0 (priority load follows health,
// source/common/upstream/load_balancer_impl.cc); within the level, round robin by weight.
func (c *cluster) pick() *endpoint {
	if len(c.levels) == 0 || len(c.levels[0]) == 0 {
		return nil
	}
	return c.pickIn(c.levels[0])
}

// hostScheduler is one host set's round robin: an index when all weights are equal, else
// Envoy's earliest-deadline-first scheduler. Each host's deadline is the scheduler's time
// plus 1/weight; a pick takes the earliest deadline (ties: the earliest added), advances the
// time to it and re-adds the host, so over any sum(weights) picks each host gets its weight's
// share, interleaved.
//
// Envoy: source/common/upstream/edf_scheduler.h EdfScheduler::add, pickAndAdd,
// createWithPicks.
type hostScheduler struct {
	hosts    []*endpoint
	weighted bool
	rr       uint64 // unweighted: rr_indexes_, starting at seed_
	now      float64
	deadline []float64
	order    []uint64
	seq      uint64
}

func newHostScheduler(hosts []*endpoint, seed uint64) *hostScheduler {
	sc := &hostScheduler{hosts: hosts, rr: seed}
	var total uint64
	for _, e := range hosts {
		total += uint64(e.cfg.weight)
		if e.cfg.weight != hosts[0].cfg.weight {
			sc.weighted = true
		}
	}
	if !sc.weighted || len(hosts) <= 1 {
		sc.weighted = false
		return sc
	}
	sc.deadline = make([]float64, len(hosts))
	sc.order = make([]uint64, len(hosts))
	for i := range hosts {
		sc.add(i)
	}
	// createWithPicks: the scheduler as if seed_ picks had been made. The schedule repeats
	// every sum(weights) picks, so seed_ modulo that is the same starting point (capped, so
	// huge weights do not cost millions of picks; the start is still seeded).
	for range seed % min(total, 1<<16) {
		sc.next()
	}
	return sc
}

func (sc *hostScheduler) add(i int) {
	sc.deadline[i] = sc.now + 1/float64(sc.hosts[i].cfg.weight)
	sc.order[i] = sc.seq
	sc.seq++
}

func (sc *hostScheduler) next() int {
	best := 0
	for i := 1; i < len(sc.hosts); i++ {
		if sc.deadline[i] < sc.deadline[best] || (sc.deadline[i] == sc.deadline[best] && sc.order[i] < sc.order[best]) {
			best = i
		}
	}
	sc.now = sc.deadline[best]
	sc.add(best)
	return best
}

func (sc *hostScheduler) pick() *endpoint {
	if !sc.weighted {
		e := sc.hosts[sc.rr%uint64(len(sc.hosts))]
		sc.rr++
		return e
	}
	return sc.hosts[sc.next()]
}

func (c *cluster) closeIdle() {
	for _, level := range c.levels {
		for _, e := range level {
			e.transport.CloseIdleConnections()
		}
	}
}

// connectError is a failure to establish the upstream connection (TCP or TLS): the router
// reports it as a reset before headers with a transport failure reason.
type connectError struct {
	reason string // Envoy's reset reason
	err    error
}

func (e *connectError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// newTransport is an endpoint's connection pool: HTTP/1.1, or HTTP/2 (h2c, or h2 over TLS)
// when the cluster has http2_protocol_options. It never uses proxies from the environment
// and never adds Accept-Encoding, as Envoy does not.
func newTransport(e endpointConfig, connectTimeout time.Duration, http2 bool) *http.Transport {
	dialer := &net.Dialer{Timeout: connectTimeout}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				return nil, &connectError{"connection timeout", err}
			}
			return nil, &connectError{"remote connection failure", err}
		}
		return conn, nil
	}
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         dial,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Hour, // Envoy's upstream idle_timeout default
	}
	var protos http.Protocols
	switch {
	case e.tls != nil:
		tc := e.tls.clientConfig(http2)
		t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			conn := tls.Client(raw, tc)
			hctx, cancel := context.WithTimeout(ctx, connectTimeout)
			defer cancel()
			if err := conn.HandshakeContext(hctx); err != nil {
				raw.Close()
				return nil, &connectError{"remote connection failure", fmt.Errorf("TLS_error: %w", err)}
			}
			return conn, nil
		}
		if http2 {
			protos.SetHTTP2(true)
			t.ForceAttemptHTTP2 = true
		} else {
			protos.SetHTTP1(true)
		}
	case http2:
		protos.SetUnencryptedHTTP2(true)
	default:
		protos.SetHTTP1(true)
	}
	t.Protocols = &protos
	return t
}

// clientConfig verifies the way Envoy's UpstreamTlsContext does: the chain against
// trusted_ca if there is a validation context (nothing is verified without one), then the
// DNS SAN matchers (a wildcard SAN covers one label), with SNI from sni.
//
// Envoy: source/common/tls/cert_validator/default_validator.cc.
func (t *tlsConfig) clientConfig(http2 bool) *tls.Config {
	alpn := []string{"http/1.1"}
	if http2 {
		alpn = []string{"h2"}
	}
	return &tls.Config{
		ServerName:         t.sni,
		NextProtos:         alpn,
		InsecureSkipVerify: true, // verification below, Envoy's way
		VerifyConnection: func(cs tls.ConnectionState) error {
			if t.roots == nil || len(cs.PeerCertificates) == 0 {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: t.roots, Intermediates: inter}); err != nil {
				return err
			}
			if len(t.sans) == 0 {
				return nil
			}
			for _, want := range t.sans {
				for _, have := range leaf.DNSNames {
					if dnsNameMatch(want, strings.ToLower(have)) {
						return nil
					}
				}
			}
			return fmt.Errorf("certificate SANs %v match none of %v", leaf.DNSNames, t.sans)
		},
	}
}

// dnsNameMatch matches a name against a certificate DNS SAN, which may be a wildcard for
// the first label.
func dnsNameMatch(name, san string) bool {
	if name == san {
		return true
	}
	if rest, ok := strings.CutPrefix(san, "*."); ok {
		_, after, found := strings.Cut(name, ".")
		return found && after == rest
	}
	return false
}
