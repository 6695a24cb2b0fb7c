package bootstrap

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/extproc/catalog"
)

// FromCatalog derives the bootstrap parameters from the catalog: one model cluster per model and
// region that has backends, listening on listen (host:port) and reaching extproc at extprocAddr
// (host:port or unix:/path). It is a pure function of its inputs.
//
// A cluster's priority levels are the model's chain (catalog.Chain: its own backends, then its
// fallbacks' backends in the region), one level per model of the chain, each endpoint tagged
// contract.BackendName(provider, upstream_model); the cluster's upstream filters translate every
// attempt for the backend it reached. Options add what the catalog does not say
// (WithRateLimit, WithManagement, WithRetry, ...); the model clusters come first whatever the
// options add.
func FromCatalog(cat *catalog.Catalog, listen, extprocAddr string, opts ...CatalogOption) (Params, error) {
	var p Params
	host, port, err := splitHostPort(listen)
	if err != nil {
		return p, fmt.Errorf("listen address: %w", err)
	}
	p.ListenAddress, p.ListenPort = host, port
	p.ExtProc, err = ParseUpstream(extprocAddr)
	if err != nil {
		return p, fmt.Errorf("extproc address: %w", err)
	}
	for _, o := range opts {
		if err := o(&p); err != nil {
			return p, err
		}
	}
	var models []Cluster
	for i := range cat.Models {
		m := &cat.Models[i]
		for _, region := range []string{catalog.RegionGlobal, catalog.RegionEU} {
			if c, ok := modelClusterParams(cat, m, region); ok {
				models = append(models, c)
			}
		}
	}
	p.Clusters = append(models, p.Clusters...)
	return p, nil
}

// modelClusterParams is the cluster of m in region, if m has backends there. A model
// without backends of its own in the region has no cluster, even if a fallback would serve:
// extproc answers such requests (eu/ residency, docs/design.md section 5).
func modelClusterParams(cat *catalog.Catalog, m *catalog.Model, region string) (Cluster, bool) {
	if len(m.BackendsIn(region)) == 0 {
		return Cluster{}, false
	}
	c := Cluster{Name: contract.ModelCluster(m.ID, region == catalog.RegionEU)}
	// One level per model of the chain — the model's own backends, then each fallback's — so
	// Envoy balances by weight among a model's backends and gives each model its
	// AttemptsPerLevel attempts before previous_priorities moves on to the next.
	var level []Endpoint
	var levelModel *catalog.Model
	for _, b := range cat.Chain(m, region) {
		if b.ModelRef() != levelModel && len(level) > 0 {
			c.Priorities = append(c.Priorities, level)
			level = nil
		}
		levelModel = b.ModelRef()
		pr := b.ProviderRef()
		level = append(level, Endpoint{
			Backend: contract.BackendName(b.Provider, b.UpstreamModel), Host: pr.Host(), Port: pr.Port(), TLS: pr.TLS(), Weight: b.Weight,
		})
	}
	if len(level) > 0 {
		c.Priorities = append(c.Priorities, level)
	}
	return c, true
}

// CatalogOption adjusts the parameters FromCatalog derives.
type CatalogOption func(*Params) error

// WithRateLimit adds the ratelimit filter calling the RLS at addr (host:port or unix:/path,
// as Envoy reaches it), with the default timeout and failing closed. An empty addr adds
// nothing.
func WithRateLimit(addr string) CatalogOption {
	return func(p *Params) error {
		if addr == "" {
			return nil
		}
		u, err := ParseUpstream(addr)
		if err != nil {
			return fmt.Errorf("ratelimit address: %w", err)
		}
		p.RateLimit = &RateLimit{Service: u}
		return nil
	}
}

// WithPeerSecret makes Envoy send secret on every gRPC stream to extproc and the RLS
// (Params.PeerSecret). An empty secret adds nothing.
func WithPeerSecret(secret string) CatalogOption {
	return func(p *Params) error {
		p.PeerSecret = secret
		return nil
	}
}

// WithSidecarTLS makes Envoy speak mutual TLS to extproc and the RLS (Params.SidecarTLS). A nil
// t adds nothing.
func WithSidecarTLS(t *SidecarTLS) CatalogOption {
	return func(p *Params) error {
		p.SidecarTLS = t
		return nil
	}
}

// ParseUpstream reads an address as Envoy reaches it: host:port, or unix:/path for a Unix
// socket (Envoy's pipe address).
func ParseUpstream(addr string) (Upstream, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !strings.HasPrefix(path, "/") {
			return Upstream{}, fmt.Errorf("%q: a unix socket needs an absolute path", addr)
		}
		return Upstream{Path: path}, nil
	}
	host, port, err := splitHostPort(addr)
	if err != nil {
		return Upstream{}, err
	}
	return Upstream{Host: host, Port: port}, nil
}

// WithRetry replaces the default retry and fallback settings of the model clusters
// (Params.Retry; zero fields take the defaults).
func WithRetry(r Retry) CatalogOption {
	return func(p *Params) error {
		p.Retry = &r
		return nil
	}
}

func splitHostPort(addr string) (string, uint32, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", portStr, err)
	}
	return host, uint32(port), nil
}

// WithManagement adds the management API's cluster (contract.ManagementCluster, which extproc
// names in x-tollgate-cluster for /v1/management/* requests from management keys), a Direct
// HTTP/1.1 server at addr (host:port, as Envoy reaches it). An empty addr adds nothing, and
// management requests then get Envoy's 503.
func WithManagement(addr string) CatalogOption {
	return func(p *Params) error {
		if addr == "" {
			return nil
		}
		host, port, err := splitHostPort(addr)
		if err != nil {
			return fmt.Errorf("management address: %w", err)
		}
		p.Clusters = append(p.Clusters, Cluster{Name: contract.ManagementCluster, Direct: true,
			Priorities: [][]Endpoint{{{Backend: "management", Host: host, Port: port}}}})
		return nil
	}
}
