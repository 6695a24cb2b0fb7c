package bootstrap_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/extproc/catalog"
)

// TestRenderRetryShape: every model cluster has the per-attempt upstream filters and outlier
// detection and its route Envoy's retry policy; the management cluster has none of them.
func TestRenderRetryShape(t *testing.T) {
	b, err := bootstrap.Render(representative())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	y, err := bootstrap.Marshal(b)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	s := string(y)
	for _, want := range []string{
		"retry_on: 5xx,gateway-error,reset,connect-failure,refused-stream,retriable-status-codes",
		"num_retries: 8", // three levels × three attempts − 1
		"per_try_idle_timeout: 60s",
		"base_interval: 0.300s",
		"max_interval: 8s",
		"update_frequency: 3",
		"- 429",
		"consecutive_5xx: 5",
		"enforcing_success_rate: 0",
		`xds.upstream_host_metadata.filter_metadata['tollgate']['backend']`,
		"value: '%DYNAMIC_METADATA(tollgate:content_length)%'",
		"append_action: OVERWRITE_IF_EXISTS_OR_ADD",
		"backend: anthropic/claude-sonnet-4-6",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("bootstrap lacks %q", want)
		}
	}
	// The upstream ext_proc filter sends response headers, no bodies.
	if m := bootstrap.UpstreamExtProcFilter(0, 0).GetProcessingMode(); m.GetResponseHeaderMode().String() != "SEND" ||
		m.GetResponseBodyMode().String() != "NONE" || m.GetRequestBodyMode().String() != "NONE" {
		t.Errorf("upstream ext_proc processing mode = %v", m)
	}
	var models int
	for _, c := range b.GetStaticResources().GetClusters() {
		switch name := c.GetName(); {
		case name == contract.ManagementCluster:
			if c.GetOutlierDetection() != nil || len(c.GetTypedExtensionProtocolOptions()) != 0 {
				t.Errorf("management cluster got the model clusters' settings: %v", c)
			}
		case strings.HasPrefix(name, "model_"):
			models++
			var opts upstreamhttpv3.HttpProtocolOptions
			if err := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(&opts); err != nil {
				t.Fatalf("cluster %s: %v", name, err)
			}
			var filters []string
			for _, f := range opts.GetHttpFilters() {
				filters = append(filters, f.GetName())
			}
			if got := strings.Join(filters, ","); got != "tollgate.upstream_ext_proc,envoy.filters.http.header_mutation,envoy.filters.http.upstream_codec" ||
				c.GetOutlierDetection() == nil {
				t.Errorf("cluster %s: upstream filters %s, outlier detection %v", name, got, c.GetOutlierDetection())
			}
		}
	}
	if models != 2 {
		t.Errorf("%d model clusters, want 2", models)
	}
}

// TestFromCatalogLevels pins the levels: the model's chain in the region, one backend per
// level, tagged contract.BackendName; the management cluster comes last, Direct.
func TestFromCatalogLevels(t *testing.T) {
	cat, err := catalog.Load(filepath.Join("..", "..", "extproc", "catalog", "testdata", "fallbacks.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	levels := func(p bootstrap.Params, name string) []string {
		for _, c := range p.Clusters {
			if c.Name == name {
				var out []string
				for _, l := range c.Priorities {
					if len(l) != 1 {
						t.Fatalf("cluster %s: level with %d endpoints", name, len(l))
					}
					out = append(out, l[0].Backend)
				}
				return out
			}
		}
		t.Fatalf("no cluster %s", name)
		return nil
	}
	p, err := bootstrap.FromCatalog(cat, "0.0.0.0:8080", "127.0.0.1:50051", bootstrap.WithManagement("127.0.0.1:8090"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := levels(p, "model_a"), []string{"oa/a", "an/b", "mi-eu/c"}; !slices.Equal(got[:2], want[:2]) || !slices.Contains(got, "oa/a") {
		t.Errorf("model_a levels = %v", got)
	}
	// The chain is catalog.Chain's, in order.
	m, _ := cat.Lookup("a")
	var want []string
	for _, b := range cat.Chain(m, catalog.RegionEU) {
		want = append(want, contract.BackendName(b.Provider, b.UpstreamModel))
	}
	if got := levels(p, "model_a_eu"); !slices.Equal(got, want) {
		t.Errorf("model_a_eu levels = %v, want %v", got, want)
	}
	for _, c := range p.Clusters[:len(p.Clusters)-1] {
		if c.Direct {
			t.Errorf("model cluster %s is Direct", c.Name)
		}
	}
	if last := p.Clusters[len(p.Clusters)-1]; last.Name != contract.ManagementCluster || !last.Direct {
		t.Errorf("management cluster = %+v, want last and Direct", last)
	}
	if _, err := bootstrap.Render(p); err != nil {
		t.Errorf("Render: %v", err)
	}
}

// TestModelRoutes: one route per model cluster, matched on x-tollgate-cluster exactly and naming
// its cluster, with num_retries for that cluster's levels (capped by MaxRetries); the
// management route and the final catch-all (cluster_header) have no retry policy; every route
// carries the same timeout, auto_host_rewrite and per-filter config.
func TestModelRoutes(t *testing.T) {
	p := representative()
	p.Retry = &bootstrap.Retry{MaxRetries: 4}
	p.Clusters = append([]bootstrap.Cluster{{Name: "model_one", Priorities: [][]bootstrap.Endpoint{
		{{Backend: "x/one", Host: "127.0.0.1", Port: 9000}},
	}}}, p.Clusters...)
	b, err := bootstrap.Render(p)
	if err != nil {
		t.Fatal(err)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	routes := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	type want struct {
		header, cluster, clusterHeader string
		retries                        int // -1: no retry policy
	}
	wants := []want{
		{"model_one", "model_one", "", 2},               // 1 level × 3 − 1
		{"model_gpt-5.4", "model_gpt-5.4", "", 4},       // 3 × 3 − 1 = 8, capped at 4
		{"model_gpt-5.4_eu", "model_gpt-5.4_eu", "", 2}, // 1 level
		{contract.ManagementCluster, contract.ManagementCluster, "", -1},
		{"", "", contract.ClusterHeader, -1},
	}
	if len(routes) != len(wants) {
		t.Fatalf("%d routes, want %d", len(routes), len(wants))
	}
	for i, w := range wants {
		r := routes[i]
		var header string
		if hs := r.GetMatch().GetHeaders(); len(hs) == 1 && hs[0].GetName() == contract.ClusterHeader {
			header = hs[0].GetStringMatch().GetExact()
		} else if len(hs) != 0 {
			t.Errorf("route %d: headers %v", i, hs)
		}
		a := r.GetRoute()
		retries := -1
		if a.GetRetryPolicy() != nil {
			retries = int(a.GetRetryPolicy().GetNumRetries().GetValue())
			if a.GetRetryPolicy().GetPerTryTimeout() != nil {
				t.Errorf("route %d: per_try_timeout set by default", i)
			}
		}
		got := want{header, a.GetCluster(), a.GetClusterHeader(), retries}
		if got != w {
			t.Errorf("route %d = %+v, want %+v", i, got, w)
		}
		if a.GetTimeout().AsDuration() != bootstrap.DefaultUpstreamTimeout || !a.GetAutoHostRewrite().GetValue() ||
			r.GetTypedPerFilterConfig()[bootstrap.RateLimitFilterName] == nil || r.GetMatch().GetPrefix() != "/" {
			t.Errorf("route %d lacks the shared settings: %v", i, r)
		}
	}
}
