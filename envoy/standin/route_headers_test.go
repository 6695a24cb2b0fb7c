package standin_test

import (
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/standin"
)

// TestRouteHeaderMatch: each model cluster has its own route matched on
// x-tollgate-cluster after extproc clears the route cache, and its own num_retries. Cluster
// model_m has one level (num_retries 2: three attempts), model_n two levels (num_retries 5);
// the old shared route would have given model_m six attempts. A name no route matches falls
// to the catch-all (cluster_header, no retries): 503 cluster_not_found.
//
// Envoy: source/common/router/config_impl.cc VirtualHostImpl::getRouteFromEntries and
// RouteEntryImplBase::matchRoute; source/common/http/header_utility.cc matchHeaders.
func TestRouteHeaderMatch(t *testing.T) {
	a := &recorder{answer: statuses(503)}
	ua := startUpstream(t, a.handler)
	_, addr := startProcessor(t, fallbackProcessor("model_m", true))
	p := bootstrap.Params{Retry: fastFallback(), Clusters: []bootstrap.Cluster{
		{Name: "model_n", Priorities: [][]bootstrap.Endpoint{
			{{Backend: "n/1", Host: ua.host, Port: ua.port}}, {{Backend: "n/2", Host: ua.host, Port: ua.port}},
		}},
		{Name: "model_m", Priorities: [][]bootstrap.Endpoint{{{Backend: "a/m", Host: ua.host, Port: ua.port}}}},
	}}
	px := startProxy(t, testBootstrapParams(t, addr, p))
	resp, _ := do(t, "POST", px.url("/v1/x"), `{}`)
	if resp.StatusCode != 503 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	info := px.nextInfo(t)
	if info.Cluster != "model_m" || len(info.Attempts) != 3 || len(a.got()) != 3 {
		t.Errorf("cluster %q, %d attempts (%d at the backend); want model_m and 3", info.Cluster, len(info.Attempts), len(a.got()))
	}

	_, addr = startProcessor(t, fallbackProcessor("model_unknown", true))
	px = startProxy(t, testBootstrapParams(t, addr, p))
	resp, _ = do(t, "POST", px.url("/v1/x"), `{}`)
	if info := px.nextInfo(t); resp.StatusCode != 503 || info.ResponseCodeDetails != "cluster_not_found" || len(info.Attempts) != 0 {
		t.Errorf("unknown cluster: %d %q, %d attempts", resp.StatusCode, info.ResponseCodeDetails, len(info.Attempts))
	}
}

// TestRouteHeaderMatchFirstWins: routes are tried in order; a header route placed before the
// catch-all wins only when its header matches exactly (case-sensitive).
func TestRouteHeaderMatchFirstWins(t *testing.T) {
	hit := &recorder{answer: statuses(201)}
	other := &recorder{answer: statuses(200)}
	_, addr := startProcessor(t, replyEach(routeTo("model_1")))
	b := testBootstrap(t, addr, startUpstream(t, hit.handler), startUpstream(t, other.handler))
	editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
		vh := h.GetRouteConfig().GetVirtualHosts()[0]
		r := &routev3.Route{
			Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers: []*routev3.HeaderMatcher{{Name: "X-Pick", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
					StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a,b"}},
				}}},
			},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "model_0"}}},
		}
		vh.Routes = append([]*routev3.Route{r}, vh.Routes...)
	})
	px := startProxy(t, b)
	for _, tc := range []struct {
		hdr  []string
		want int
	}{
		{[]string{"x-pick", "a,b"}, 201},
		{[]string{"x-pick", "A,B"}, 200},
		{[]string{"x-pick", "a"}, 200},
		{nil, 200},
	} {
		resp, _ := do(t, "GET", px.url("/v1/x"), "", tc.hdr...)
		px.nextInfo(t)
		if resp.StatusCode != tc.want {
			t.Errorf("headers %q: status %d, want %d", tc.hdr, resp.StatusCode, tc.want)
		}
	}
}

// TestRouteHeaderMatcherRefusals: header matchers other than string_match exact are refused.
func TestRouteHeaderMatcherRefusals(t *testing.T) {
	_, addr := startProcessor(t, replyEach(continueAll))
	for name, hm := range map[string]*routev3.HeaderMatcher{
		"present": {Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}},
		"prefix": {Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "a"}}}},
		"name only": {Name: "x"},
		"invert": {Name: "x", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a"}}}},
	} {
		b := testBootstrap(t, addr, upstream{host: "127.0.0.1", port: 1})
		editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
			r := h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0]
			r.GetMatch().Headers = []*routev3.HeaderMatcher{hm}
		})
		if _, err := standin.New(b, standin.Options{}, testLogger(t)); err == nil || !strings.Contains(err.Error(), "headers[0]") {
			t.Errorf("%s: New error = %v", name, err)
		}
	}
}
