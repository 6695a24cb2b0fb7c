package standin_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/standin"
)

// TestRateLimitRefusals: Tollgate's rendered ratelimit configuration is accepted; any
// ratelimit field, action, hits_addend format or placement the stand-in does not implement
// is refused with its path, never ignored.
func TestRateLimitRefusals(t *testing.T) {
	base := rateLimitBootstrap(t, "127.0.0.1:50051", "127.0.0.1:50052", bootstrap.RateLimit{}, upstream{host: "127.0.0.1", port: 9})
	if _, err := standin.New(proto.Clone(base).(*bootstrapv3.Bootstrap), standin.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("Tollgate's ratelimit bootstrap refused: %v", err)
	}
	editFilter := func(t *testing.T, b *bootstrapv3.Bootstrap, edit func(*ratelimitv3.RateLimit)) {
		editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
			rl := &ratelimitv3.RateLimit{}
			if err := h.HttpFilters[1].GetTypedConfig().UnmarshalTo(rl); err != nil {
				t.Fatal(err)
			}
			edit(rl)
			a, err := anypb.New(rl)
			if err != nil {
				t.Fatal(err)
			}
			h.HttpFilters[1].GetTypedConfig().Value = a.Value
		})
	}
	perRoute := func(limits ...*routev3.RateLimit) func(*testing.T, *bootstrapv3.Bootstrap) {
		return func(t *testing.T, b *bootstrapv3.Bootstrap) {
			setRateLimitPerRoute(t, b, &ratelimitv3.RateLimitPerRoute{RateLimits: limits})
		}
	}
	generic := &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
		GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorValue: "v"}}}
	tests := []struct {
		name string
		edit func(*testing.T, *bootstrapv3.Bootstrap)
		want string
	}{
		{"filter-level rate_limits", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editFilter(t, b, func(rl *ratelimitv3.RateLimit) {
				rl.RateLimits = []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{generic}}}
			})
		}, "RateLimit).rate_limits: field not implemented"},
		{"retry-after header", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editFilter(t, b, func(rl *ratelimitv3.RateLimit) { rl.EnableRetryAfterHeader = true })
		}, "enable_retry_after_header: field not implemented"},
		{"resource exhausted", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editFilter(t, b, func(rl *ratelimitv3.RateLimit) { rl.RateLimitedAsResourceExhausted = true })
		}, "rate_limited_as_resource_exhausted: field not implemented"},
		{"remote_address action", perRoute(&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{{
			ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}}}}}),
			"actions[0].remote_address: field not implemented"},
		{"route-entry metadata", perRoute(&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{{
			ActionSpecifier: &routev3.RateLimit_Action_Metadata{Metadata: &routev3.RateLimit_Action_MetaData{
				DescriptorKey: "k", MetadataKey: &metadatav3.MetadataKey{Key: "ns", Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: "x"}}}},
				Source: routev3.RateLimit_Action_MetaData_ROUTE_ENTRY,
			}}}}}), "metadata.source ROUTE_ENTRY: only DYNAMIC"},
		{"hits_addend format with text", perRoute(&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{generic},
			HitsAddend: &routev3.RateLimit_HitsAddend{Format: "%DYNAMIC_METADATA(tollgate:total_tokens)% tokens%"}}),
			"hits_addend.format"},
		{"hits_addend other operator", perRoute(&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{generic},
			HitsAddend: &routev3.RateLimit_HitsAddend{Format: "%REQ(x-cost)%"}}),
			"hits_addend.format"},
		{"per-route vh_rate_limits", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			setRateLimitPerRoute(t, b, &ratelimitv3.RateLimitPerRoute{VhRateLimits: ratelimitv3.RateLimitPerRoute_INCLUDE})
		}, "vh_rate_limits: field not implemented"},
		{"per-filter config for an unknown filter", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
				r := h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0]
				r.TypedPerFilterConfig["envoy.filters.http.other"] = r.TypedPerFilterConfig[bootstrap.RateLimitFilterName]
			})
		}, "typed_per_filter_config[envoy.filters.http.other]: no filter of that name"},
		{"ratelimit before ext_proc", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters[0], h.HttpFilters[1] = h.HttpFilters[1], h.HttpFilters[0]
			})
		}, "ratelimit filter only after ext_proc"},
		{"transport api AUTO", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editFilter(t, b, func(rl *ratelimitv3.RateLimit) { rl.RateLimitService.TransportApiVersion = 0 })
		}, "Envoy requires V3"},
		{"unknown RLS cluster", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editFilter(t, b, func(rl *ratelimitv3.RateLimit) {
				rl.RateLimitService.GetGrpcService().GetEnvoyGrpc().ClusterName = "nope"
			})
		}, `cluster_name "nope": no such cluster`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := proto.Clone(base).(*bootstrapv3.Bootstrap)
			tt.edit(t, b)
			_, err := standin.New(b, standin.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}
