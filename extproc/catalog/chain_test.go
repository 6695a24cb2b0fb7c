package catalog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// names renders a chain as model:provider/upstream, to compare with a table.
func names(chain []*Backend) []string {
	out := []string{}
	for _, b := range chain {
		out = append(out, b.ModelRef().ID+":"+b.Provider+"/"+b.UpstreamModel)
	}
	return out
}

func TestChain(t *testing.T) {
	c, err := Load("testdata/fallbacks.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		model, region string
		want          []string
	}{
		// Depth first: b's fallback d comes before a's second fallback c.
		{"a", RegionGlobal, []string{"a:oa/a", "b:an/b", "c:oa/c"}},
		// b has no eu backend: skipped, but its fallback d still counts.
		{"a", RegionEU, []string{"a:an-eu/a", "d:an-eu/d", "c:mi-eu/c"}},
		{"d", RegionGlobal, []string{}},
		// e has no global backend of its own; a plain request is served by its fallback.
		{"e", RegionGlobal, []string{"b:an/b"}},
		{"e", RegionEU, []string{"e:mi-eu/e", "d:an-eu/d"}},
		// A SUNSET fallback is skipped; a SUNSET model asked for directly keeps its backends.
		{"f", RegionGlobal, []string{"f:an/f", "c:oa/c"}},
		{"f", RegionEU, []string{"c:mi-eu/c"}},
		{"s", RegionGlobal, []string{"s:oa/s"}},
		// x and a share the upstream oa/a: tried once.
		{"x", RegionGlobal, []string{"x:oa/a", "b:an/b", "c:oa/c"}},
	}
	for _, tt := range tests {
		t.Run(tt.model+"/"+tt.region, func(t *testing.T) {
			m, _ := c.Lookup(tt.model)
			if got := names(c.Chain(m, tt.region)); !slices.Equal(got, tt.want) {
				t.Errorf("Chain = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResolveFallbackRoute(t *testing.T) {
	c, err := Load("testdata/fallbacks.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		requested    string
		wantCluster  string
		wantBackends []string
		wantErr      error
	}{
		{requested: "a", wantCluster: "model_a", wantBackends: []string{"a:oa/a"}},
		{requested: "eu/c", wantCluster: "model_c_eu", wantBackends: []string{"c:mi-eu/c"}},
		// Own backends missing in the region: the first fallback that has some takes the request,
		// through its own cluster (the only one rendered for it).
		{requested: "e-latest", wantCluster: "model_b", wantBackends: []string{"b:an/b"}},
		{requested: "eu/b", wantCluster: "model_d_eu", wantBackends: []string{"d:an-eu/d"}},
		{requested: "d", wantErr: ErrNotAvailable},
		{requested: "eu/s", wantErr: ErrNotAvailable},
	}
	for _, tt := range tests {
		t.Run(tt.requested, func(t *testing.T) {
			r, err := c.Resolve(tt.requested)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if r.Cluster != tt.wantCluster || !slices.Equal(names(r.Backends), tt.wantBackends) {
				t.Errorf("cluster %s backends %v, want %s %v", r.Cluster, names(r.Backends), tt.wantCluster, tt.wantBackends)
			}
		})
	}
}

// genCatalog is a random catalog with everything the walk needs to judge Chain independently.
type genCatalog struct {
	yaml      string
	regions   []string // by provider index
	models    []genModel
	hasCycles bool
}

type genModel struct {
	id        string
	alias     string
	lifecycle string
	providers []int // backends, by provider index; upstream model is the id
	fallbacks []int
}

// generate builds a catalog from r: a few global and eu providers, models with one to three
// backends, and fallbacks that mostly point forward (acyclic) but sometimes backward, so some
// catalogs have cycles that Parse must refuse.
func generate(r *rand.Rand) genCatalog {
	var g genCatalog
	var b strings.Builder
	kinds := []string{KindOpenAI, KindAnthropic, KindGemini, KindOpenAICompatible}
	b.WriteString("providers:\n")
	for i := range 2 + r.IntN(4) {
		region := []string{RegionGlobal, RegionEU}[r.IntN(2)]
		g.regions = append(g.regions, region)
		fmt.Fprintf(&b, "  - {name: p%d, kind: %s, base_url: \"https://p%d.example\", region: %s}\n", i, kinds[r.IntN(len(kinds))], i, region)
	}
	n := 3 + r.IntN(8)
	b.WriteString("models:\n")
	for i := range n {
		m := genModel{id: fmt.Sprintf("m%d", i), lifecycle: LifecycleAvailable}
		switch r.IntN(10) {
		case 0:
			m.lifecycle = LifecycleSunset
		case 1:
			m.lifecycle = LifecycleUnavailable
		case 2:
			m.lifecycle = LifecycleDeprecated
		}
		if r.IntN(3) == 0 {
			m.alias = m.id + "-alias"
		}
		m.providers = r.Perm(len(g.regions))[:1+r.IntN(min(3, len(g.regions)))]
		for _, j := range r.Perm(n)[:r.IntN(min(4, n))] {
			if j == i || (j < i && r.IntN(8) != 0) {
				continue // mostly forward edges; the occasional backward one may close a cycle
			}
			m.fallbacks = append(m.fallbacks, j)
		}
		g.models = append(g.models, m)

		fmt.Fprintf(&b, "  - {id: %s, lifecycle: %s, max_output_tokens: 10", m.id, m.lifecycle)
		if m.alias != "" {
			fmt.Fprintf(&b, ", aliases: [%s]", m.alias)
		}
		var bs, fs []string
		for _, p := range m.providers {
			bs = append(bs, fmt.Sprintf("{provider: p%d}", p))
		}
		for _, f := range m.fallbacks {
			fs = append(fs, fmt.Sprintf("m%d", f))
		}
		fmt.Fprintf(&b, ", backends: [%s], fallbacks: [%s]}\n", strings.Join(bs, ", "), strings.Join(fs, ", "))
	}
	g.yaml = b.String()
	g.hasCycles = !topoSortable(g.models)
	return g
}

// topoSortable is Kahn's algorithm: a different method from the DFS Parse uses, so the two
// check each other.
func topoSortable(models []genModel) bool {
	indeg := make([]int, len(models))
	for _, m := range models {
		for _, f := range m.fallbacks {
			indeg[f]++
		}
	}
	var queue []int
	for i, d := range indeg {
		if d == 0 {
			queue = append(queue, i)
		}
	}
	done := 0
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		done++
		for _, f := range models[u].fallbacks {
			if indeg[f]--; indeg[f] == 0 {
				queue = append(queue, f)
			}
		}
	}
	return done == len(models)
}

// reachable returns every model on some fallback path from i (not i itself), walking each path.
func (g genCatalog) reachable(i int) map[int]bool {
	out := make(map[int]bool)
	var walk func(u int, onPath map[int]bool)
	walk = func(u int, onPath map[int]bool) {
		for _, f := range g.models[u].fallbacks {
			if onPath[f] {
				continue
			}
			out[f] = true
			onPath[f] = true
			walk(f, onPath)
			delete(onPath, f)
		}
	}
	walk(i, map[int]bool{i: true})
	return out
}

// TestEUNoLeakWalk walks every model, region and fallback path of generated catalogs: an eu/
// request's chain holds only eu backends and a plain one's only global ones, the chain is exactly
// what the fallback paths allow, and Resolve refuses exactly when the chain is empty (seed 000).
func TestEUNoLeakWalk(t *testing.T) {
	const catalogs = 400
	var valid, refused, emptyChains, fallbackServed int
	for seed := range uint64(catalogs) {
		g := generate(rand.New(rand.NewPCG(seed, 0x7011)))
		c, err := Parse(fmt.Sprintf("gen-%d.yaml", seed), []byte(g.yaml), env(nil))
		if g.hasCycles {
			if err == nil {
				t.Fatalf("seed %d: a catalog with a fallback cycle was accepted:\n%s", seed, g.yaml)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.Contains(line, ": fallback cycle m") {
					t.Fatalf("seed %d: unexpected problem %q in\n%s", seed, line, g.yaml)
				}
			}
			refused++
			continue
		}
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, g.yaml)
		}
		valid++
		for i, gm := range g.models {
			reach := g.reachable(i)
			for _, region := range []string{RegionGlobal, RegionEU} {
				m, _ := c.Lookup(gm.id)
				chain := c.Chain(m, region)
				where := fmt.Sprintf("seed %d %s/%s chain %v", seed, region, gm.id, names(chain))

				want := make(map[string]bool)
				var own []string
				for _, p := range gm.providers {
					if g.regions[p] == region {
						own = append(own, fmt.Sprintf("%s:p%d/%s", gm.id, p, gm.id))
					}
				}
				for _, o := range own {
					want[o] = true
				}
				for j := range reach {
					fm := g.models[j]
					if fm.lifecycle == LifecycleSunset || fm.lifecycle == LifecycleUnavailable {
						continue
					}
					for _, p := range fm.providers {
						if g.regions[p] == region {
							want[fmt.Sprintf("%s:p%d/%s", fm.id, p, fm.id)] = true
						}
					}
				}

				got := names(chain)
				for _, b := range chain {
					if b.ProviderRef().Region != region {
						t.Fatalf("%s: LEAK: backend %s is in region %s", where, b.Provider, b.ProviderRef().Region)
					}
				}
				set := make(map[string]bool)
				for _, n := range got {
					if set[n] {
						t.Fatalf("%s: %s appears twice", where, n)
					}
					set[n] = true
				}
				if len(set) != len(want) {
					t.Fatalf("%s: want exactly %v", where, want)
				}
				for n := range want {
					if !set[n] {
						t.Fatalf("%s: missing %s", where, n)
					}
				}
				if !slices.Equal(got[:len(own)], own) {
					t.Fatalf("%s: does not start with the model's own backends %v", where, own)
				}
				if len(chain) == 0 {
					emptyChains++
				} else if len(own) == 0 {
					fallbackServed++
				}

				requests := []string{gm.id}
				if gm.alias != "" {
					requests = append(requests, gm.alias)
				}
				for _, name := range requests {
					if region == RegionEU {
						name = EUPrefix + name
					}
					checkResolve(t, c, name, region, chain, where)
				}
			}
		}
	}
	// The generator must exercise every branch, or the walk proves little.
	t.Logf("%d catalogs valid, %d refused for cycles, %d empty chains, %d served only by fallbacks", valid, refused, emptyChains, fallbackServed)
	if valid < catalogs/2 || refused == 0 || emptyChains == 0 || fallbackServed == 0 {
		t.Errorf("generator too narrow: %d valid, %d refused, %d empty chains, %d fallback-only", valid, refused, emptyChains, fallbackServed)
	}
}

func checkResolve(t *testing.T, c *Catalog, name, region string, chain []*Backend, where string) {
	t.Helper()
	r, err := c.Resolve(name)
	if len(chain) == 0 {
		if !errors.Is(err, ErrNotAvailable) {
			t.Fatalf("%s: Resolve(%s) = %v, want ErrNotAvailable", where, name, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: Resolve(%s): %v", where, name, err)
	}
	if r.Region != region || !slices.Equal(r.Chain, chain) {
		t.Fatalf("%s: Resolve(%s) region %s chain %v", where, name, r.Region, names(r.Chain))
	}
	if len(r.Backends) == 0 || !slices.Equal(r.Backends, r.Chain[:len(r.Backends)]) {
		t.Fatalf("%s: Resolve(%s) backends %v are not a non-empty prefix of the chain", where, name, names(r.Backends))
	}
	serving := r.Backends[0].ModelRef()
	if r.Cluster != ClusterName(serving.ID, region) || len(serving.BackendsIn(region)) == 0 {
		t.Fatalf("%s: Resolve(%s) cluster %s is not one rendered for %s", where, name, r.Cluster, serving.ID)
	}
}
