package bootstrap

import (
	"fmt"
	"net"
	"strconv"

	"github.com/tollgate/tollgate/extproc/catalog"
)

// FromCatalog derives the bootstrap parameters from the catalog: one cluster per model and
// region that has backends (DESIGN.md section 2), listening on listen and reaching extproc at
// extprocAddr (both host:port). It is a pure function of its inputs.
//
// Each backend of the model in the region becomes its own priority level, in catalog order.
// The router filter translates the request for the first backend, so until the per-attempt
// upstream filter exists Envoy must only ever pick priority 0 (there are no health checks to
// move it on). Options add what the catalog does not say (WithRateLimit).
func FromCatalog(cat *catalog.Catalog, listen, extprocAddr string, opts ...CatalogOption) (Params, error) {
	var p Params
	host, port, err := splitHostPort(listen)
	if err != nil {
		return p, fmt.Errorf("listen address: %w", err)
	}
	p.ListenAddress, p.ListenPort = host, port
	eh, ep, err := splitHostPort(extprocAddr)
	if err != nil {
		return p, fmt.Errorf("extproc address: %w", err)
	}
	p.ExtProc = Upstream{Host: eh, Port: ep}
	for i := range cat.Models {
		m := &cat.Models[i]
		for _, region := range []string{catalog.RegionGlobal, catalog.RegionEU} {
			backends := m.BackendsIn(region)
			if len(backends) == 0 {
				continue
			}
			c := Cluster{Name: catalog.ClusterName(m.ID, region)}
			for _, b := range backends {
				pr := b.ProviderRef()
				c.Priorities = append(c.Priorities, []Endpoint{{
					Backend: b.Provider, Host: pr.Host(), Port: pr.Port(), TLS: pr.TLS(), Weight: b.Weight,
				}})
			}
			p.Clusters = append(p.Clusters, c)
		}
	}
	for _, o := range opts {
		if err := o(&p); err != nil {
			return p, err
		}
	}
	return p, nil
}

// CatalogOption adjusts the parameters FromCatalog derives.
type CatalogOption func(*Params) error

// WithRateLimit adds the ratelimit filter calling the RLS at addr (host:port, as Envoy
// reaches it), with the default timeout and failing open. An empty addr adds nothing.
func WithRateLimit(addr string) CatalogOption {
	return func(p *Params) error {
		if addr == "" {
			return nil
		}
		host, port, err := splitHostPort(addr)
		if err != nil {
			return fmt.Errorf("ratelimit address: %w", err)
		}
		p.RateLimit = &RateLimit{Service: Upstream{Host: host, Port: port}}
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

// ManagementClusterName is the cluster of the management API; extproc names it in
// x-tollgate-cluster for /v1/management/* requests from management keys.
const ManagementClusterName = "tollgate_management"

// WithManagement adds the management API's cluster, an HTTP/1.1 server at addr (host:port, as
// Envoy reaches it). An empty addr adds nothing, and management requests then get Envoy's 503.
func WithManagement(addr string) CatalogOption {
	return func(p *Params) error {
		if addr == "" {
			return nil
		}
		host, port, err := splitHostPort(addr)
		if err != nil {
			return fmt.Errorf("management address: %w", err)
		}
		p.Clusters = append(p.Clusters, Cluster{Name: ManagementClusterName,
			Priorities: [][]Endpoint{{{Backend: "management", Host: host, Port: port}}}})
		return nil
	}
}
