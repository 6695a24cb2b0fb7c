package extproc

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/extproc/catalog"
)

// TestContractWithRenderedBootstrap drives extproc with what the bootstrap rendered from the same
// catalog tells Envoy, read from the rendered configuration rather than from envoy/contract: the
// cluster header extproc sets matches a route of a cluster with the upstream filters; its
// metadata is in the namespace the filters receive and forward and holds every key the route's
// rate limits read; an attempt built from the upstream filter's request_attributes (the
// endpoint's metadata, Envoy's request id) and forwarded metadata is answered; the attempt's
// content length is where header_mutation reads it; the token count is where hits_addend reads
// it; the management route is reached and rate-limited the same way.
func TestContractWithRenderedBootstrap(t *testing.T) {
	h := newHarness(t)
	env := map[string]string{"OPENAI_API_KEY": "sk-openai", "EU_KEY": "sk-eu", "ANTHROPIC_API_KEY": "sk-ant"}
	cat, err := catalog.Load("testdata/catalog.yaml", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	p, err := bootstrap.FromCatalog(cat, "127.0.0.1:8080", "127.0.0.1:50051",
		bootstrap.WithRateLimit("127.0.0.1:50052"), bootstrap.WithManagement("127.0.0.1:8090"))
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := bootstrap.Render(p)
	if err != nil {
		t.Fatal(err)
	}
	y, err := bootstrap.Marshal(rendered)
	if err != nil {
		t.Fatal(err)
	}
	env2 := readEnvoy(t, y)
	const envoyRequestID = "0d6f2c1e-envoy"

	// The router filter's stream, with the attributes its ext_proc asks for.
	router := h.open(t)
	router.send(&extprocv3.ProcessingRequest{
		Request:    &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(chatHeaders()...)}},
		Attributes: attributes(t, env2.routerExtProc.GetRequestAttributes(), envoyRequestID, nil),
	})
	routed := router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`)
	route := env2.routeFor(t, routed.GetRequestBody().GetResponse().GetHeaderMutation())
	cluster := env2.clusters[route.GetRoute().GetCluster()]
	if cluster == nil || route.GetRoute().GetRetryPolicy() == nil {
		t.Fatalf("the routed cluster %q is not a rendered model cluster with retries", route.GetRoute().GetCluster())
	}
	received := checkNamespaces(t, "router reply", routed.GetDynamicMetadata(), env2.routerExtProc.GetMetadataOptions().GetReceivingNamespaces().GetUntyped())
	env2.checkRateLimitsRead(t, route, received)

	// The first attempt, on the cluster's priority 0 endpoint, as its upstream filters see it.
	up := env2.upstreamFilters(t, cluster)
	endpoint := cluster.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetMetadata()
	forwarded := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	for _, ns := range up.extProc.GetMetadataOptions().GetForwardingNamespaces().GetUntyped() {
		if s := received[ns]; s != nil {
			forwarded.FilterMetadata[ns] = s
		}
	}
	attempt := h.open(t).send(&extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: headerMap(":method", "POST", ":path", "/v1/chat/completions", "content-type", "application/json"),
		}},
		Attributes:      attributes(t, up.extProc.GetRequestAttributes(), envoyRequestID, endpoint),
		MetadataContext: forwarded,
	})
	cr := attempt.GetRequestHeaders().GetResponse()
	body := cr.GetBodyMutation().GetBody()
	if cr.GetStatus() != extprocv3.CommonResponse_CONTINUE_AND_REPLACE || len(body) == 0 {
		t.Fatalf("the attempt built from the rendered upstream filter was not translated: %v", attempt)
	}
	attemptMD := checkNamespaces(t, "attempt reply", attempt.GetDynamicMetadata(), up.extProc.GetMetadataOptions().GetReceivingNamespaces().GetUntyped())
	if got := metadataValue(t, attemptMD, up.contentLength); got.GetStringValue() != strconv.Itoa(len(body)) {
		t.Errorf("header_mutation reads %s = %v; the attempt replaced a %d-byte body", up.contentLength, got, len(body))
	}

	// The response: the token count is where hits_addend reads it.
	router.responseHeaders(false, ":status", "200", "content-type", "application/json")
	rb := router.responseBody([]byte(`{"id":"c","object":"chat.completion","model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`), true)
	final := checkNamespaces(t, "response reply", rb.GetDynamicMetadata(), env2.routerExtProc.GetMetadataOptions().GetReceivingNamespaces().GetUntyped())
	for _, ref := range env2.hitsAddends(t, route) {
		if got := metadataValue(t, final, ref); got.GetNumberValue() != 4 {
			t.Errorf("hits_addend reads %s = %v, want the response's 4 tokens", ref, got)
		}
	}
	h.ledger.waitSettled(t)

	// The management API: its route, and the keys of its own rate limit.
	mgmt := h.open(t).requestHeaders(true, ":method", "GET", ":path", "/v1/management/balance", "authorization", "Bearer tg_mgmt")
	mroute := env2.routeFor(t, mgmt.GetRequestHeaders().GetResponse().GetHeaderMutation())
	if c := mroute.GetRoute().GetCluster(); env2.allClusters[c] == nil || mroute.GetRoute().GetRetryPolicy() != nil {
		t.Errorf("management requests reach route %v", mroute)
	}
	env2.checkRateLimitsRead(t, mroute, checkNamespaces(t, "management reply", mgmt.GetDynamicMetadata(), env2.routerExtProc.GetMetadataOptions().GetReceivingNamespaces().GetUntyped()))
}

// envoyConfig is what the test reads back from a rendered bootstrap.
type envoyConfig struct {
	routerExtProc *extprocfilterv3.ExternalProcessor
	routes        []*routev3.Route
	// clusters are the clusters with upstream filters; allClusters every one.
	clusters, allClusters map[string]*clusterv3.Cluster
}

func readEnvoy(t *testing.T, y []byte) *envoyConfig {
	t.Helper()
	b, err := bootstrap.Load(y)
	if err != nil {
		t.Fatal(err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	e := &envoyConfig{routes: hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes(), clusters: map[string]*clusterv3.Cluster{}, allClusters: map[string]*clusterv3.Cluster{}}
	for _, f := range hcm.GetHttpFilters() {
		var ep extprocfilterv3.ExternalProcessor
		if f.GetTypedConfig().UnmarshalTo(&ep) == nil {
			e.routerExtProc = &ep
		}
	}
	if e.routerExtProc == nil {
		t.Fatal("no ext_proc filter")
	}
	for _, c := range clustersOf(b) {
		e.allClusters[c.GetName()] = c
		if len(c.GetTypedExtensionProtocolOptions()) > 0 && c.GetOutlierDetection() != nil {
			e.clusters[c.GetName()] = c
		}
	}
	return e
}

func clustersOf(b *bootstrapv3.Bootstrap) []*clusterv3.Cluster {
	return b.GetStaticResources().GetClusters()
}

// routeFor is the first route whose header matchers all match the headers m sets, as Envoy
// re-matches the table once the route cache is cleared.
func (e *envoyConfig) routeFor(t *testing.T, m *extprocv3.HeaderMutation) *routev3.Route {
	t.Helper()
	set, _ := mutations(m)
	for _, r := range e.routes {
		hs := r.GetMatch().GetHeaders()
		if len(hs) == 0 {
			continue
		}
		matched := true
		for _, hm := range hs {
			if v, ok := set[hm.GetName()]; !ok || v != hm.GetStringMatch().GetExact() {
				matched = false
			}
		}
		if matched {
			return r
		}
	}
	t.Fatalf("no rendered route matches the headers extproc set: %v", set)
	return nil
}

// checkNamespaces checks that every namespace of md is one Envoy accepts, and returns md's
// namespaces.
func checkNamespaces(t *testing.T, what string, md *structpb.Struct, accepted []string) map[string]*structpb.Struct {
	t.Helper()
	out := map[string]*structpb.Struct{}
	for ns, v := range md.GetFields() {
		found := false
		for _, a := range accepted {
			found = found || a == ns
		}
		if !found {
			t.Errorf("%s: metadata namespace %q is not among %v, so Envoy drops it", what, ns, accepted)
		}
		out[ns] = v.GetStructValue()
	}
	return out
}

// checkRateLimitsRead checks that every metadata key the route's rate limits read before the
// response is present, as a non-empty string, in md.
func (e *envoyConfig) checkRateLimitsRead(t *testing.T, r *routev3.Route, md map[string]*structpb.Struct) {
	t.Helper()
	var pr ratelimitv3.RateLimitPerRoute
	if err := r.GetTypedPerFilterConfig()["envoy.filters.http.ratelimit"].UnmarshalTo(&pr); err != nil {
		t.Fatalf("route %s: %v", r.GetName(), err)
	}
	read := 0
	for _, l := range pr.GetRateLimits() {
		for _, a := range l.GetActions() {
			mk := a.GetMetadata().GetMetadataKey()
			if mk == nil {
				continue
			}
			read++
			v := md[mk.GetKey()].GetFields()[mk.GetPath()[0].GetKey()]
			if v.GetStringValue() == "" {
				t.Errorf("route %s: a rate limit reads %s:%s, which extproc did not write", r.GetName(), mk.GetKey(), mk.GetPath()[0].GetKey())
			}
		}
	}
	if read == 0 {
		t.Errorf("route %s: no rate limit reads extproc's metadata", r.GetName())
	}
}

// dynamicMetadataRE reads Envoy's %DYNAMIC_METADATA(ns:key)% formatter.
var dynamicMetadataRE = regexp.MustCompile(`^%DYNAMIC_METADATA\(([^:)]+):([^:)]+)\)%$`)

// hitsAddends are the ns:key the route's apply_on_stream_done rate limits read.
func (e *envoyConfig) hitsAddends(t *testing.T, r *routev3.Route) []string {
	t.Helper()
	var pr ratelimitv3.RateLimitPerRoute
	if err := r.GetTypedPerFilterConfig()["envoy.filters.http.ratelimit"].UnmarshalTo(&pr); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range pr.GetRateLimits() {
		if f := l.GetHitsAddend().GetFormat(); f != "" {
			if !dynamicMetadataRE.MatchString(f) {
				t.Fatalf("hits_addend %q", f)
			}
			out = append(out, strings.Trim(strings.TrimPrefix(f, "%DYNAMIC_METADATA("), ")%"))
		}
	}
	if len(out) == 0 {
		t.Fatal("no hits_addend reads extproc's metadata")
	}
	return out
}

// metadataValue is md's value at "ns:key".
func metadataValue(t *testing.T, md map[string]*structpb.Struct, ref string) *structpb.Value {
	t.Helper()
	ns, key, ok := strings.Cut(ref, ":")
	if !ok {
		t.Fatalf("metadata reference %q", ref)
	}
	return md[ns].GetFields()[key]
}

// upstreamFilters is what a model cluster runs per attempt.
type upstreamFilters struct {
	extProc *extprocfilterv3.ExternalProcessor
	// contentLength is the ns:key from which header_mutation sets content-length.
	contentLength string
}

func (e *envoyConfig) upstreamFilters(t *testing.T, c *clusterv3.Cluster) upstreamFilters {
	t.Helper()
	var opts upstreamhttpv3.HttpProtocolOptions
	for _, a := range c.GetTypedExtensionProtocolOptions() {
		if err := a.UnmarshalTo(&opts); err != nil {
			t.Fatal(err)
		}
	}
	var u upstreamFilters
	for _, f := range opts.GetHttpFilters() {
		var ep extprocfilterv3.ExternalProcessor
		var hm headermutationv3.HeaderMutation
		switch {
		case f.GetTypedConfig().UnmarshalTo(&ep) == nil:
			u.extProc = &ep
		case f.GetTypedConfig().UnmarshalTo(&hm) == nil:
			for _, m := range hm.GetMutations().GetRequestMutations() {
				if h := m.GetAppend().GetHeader(); h.GetKey() == "content-length" && dynamicMetadataRE.MatchString(h.GetValue()) {
					u.contentLength = strings.Trim(strings.TrimPrefix(h.GetValue(), "%DYNAMIC_METADATA("), ")%")
				}
			}
		}
	}
	if u.extProc == nil || u.contentLength == "" {
		t.Fatalf("cluster %s: upstream filters %v", c.GetName(), opts.GetHttpFilters())
	}
	return u
}

// hostMetadataRE reads the one form of upstream host attribute the bootstrap may use.
var hostMetadataRE = regexp.MustCompile(`^xds\.upstream_host_metadata\.filter_metadata\['([^']+)'\]\['([^']+)'\]$`)

// attributes evaluates the filter's request_attributes as Envoy would for this request: its id,
// and the chosen endpoint's metadata (nil on the router filter).
func attributes(t *testing.T, exprs []string, requestID string, endpoint *corev3.Metadata) map[string]*structpb.Struct {
	t.Helper()
	fields := map[string]*structpb.Value{}
	for _, expr := range exprs {
		switch m := hostMetadataRE.FindStringSubmatch(expr); {
		case expr == "request.id":
			fields[expr] = structpb.NewStringValue(requestID)
		case m != nil && endpoint != nil:
			fields[expr] = endpoint.GetFilterMetadata()[m[1]].GetFields()[m[2]]
		default:
			t.Fatalf("request attribute %q: not one Envoy evaluates here", expr)
		}
	}
	// Envoy files the attributes under the ext_proc filter's canonical name, whatever the
	// filter instance is called (ext_proc.cc).
	return map[string]*structpb.Struct{contract.ExtProcAttributesKey: {Fields: fields}}
}
