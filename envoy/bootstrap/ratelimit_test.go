package bootstrap_test

import (
	"fmt"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/contract"
)

// TestRateLimitPerRouteEntries pins docs/design.md section 7: per scope in [org+model, org,
// org+key, org+key+model], rpm on the request path, tpm and tpd checked with hits_addend 0,
// then tpm and tpd consumed on stream done with hits_addend from total_tokens.
func TestRateLimitPerRouteEntries(t *testing.T) {
	var got []string
	for _, rl := range bootstrap.RateLimitPerRoute().GetRateLimits() {
		var parts []string
		for _, a := range rl.GetActions() {
			switch {
			case a.GetGenericKey() != nil:
				parts = append(parts, a.GetGenericKey().GetDescriptorKey()+"="+a.GetGenericKey().GetDescriptorValue())
			case a.GetMetadata() != nil:
				md := a.GetMetadata()
				if md.GetSkipIfAbsent() || md.GetDefaultValue() != "" || md.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC {
					t.Errorf("metadata action %v must be dynamic, without default or skip_if_absent", md)
				}
				path := md.GetMetadataKey().GetKey()
				for _, seg := range md.GetMetadataKey().GetPath() {
					path += ":" + seg.GetKey()
				}
				parts = append(parts, path+">"+md.GetDescriptorKey())
			default:
				t.Fatalf("unexpected action %v", a)
			}
		}
		switch h := rl.GetHitsAddend(); {
		case h == nil:
		case h.GetFormat() != "":
			parts = append(parts, "hits="+h.GetFormat())
		case h.GetNumber() != nil:
			parts = append(parts, fmt.Sprintf("hits=%d", h.GetNumber().GetValue()))
		}
		if rl.GetApplyOnStreamDone() {
			parts = append(parts, "done")
		}
		got = append(got, strings.Join(parts, " "))
	}
	const (
		org   = "tollgate:org_id>org"
		key   = " tollgate:key_id>key"
		model = " tollgate:model>model"
		check = " hits=0"
		tok   = " hits=%DYNAMIC_METADATA(tollgate:total_tokens)% done"
	)
	var want []string
	for _, scope := range []string{model, "", key, key + model} {
		want = append(want,
			"quota=rpm "+org+scope,
			"quota=tpm "+org+scope+check,
			"quota=tpd "+org+scope+check,
			"quota=tpm "+org+scope+tok,
			"quota=tpd "+org+scope+tok,
		)
	}
	if !slices.Equal(got, want) {
		t.Errorf("rate_limits:\n got %q\nwant %q", got, want)
	}
	if err := bootstrap.RateLimitPerRoute().ValidateAll(); err != nil {
		t.Errorf("RateLimitPerRoute does not validate: %v", err)
	}
}

// TestRenderRateLimit: the filter sits right after ext_proc, the RLS cluster exists, the
// route carries RateLimitPerRoute under the filter's name; without RateLimit, none of it.
func TestRenderRateLimit(t *testing.T) {
	for _, withRL := range []bool{true, false} {
		p := representative()
		if !withRL {
			p.RateLimit = nil
		}
		b, err := bootstrap.Render(p)
		if err != nil {
			t.Fatal(err)
		}
		hcm := &hcmv3.HttpConnectionManager{}
		if err := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range hcm.GetHttpFilters() {
			names = append(names, f.GetName())
		}
		wantNames := []string{"envoy.filters.http.ext_proc", "envoy.filters.http.router"}
		if withRL {
			wantNames = []string{"envoy.filters.http.ext_proc", bootstrap.RateLimitFilterName, "envoy.filters.http.router"}
		}
		if !slices.Equal(names, wantNames) {
			t.Errorf("withRL=%v: filters = %v, want %v", withRL, names, wantNames)
		}
		route := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0]
		perRoute, ok := route.GetTypedPerFilterConfig()[bootstrap.RateLimitFilterName]
		if ok != withRL {
			t.Errorf("withRL=%v: route typed_per_filter_config has ratelimit = %v", withRL, ok)
		}
		hasCluster := slices.ContainsFunc(b.GetStaticResources().GetClusters(), func(c *clusterv3.Cluster) bool {
			return c.GetName() == bootstrap.RateLimitClusterName
		})
		if hasCluster != withRL {
			t.Errorf("withRL=%v: cluster %s present = %v", withRL, bootstrap.RateLimitClusterName, hasCluster)
		}
		if !withRL {
			continue
		}
		var pr ratelimitv3.RateLimitPerRoute
		if err := perRoute.UnmarshalTo(&pr); err != nil {
			t.Fatal(err)
		}
		if len(pr.GetRateLimits()) != 20 {
			t.Errorf("rate_limits = %d entries, want 20", len(pr.GetRateLimits()))
		}
		var rl ratelimitv3.RateLimit
		if err := hcm.GetHttpFilters()[1].GetTypedConfig().UnmarshalTo(&rl); err != nil {
			t.Fatal(err)
		}
		if rl.GetDomain() != "tollgate" || rl.GetTimeout().AsDuration() != bootstrap.DefaultRateLimitTimeout ||
			!rl.GetFailureModeDeny() || rl.GetRateLimitedAsResourceExhausted() ||
			rl.GetEnableXRatelimitHeaders() != ratelimitv3.RateLimit_DRAFT_VERSION_03 || len(rl.GetRateLimits()) != 0 {
			t.Errorf("ratelimit filter = %v", &rl)
		}
	}
}

// TestManagementRouteRateLimit: the management route matches x-tollgate-cluster exactly and
// carries only the management quota, {quota: mgmt_rpm}, {org}, {key} from extproc's dynamic
// metadata; model routes and the catch-all keep theirs.
func TestManagementRouteRateLimit(t *testing.T) {
	b, err := bootstrap.Render(representative())
	if err != nil {
		t.Fatal(err)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	routes := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	var mgmt, catchAll *routev3.Route
	var models []*routev3.Route
	for _, r := range routes {
		switch {
		case r.GetRoute().GetCluster() == contract.ManagementCluster:
			mgmt = r
		case r.GetRoute().GetClusterHeader() != "":
			catchAll = r
		default:
			models = append(models, r)
		}
	}
	if mgmt == nil || catchAll == nil || routes[len(routes)-1] != catchAll || len(models) != 2 {
		t.Fatalf("routes: %v", routes)
	}
	if hs := mgmt.GetMatch().GetHeaders(); len(hs) != 1 || hs[0].GetName() != contract.ClusterHeader || hs[0].GetStringMatch().GetExact() != contract.ManagementCluster {
		t.Errorf("management route match: %v", mgmt.GetMatch())
	}
	var pr ratelimitv3.RateLimitPerRoute
	if err := mgmt.GetTypedPerFilterConfig()[bootstrap.RateLimitFilterName].UnmarshalTo(&pr); err != nil {
		t.Fatal(err)
	}
	if got, want := describeLimits(pr.GetRateLimits()), "quota=mgmt_rpm org<-org_id key<-key_id"; got != want {
		t.Errorf("management rate limits: %s, want %s", got, want)
	}
	for _, r := range append(models, catchAll) {
		var model ratelimitv3.RateLimitPerRoute
		if err := r.GetTypedPerFilterConfig()[bootstrap.RateLimitFilterName].UnmarshalTo(&model); err != nil {
			t.Fatal(err)
		}
		if len(model.GetRateLimits()) != 20 {
			t.Errorf("route %s lost the model rate limits: %d entries", r.GetName(), len(model.GetRateLimits()))
		}
	}
}

// describeLimits writes rate limits as "quota=v key<-field …", one limit per line.
func describeLimits(limits []*routev3.RateLimit) string {
	var lines []string
	for _, l := range limits {
		var parts []string
		for _, a := range l.GetActions() {
			switch {
			case a.GetGenericKey() != nil:
				parts = append(parts, a.GetGenericKey().GetDescriptorKey()+"="+a.GetGenericKey().GetDescriptorValue())
			case a.GetMetadata() != nil:
				md := a.GetMetadata()
				if md.GetMetadataKey().GetKey() != contract.MetadataNamespace || md.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC {
					parts = append(parts, "bad-metadata")
					continue
				}
				parts = append(parts, md.GetDescriptorKey()+"<-"+md.GetMetadataKey().GetPath()[0].GetKey())
			default:
				parts = append(parts, "other")
			}
		}
		lines = append(lines, strings.Join(parts, " "))
	}
	return strings.Join(lines, "\n")
}
