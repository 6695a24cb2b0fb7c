package bootstrap_test

import (
	"path/filepath"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/extproc/catalog"
)

// TestRenderedNamesAreTheContract renders a catalog's bootstrap and checks that every name it
// shares with extproc and the ratelimit service is envoy/contract's, and only those: the
// cluster header, the model and management cluster names (the ones the catalog routes to), the
// metadata namespace the ext_proc filters receive and forward, the request attributes, the
// endpoints' backend tags, the content-length key, the rate-limit domain, descriptors and the
// metadata keys they read. extproc's TestContractWithRenderedBootstrap checks the other side.
func TestRenderedNamesAreTheContract(t *testing.T) {
	cat, err := catalog.Load(filepath.Join("..", "..", "extproc", "catalog", "testdata", "fallbacks.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	p, err := bootstrap.FromCatalog(cat, "0.0.0.0:8080", "127.0.0.1:50051",
		bootstrap.WithRateLimit("127.0.0.1:50052"), bootstrap.WithManagement("127.0.0.1:8090"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bootstrap.Render(p)
	if err != nil {
		t.Fatal(err)
	}
	ns := []string{contract.MetadataNamespace}

	// Clusters: one per model and region with backends there, named as the catalog routes.
	want := map[string]bool{contract.ManagementCluster: true}
	for _, m := range cat.Models {
		for _, region := range []string{catalog.RegionGlobal, catalog.RegionEU} {
			if len(m.BackendsIn(region)) > 0 {
				name := contract.ModelCluster(m.ID, region == catalog.RegionEU)
				if got := catalog.ClusterName(m.ID, region); got != name {
					t.Errorf("the catalog routes %s in %s to %s, the bootstrap renders %s", m.ID, region, got, name)
				}
				want[name] = true
			}
		}
	}
	models := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		switch name := c.GetName(); {
		case name == bootstrap.ExtProcClusterName, name == bootstrap.RateLimitClusterName:
		case !want[name]:
			t.Errorf("cluster %s is not a contract name", name)
		default:
			delete(want, name)
			if name != contract.ManagementCluster {
				models[name] = c
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("clusters not rendered: %v", want)
	}

	// Endpoints: tagged, in the namespace, with the catalog's backend names only.
	for name, c := range models {
		for _, level := range c.GetLoadAssignment().GetEndpoints() {
			for _, e := range level.GetLbEndpoints() {
				tags := e.GetMetadata().GetFilterMetadata()[contract.MetadataNamespace].GetFields()
				backend := tags[contract.BackendMetadataKey].GetStringValue()
				if len(tags) != 1 || backend == "" {
					t.Errorf("cluster %s: endpoint tags %v", name, tags)
				}
				if _, isModel := cat.Lookup(backend); isModel {
					t.Errorf("cluster %s: endpoint tagged with a model name %q, not a backend", name, backend)
				}
			}
		}
	}

	// Routes: every header match and the catch-all read the contract's cluster header.
	var hcm hcmv3.HttpConnectionManager
	if err := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	for _, r := range hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
		for _, hm := range r.GetMatch().GetHeaders() {
			if hm.GetName() != contract.ClusterHeader {
				t.Errorf("route %s matches header %s", r.GetName(), hm.GetName())
			}
		}
		if ch := r.GetRoute().GetClusterHeader(); ch != "" && ch != contract.ClusterHeader {
			t.Errorf("route %s reads cluster_header %s", r.GetName(), ch)
		}
		var pr ratelimitv3.RateLimitPerRoute
		if err := r.GetTypedPerFilterConfig()[bootstrap.RateLimitFilterName].UnmarshalTo(&pr); err != nil {
			t.Fatal(err)
		}
		checkDescriptors(t, r.GetName(), &pr)
	}

	// The router's ext_proc and ratelimit filters.
	for _, f := range hcm.GetHttpFilters() {
		var ep extprocv3.ExternalProcessor
		var rl ratelimitv3.RateLimit
		switch {
		case f.GetTypedConfig().UnmarshalTo(&ep) == nil:
			if !slices.Equal(ep.GetRequestAttributes(), []string{contract.RequestIDAttribute}) ||
				!slices.Equal(ep.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(), ns) {
				t.Errorf("router ext_proc: attributes %v, receiving %v", ep.GetRequestAttributes(), ep.GetMetadataOptions().GetReceivingNamespaces())
			}
		case f.GetTypedConfig().UnmarshalTo(&rl) == nil:
			if rl.GetDomain() != contract.RateLimitDomain {
				t.Errorf("ratelimit domain %q", rl.GetDomain())
			}
		}
	}

	// Each model cluster's upstream filters.
	for name, c := range models {
		var opts upstreamhttpv3.HttpProtocolOptions
		if err := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(&opts); err != nil {
			t.Fatalf("cluster %s: %v", name, err)
		}
		var ep extprocv3.ExternalProcessor
		var hm headermutationv3.HeaderMutation
		var seen int
		for _, f := range opts.GetHttpFilters() {
			switch {
			case f.GetTypedConfig().UnmarshalTo(&ep) == nil:
				seen++
				if !slices.Equal(ep.GetRequestAttributes(), []string{contract.RequestIDAttribute, contract.UpstreamBackendAttribute}) ||
					!slices.Equal(ep.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(), ns) ||
					!slices.Equal(ep.GetMetadataOptions().GetForwardingNamespaces().GetUntyped(), ns) {
					t.Errorf("cluster %s: upstream ext_proc attributes %v, metadata %v", name, ep.GetRequestAttributes(), ep.GetMetadataOptions())
				}
			case f.GetTypedConfig().UnmarshalTo(&hm) == nil:
				seen++
				if v := hm.GetMutations().GetRequestMutations()[0].GetAppend().GetHeader().GetValue(); v != "%DYNAMIC_METADATA("+contract.MetadataNamespace+":"+contract.ContentLengthKey+")%" {
					t.Errorf("cluster %s: content-length from %q", name, v)
				}
			}
		}
		if seen != 2 {
			t.Errorf("cluster %s: upstream filters %v", name, opts.GetHttpFilters())
		}
	}
}

// checkDescriptors checks that a route's rate limits send only the contract's descriptors, in
// its order, reading only the metadata keys extproc writes.
func checkDescriptors(t *testing.T, route string, pr *ratelimitv3.RateLimitPerRoute) {
	t.Helper()
	quotas := []string{contract.QuotaRequestsPerMinute, contract.QuotaTokensPerMinute, contract.QuotaTokensPerDay, contract.QuotaManagementRequestsPerMinute}
	reads := map[string]string{contract.DescriptorOrg: contract.OrgIDKey, contract.DescriptorKey: contract.KeyIDKey, contract.DescriptorModel: contract.ModelKey}
	order := []string{contract.DescriptorQuota, contract.DescriptorOrg, contract.DescriptorKey, contract.DescriptorModel}
	if len(pr.GetRateLimits()) == 0 {
		t.Errorf("route %s: no rate limits", route)
	}
	for _, l := range pr.GetRateLimits() {
		last := -1
		for i, a := range l.GetActions() {
			var key string
			switch {
			case a.GetGenericKey() != nil:
				key = a.GetGenericKey().GetDescriptorKey()
				if i != 0 || key != contract.DescriptorQuota || !slices.Contains(quotas, a.GetGenericKey().GetDescriptorValue()) {
					t.Errorf("route %s: generic key %v", route, a.GetGenericKey())
				}
			case a.GetMetadata() != nil:
				md := a.GetMetadata()
				key = md.GetDescriptorKey()
				path := md.GetMetadataKey().GetPath()
				if md.GetMetadataKey().GetKey() != contract.MetadataNamespace || len(path) != 1 || reads[key] == "" || path[0].GetKey() != reads[key] {
					t.Errorf("route %s: descriptor %s reads %v", route, key, md.GetMetadataKey())
				}
			default:
				t.Errorf("route %s: action %v", route, a)
			}
			pos := slices.Index(order, key)
			if pos <= last {
				t.Errorf("route %s: descriptor %s out of the contract's order", route, key)
			}
			last = pos
		}
		if f := l.GetHitsAddend().GetFormat(); f != "" && f != "%DYNAMIC_METADATA("+contract.MetadataNamespace+":"+contract.TotalTokensKey+")%" {
			t.Errorf("route %s: hits_addend %q", route, f)
		}
	}
}
