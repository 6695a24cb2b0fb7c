package catalog

import "slices"

// Chain returns every backend that may serve a request for m in region, in the order they
// should be tried: m's own backends in region (catalog order), then each fallback model's chain
// in fallback order, depth first. A fallback's backends outside region are never included, so an
// eu/ request can only ever reach eu backends; a fallback with none in region contributes
// nothing of its own but its fallbacks are still followed. Fallback models that are SUNSET or
// UNAVAILABLE contribute nothing of their own either. Each backend appears once and cycles are
// cut, so the walk ends on any catalog.
//
// The slice is shared and must not be modified. Its ModelRef tells which model serves when a
// backend is reached.
func (c *Catalog) Chain(m *Model, region string) []*Backend {
	return c.chain(m, region)
}

func (c *Catalog) chain(m *Model, region string) []*Backend {
	if ch, ok := c.chains[chainKey{m, region}]; ok {
		return ch
	}
	return c.chainFrom(m, region, true)
}

// chainKey indexes the chains computed at load: Resolve runs per request and should not walk.
type chainKey struct {
	model  *Model
	region string
}

func (c *Catalog) buildChains() map[chainKey][]*Backend {
	chains := make(map[chainKey][]*Backend, 2*len(c.Models))
	for i := range c.Models {
		m := &c.Models[i]
		for _, region := range []string{RegionGlobal, RegionEU} {
			chains[chainKey{m, region}] = c.chainFrom(m, region, true)
		}
	}
	return chains
}

// chainFrom walks the fallback graph from m. primary says whether m is the requested model,
// whose own backends count whatever its lifecycle (refusing SUNSET models is the caller's job,
// with a better message than "not available").
func (c *Catalog) chainFrom(m *Model, region string, primary bool) []*Backend {
	var out []*Backend
	visited := make(map[*Model]bool)
	type ident struct{ provider, upstream string }
	seen := make(map[ident]bool)
	var walk func(m *Model, primary bool)
	walk = func(m *Model, primary bool) {
		if visited[m] {
			return
		}
		visited[m] = true
		if primary || servesAsFallback(m) {
			for _, b := range m.BackendsIn(region) {
				// Two models may share an upstream; trying the same one twice in a row gains
				// nothing.
				if id := (ident{b.Provider, b.UpstreamModel}); !seen[id] {
					seen[id] = true
					out = append(out, b)
				}
			}
		}
		for _, f := range m.Fallbacks {
			// c.models holds ids and aliases, never eu/ names, so a fallback cannot switch the
			// region of the walk.
			if fm, ok := c.models[f]; ok {
				walk(fm, false)
			}
		}
	}
	walk(m, primary)
	return slices.Clip(out)
}

// servesAsFallback reports whether m may stand in for another model.
func servesAsFallback(m *Model) bool {
	return m.Lifecycle != LifecycleSunset && m.Lifecycle != LifecycleUnavailable
}

// edge is one valid fallback reference, from the model whose edges list holds it to the model at
// index to; at locates it in the file.
type edge struct {
	to int
	at path
}

// cycle is a fallback loop: models[0] -> ... -> models[0], closed by the edge closing.
type cycle struct {
	models  []int
	closing edge
}

// findCycles returns one cycle per fallback reference that closes a loop, found by depth-first
// search in catalog order so reports are stable.
func findCycles(edges [][]edge) []cycle {
	const (
		unvisited = iota
		onStack
		done
	)
	state := make([]int8, len(edges))
	var stack []int
	var out []cycle
	var visit func(u int)
	visit = func(u int) {
		state[u] = onStack
		stack = append(stack, u)
		for _, e := range edges[u] {
			switch state[e.to] {
			case unvisited:
				visit(e.to)
			case onStack:
				k := slices.Index(stack, e.to)
				loop := append(slices.Clone(stack[k:]), e.to)
				out = append(out, cycle{models: loop, closing: e})
			}
		}
		stack = stack[:len(stack)-1]
		state[u] = done
	}
	for u := range edges {
		if state[u] == unvisited {
			visit(u)
		}
	}
	return out
}
