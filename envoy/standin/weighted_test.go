package standin_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/standin"
)

// TestWeightedRoundRobin: several endpoints of one priority level with weights 1, 2 and 3
// share its traffic by weight (Envoy's default ROUND_ROBIN with an EDF scheduler,
// source/common/upstream/load_balancer_impl.cc EdfLoadBalancerBase, edf_scheduler.h): over
// 60 requests each gets its share within one, whatever the seeded starting point, and every
// weighted endpoint is used. Equal weights are plain round robin.
//
// A load_balancing_weight of 0 is refused, as Envoy's validation refuses it (endpoint
// components.proto: load_balancing_weight uint32 gte 1).
func TestWeightedRoundRobin(t *testing.T) {
	for _, seed := range []int64{1, 7, 20260301} {
		var mu sync.Mutex
		counts := map[string]int{}
		handler := func(name string) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				mu.Lock()
				counts[name]++
				mu.Unlock()
			}
		}
		ups := map[string]upstream{}
		for _, n := range []string{"w1", "w2", "w3", "e1", "e2"} {
			ups[n] = startUpstream(t, handler(n))
		}
		_, addr := startProcessor(t, replyEach(routeTo("model_w")))
		ep := func(n string, w uint32) bootstrap.Endpoint {
			return bootstrap.Endpoint{Backend: n, Host: ups[n].host, Port: ups[n].port, Weight: w}
		}
		p := bootstrap.Params{Clusters: []bootstrap.Cluster{
			{Name: "model_w", Direct: true, Priorities: [][]bootstrap.Endpoint{{ep("w1", 1), ep("w2", 2), ep("w3", 3)}}},
			{Name: "model_e", Direct: true, Priorities: [][]bootstrap.Endpoint{{ep("e1", 5), ep("e2", 5)}}},
		}}
		px := startProxySeed(t, testBootstrapParams(t, addr, p), seed)
		for range 60 {
			if resp, _ := do(t, "GET", px.url("/v1/x"), ""); resp.StatusCode != 200 {
				t.Fatalf("seed %d: status %d", seed, resp.StatusCode)
			}
			px.nextInfo(t)
		}
		for n, want := range map[string]int{"w1": 10, "w2": 20, "w3": 30} {
			if got := counts[n]; got < want-1 || got > want+1 {
				t.Errorf("seed %d: %s got %d of 60 requests, want %d±1 (all: %v)", seed, n, got, want, counts)
			}
		}

		// Equal weights: strict alternation.
		_, addr = startProcessor(t, replyEach(routeTo("model_e")))
		px = startProxySeed(t, testBootstrapParams(t, addr, p), seed)
		for range 10 {
			do(t, "GET", px.url("/v1/x"), "")
			px.nextInfo(t)
		}
		if counts["e1"] != 5 || counts["e2"] != 5 {
			t.Errorf("seed %d: equal weights: %v", seed, counts)
		}
	}

	_, addr := startProcessor(t, replyEach(continueAll))
	b := testBootstrapParams(t, addr, bootstrap.Params{Clusters: []bootstrap.Cluster{
		{Name: "model_z", Direct: true, Priorities: [][]bootstrap.Endpoint{{{Backend: "z", Host: "127.0.0.1", Port: 1, Weight: 1}}}},
	}})
	b.GetStaticResources().GetClusters()[1].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetLoadBalancingWeight().Value = 0
	if _, err := standin.New(b, standin.Options{}, testLogger(t)); err == nil || !strings.Contains(err.Error(), "LoadBalancingWeight") {
		t.Errorf("zero weight: New error = %v", err)
	}
}
