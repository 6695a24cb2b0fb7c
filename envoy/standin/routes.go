package standin

import (
	"errors"
	"fmt"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// routeTable is an inline RouteConfiguration.
type routeTable struct {
	vhosts []vhost
}

type vhost struct {
	name    string
	domains []string
	routes  []*route
}

type route struct {
	name            string
	prefix, path    string
	headers         []headerMatch // all must match
	cluster         string
	clusterHeader   string
	notFoundCode    int
	timeout         time.Duration // 0: disabled
	autoHostRewrite bool
	perFilter       map[string]*anypb.Any // typed_per_filter_config, by filter name
	rateLimit       *rateLimitPolicy      // the ratelimit filter's RateLimitPerRoute
	retry           *retryPolicy          // nil: no retry_policy
}

// headerMatch is a HeaderMatcher with an exact string_match: the header's values, joined
// with "," when it occurs more than once, must equal value; an absent header never matches.
//
// Envoy: source/common/http/header_utility.cc HeaderUtility::matchHeaders and
// HeaderDataBaseImpl::matchesHeaders (HeaderUtility::getAllOfHeaderAsString joins repeated
// values with ","; absent and not treat_missing_header_as_empty is no match), with
// StringHeaderData → Matchers::StringMatcherImpl exact (case-sensitive).
type headerMatch struct {
	name, value string
}

func (m headerMatch) matches(h *headerMap) bool {
	var vals []string
	for _, e := range h.entries {
		if e.key == m.name {
			vals = append(vals, e.value)
		}
	}
	return len(vals) > 0 && strings.Join(vals, ",") == m.value
}

// routeMatch is a resolved route: Envoy resolves cluster_header when it matches the route,
// and caches both until the route cache is cleared.
type routeMatch struct {
	route   *route
	cluster string
}

func parseRoutes(rc *routev3.RouteConfiguration, clusters map[string]*clusterConfig) (*routeTable, error) {
	var errs []error
	t := &routeTable{}
	for vi, vh := range rc.GetVirtualHosts() {
		v := vhost{name: vh.GetName(), domains: vh.GetDomains()}
		for ri, r := range vh.GetRoutes() {
			where := fmt.Sprintf("virtual_hosts[%d].routes[%d]", vi, ri)
			a := r.GetRoute()
			if a == nil {
				errs = append(errs, fmt.Errorf("%s: only route actions are implemented by the stand-in", where))
				continue
			}
			rt := &route{
				name:            r.GetName(),
				prefix:          r.GetMatch().GetPrefix(),
				path:            r.GetMatch().GetPath(),
				cluster:         a.GetCluster(),
				clusterHeader:   strings.ToLower(a.GetClusterHeader()),
				timeout:         defaultRouteTimeout,
				autoHostRewrite: a.GetAutoHostRewrite().GetValue(),
				perFilter:       r.GetTypedPerFilterConfig(),
			}
			if _, ok := r.GetMatch().GetPathSpecifier().(*routev3.RouteMatch_Prefix); !ok && rt.path == "" {
				if _, ok := r.GetMatch().GetPathSpecifier().(*routev3.RouteMatch_Path); !ok {
					errs = append(errs, fmt.Errorf("%s.match: prefix or path is required", where))
				}
			}
			for hi, hm := range r.GetMatch().GetHeaders() {
				sm := hm.GetStringMatch()
				if _, ok := sm.GetMatchPattern().(*matcherv3.StringMatcher_Exact); !ok {
					errs = append(errs, fmt.Errorf("%s.match.headers[%d]: only string_match with exact is implemented by the stand-in", where, hi))
					continue
				}
				if hm.GetName() == "" {
					errs = append(errs, fmt.Errorf("%s.match.headers[%d].name: required", where, hi))
					continue
				}
				rt.headers = append(rt.headers, headerMatch{name: strings.ToLower(hm.GetName()), value: sm.GetExact()})
			}
			if rt.cluster == "" && rt.clusterHeader == "" {
				errs = append(errs, fmt.Errorf("%s.route: cluster or cluster_header is required", where))
			}
			if rt.cluster != "" && clusters[rt.cluster] == nil {
				errs = append(errs, fmt.Errorf("%s.route.cluster %q: no such cluster", where, rt.cluster))
			}
			switch a.GetClusterNotFoundResponseCode() {
			case routev3.RouteAction_SERVICE_UNAVAILABLE:
				rt.notFoundCode = 503
			case routev3.RouteAction_NOT_FOUND:
				rt.notFoundCode = 404
			case routev3.RouteAction_INTERNAL_SERVER_ERROR:
				rt.notFoundCode = 500
			}
			if d := a.GetTimeout(); d != nil {
				rt.timeout = d.AsDuration()
			}
			rp, err := parseRetryPolicy(a.GetRetryPolicy())
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.route.retry_policy: %w", where, err))
			}
			rt.retry = rp
			v.routes = append(v.routes, rt)
		}
		t.vhosts = append(t.vhosts, v)
	}
	return t, errors.Join(errs...)
}

// bindPerFilterConfig parses each route's typed_per_filter_config for the filter it names.
// Envoy resolves it by the filter's config name (Http::Utility::
// resolveMostSpecificPerFilterConfig) and ignores entries no filter asks for; the stand-in
// refuses those rather than ignore configuration.
func (t *routeTable) bindPerFilterConfig(rl *rateLimitConfig) error {
	var errs []error
	for vi := range t.vhosts {
		for ri, r := range t.vhosts[vi].routes {
			for name, cfg := range r.perFilter {
				where := fmt.Sprintf("virtual_hosts[%d].routes[%d].typed_per_filter_config[%s]", vi, ri, name)
				if rl == nil || name != rl.name {
					errs = append(errs, fmt.Errorf("%s: no filter of that name takes per-route configuration in the stand-in", where))
					continue
				}
				pol, err := parseRateLimitPerRoute(cfg)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", where, err))
				}
				r.rateLimit = pol
			}
		}
	}
	return errors.Join(errs...)
}

// match picks the virtual host for :authority (exact, then *suffix, then prefix*, then *)
// and its first route matching :path and all its header matchers, resolving cluster_header
// from h.
//
// Envoy: source/common/router/config_impl.cc RouteMatcher::findVirtualHost,
// VirtualHostImpl::getRouteFromEntries (routes in order, the first match wins),
// RouteEntryImplBase::matchRoute (headers through Http::HeaderUtility::matchHeaders) and
// RouteEntryImplBase::pickClusterViaClusterHeader (first value of the header).
func (t *routeTable) match(h *headerMap) *routeMatch {
	authority, _ := h.get(":authority")
	path, _ := h.get(":path")
	v := t.findVirtualHost(strings.ToLower(authority))
	if v == nil {
		return nil
	}
	pathOnly, _, _ := strings.Cut(path, "?")
	for _, r := range v.routes {
		pathOK := (r.path != "" && pathOnly == r.path) || (r.path == "" && strings.HasPrefix(path, r.prefix))
		if pathOK && headersMatch(r.headers, h) {
			m := &routeMatch{route: r, cluster: r.cluster}
			if r.clusterHeader != "" {
				m.cluster, _ = h.get(r.clusterHeader)
			}
			return m
		}
	}
	return nil
}

func headersMatch(ms []headerMatch, h *headerMap) bool {
	for _, m := range ms {
		if !m.matches(h) {
			return false
		}
	}
	return true
}

func (t *routeTable) findVirtualHost(authority string) *vhost {
	var suffix, prefix, star *vhost
	suffixLen, prefixLen := 0, 0
	for i := range t.vhosts {
		v := &t.vhosts[i]
		for _, d := range v.domains {
			d = strings.ToLower(d)
			switch {
			case d == authority:
				return v
			case d == "*":
				if star == nil {
					star = v
				}
			case strings.HasPrefix(d, "*") && strings.HasSuffix(authority, d[1:]) && len(d) > suffixLen:
				suffix, suffixLen = v, len(d)
			case strings.HasSuffix(d, "*") && strings.HasPrefix(authority, d[:len(d)-1]) && len(d) > prefixLen:
				prefix, prefixLen = v, len(d)
			}
		}
	}
	switch {
	case suffix != nil:
		return suffix
	case prefix != nil:
		return prefix
	}
	return star
}
