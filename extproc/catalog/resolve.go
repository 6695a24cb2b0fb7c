package catalog

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Route is a resolved request target.
type Route struct {
	// Model is the canonical model asked for (through its id or an alias); lifecycle, endpoint
	// support and prices are judged on it.
	Model  *Model
	Region string
	// Cluster is the Envoy cluster the request goes to: Model's in Region or, when Model has no
	// backend of its own in Region but a fallback has, that of the first such fallback, the
	// only cluster the rendered bootstrap has for the request.
	Cluster string
	// Backends are those of Cluster's model in Region, in priority order; never empty, and
	// always a prefix of Chain. Backends[0] is what Envoy picks first.
	Backends []*Backend
	// Chain is every backend that may serve the request, own first then fallbacks, all in
	// Region (Catalog.Chain). It is shared and must not be modified.
	Chain []*Backend
}

// Resolution errors, distinguished so the caller can pick the client-facing code.
var (
	ErrUnknownModel = errors.New("unknown model")
	ErrNotAvailable = errors.New("model not available")
)

// Resolve turns a requested model name (id, alias, optionally eu/-prefixed) into a Route. It
// returns ErrNotAvailable exactly when no backend in the region can serve the model, fallbacks
// included: an eu/ request is never rerouted to a global backend. It does not check lifecycle
// or endpoint support; callers decide how to refuse those.
func (c *Catalog) Resolve(requested string) (Route, error) {
	name, region := requested, RegionGlobal
	if rest, ok := strings.CutPrefix(requested, EUPrefix); ok {
		name, region = rest, RegionEU
	}
	m, ok := c.Lookup(name)
	if !ok {
		return Route{}, fmt.Errorf("%w: %q", ErrUnknownModel, requested)
	}
	chain := c.Chain(m, region)
	if len(chain) == 0 {
		return Route{}, fmt.Errorf("%w: %q has no %s backend, nor do its fallbacks", ErrNotAvailable, requested, region)
	}
	first := chain[0].model
	n := 1
	for n < len(chain) && chain[n].model == first {
		n++
	}
	return Route{
		Model:    m,
		Region:   region,
		Cluster:  ClusterName(first.ID, region),
		Backends: chain[:n:n],
		Chain:    chain,
	}, nil
}

// ListedIDs returns every model id a client may request, plain and eu/-prefixed where EU
// backends exist, sorted. Models that are SUNSET or UNAVAILABLE are left out.
func (c *Catalog) ListedIDs() []ListedModel {
	var out []ListedModel
	for i := range c.Models {
		m := &c.Models[i]
		if m.Lifecycle == LifecycleSunset || m.Lifecycle == LifecycleUnavailable {
			continue
		}
		if len(m.BackendsIn(RegionGlobal)) > 0 {
			out = append(out, ListedModel{ID: m.ID, Model: m})
		}
		if len(m.BackendsIn(RegionEU)) > 0 {
			out = append(out, ListedModel{ID: EUPrefix + m.ID, Model: m})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ListedModel is one entry of a model listing.
type ListedModel struct {
	ID    string
	Model *Model
}
