package bootstrap_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/extproc/catalog"
)

// fallbackParams is the shape of issue 8's report: a model with two backends and one fallback
// model (one level each), plus the management cluster, which must get neither the upstream
// filters nor outlier detection.
func fallbackParams() bootstrap.Params {
	return bootstrap.Params{
		ExtProc:  bootstrap.Upstream{Host: "127.0.0.1", Port: 50051},
		Fallback: &bootstrap.Fallback{},
		Clusters: []bootstrap.Cluster{
			{Name: "model_gpt-5.4", Fallback: true, Priorities: [][]bootstrap.Endpoint{
				{{Backend: bootstrap.BackendKey("openai", "gpt-5.4"), Host: "api.openai.com", Port: 443, TLS: true}},
				{{Backend: bootstrap.BackendKey("azure", "gpt-5.4-prod"), Host: "example.openai.azure.com", Port: 443, TLS: true}},
				{{Backend: bootstrap.BackendKey("anthropic", "claude-sonnet-4-6"), Host: "api.anthropic.com", Port: 443, TLS: true}},
			}},
			{Name: bootstrap.ManagementClusterName, Priorities: [][]bootstrap.Endpoint{
				{{Backend: "management", Host: "127.0.0.1", Port: 8090}},
			}},
		},
	}
}

func TestFallbackGoldenAndRoundTrip(t *testing.T) {
	b, err := bootstrap.Render(fallbackParams())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	y, err := bootstrap.Marshal(b)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	path := filepath.Join("testdata", "bootstrap_fallback.golden.yaml")
	if *update {
		if err := os.WriteFile(path, y, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(y, want) {
		t.Errorf("rendered bootstrap differs from %s (run go test ./envoy/bootstrap -update):\n%s", path, y)
	}
	got, err := bootstrap.Load(want)
	if err != nil {
		t.Fatalf("golden file does not load: %v", err)
	}
	if !proto.Equal(got, b) {
		t.Errorf("Load(golden) differs from Render")
	}
	exts, err := bootstrap.TypedExtensions(got)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range exts {
		names = append(names, string(m.ProtoReflect().Descriptor().FullName()))
	}
	for _, want := range []string{
		"envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
		"envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec",
		"envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("typed extensions lack %s", want)
		}
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
			t.Errorf("fallback bootstrap lacks %q", want)
		}
	}
	// The upstream ext_proc filter sends response headers, no bodies.
	if m := bootstrap.UpstreamExtProcFilter(0, 0).GetProcessingMode(); m.GetResponseHeaderMode().String() != "SEND" ||
		m.GetResponseBodyMode().String() != "NONE" || m.GetRequestBodyMode().String() != "NONE" {
		t.Errorf("upstream ext_proc processing mode = %v", m)
	}
	// The management cluster is the last one and has no upstream filters.
	clusters := got.GetStaticResources().GetClusters()
	mgmt := clusters[len(clusters)-1]
	if mgmt.GetName() != bootstrap.ManagementClusterName || mgmt.GetOutlierDetection() != nil || len(mgmt.GetTypedExtensionProtocolOptions()) != 0 {
		t.Errorf("management cluster got fallback settings: %v", mgmt)
	}
}

func TestFallbackRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(*bootstrap.Params)
		want string
	}{
		{"fallback cluster without Params.Fallback", func(p *bootstrap.Params) { p.Fallback = nil }, "Params.Fallback is nil"},
		{"back-off max below base", func(p *bootstrap.Params) {
			p.Fallback = &bootstrap.Fallback{BackOffBase: 2e9, BackOffMax: 1e9}
		}, "back-off max"},
		{"bad status", func(p *bootstrap.Params) {
			p.Fallback = &bootstrap.Fallback{RetriableStatusCodes: []uint32{42}}
		}, "retriable status code 42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fallbackParams()
			tt.edit(&p)
			if _, err := bootstrap.Render(p); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestFromCatalogFallback pins the levels: the model's chain in the region, one backend per
// level, tagged BackendKey; without the option the rendering is today's.
func TestFromCatalogFallback(t *testing.T) {
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
	p, err := bootstrap.FromCatalog(cat, "0.0.0.0:8080", "127.0.0.1:50051", bootstrap.WithFallback(), bootstrap.WithManagement("127.0.0.1:8090"))
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
		want = append(want, bootstrap.BackendKey(b.Provider, b.UpstreamModel))
	}
	if got := levels(p, "model_a_eu"); !slices.Equal(got, want) {
		t.Errorf("model_a_eu levels = %v, want %v", got, want)
	}
	if last := p.Clusters[len(p.Clusters)-1]; last.Name != bootstrap.ManagementClusterName || last.Fallback {
		t.Errorf("management cluster = %+v, want last and without fallback", last)
	}
	if _, err := bootstrap.Render(p); err != nil {
		t.Errorf("Render: %v", err)
	}

	plain, err := bootstrap.FromCatalog(cat, "0.0.0.0:8080", "127.0.0.1:50051", bootstrap.WithManagement("127.0.0.1:8090"))
	if err != nil {
		t.Fatal(err)
	}
	if got := levels(plain, "model_a"); !slices.Equal(got, []string{"oa"}) || plain.Fallback != nil {
		t.Errorf("without WithFallback: model_a levels = %v, fallback %v", got, plain.Fallback)
	}
}

// TestFallbackRoutes: one route per fallback cluster, matched on x-tollgate-cluster exactly
// and naming its cluster, with num_retries for that cluster's levels (capped by MaxRetries);
// the management route and the final catch-all (cluster_header) have no retry policy; every
// route carries the same timeout, auto_host_rewrite and per-filter config.
func TestFallbackRoutes(t *testing.T) {
	p := fallbackParams()
	p.Fallback = &bootstrap.Fallback{MaxRetries: 4}
	p.RateLimit = &bootstrap.RateLimit{Service: bootstrap.Upstream{Host: "127.0.0.1", Port: 8081}}
	p.Clusters = append([]bootstrap.Cluster{{Name: "model_one", Fallback: true, Priorities: [][]bootstrap.Endpoint{
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
		{"model_one", "model_one", "", 2},         // 1 level × 3 − 1
		{"model_gpt-5.4", "model_gpt-5.4", "", 4}, // 3 × 3 − 1 = 8, capped at 4
		{bootstrap.ManagementClusterName, bootstrap.ManagementClusterName, "", -1},
		{"", "", bootstrap.ClusterHeader, -1},
	}
	if len(routes) != len(wants) {
		t.Fatalf("%d routes, want %d", len(routes), len(wants))
	}
	for i, w := range wants {
		r := routes[i]
		var header string
		if hs := r.GetMatch().GetHeaders(); len(hs) == 1 && hs[0].GetName() == bootstrap.ClusterHeader {
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
