package standin_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	ratelimitconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/standin"
)

// TestNewRefusesWhatItDoesNotImplement: the stand-in never silently ignores configuration;
// each refusal names the field (or filter, or mode).
func TestNewRefusesWhatItDoesNotImplement(t *testing.T) {
	base := testBootstrap(t, "127.0.0.1:50051", upstream{host: "127.0.0.1", port: 9})
	rl, err := anypb.New(&ratelimitv3.RateLimit{
		Domain: "tollgate",
		// Filter-level rate_limits: Tollgate keeps its entries in RateLimitPerRoute.
		RateLimits: []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{
			ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorValue: "v"}},
		}}}},
		RateLimitService: &ratelimitconfigv3.RateLimitServiceConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: bootstrap.ExtProcClusterName},
			}},
			TransportApiVersion: corev3.ApiVersion_V3,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(t *testing.T, b *bootstrapv3.Bootstrap)
		want string
	}{
		{"ratelimit filter", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = append([]*hcmv3.HttpFilter{h.HttpFilters[0], {
					Name: "envoy.filters.http.ratelimit", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: rl},
				}}, h.HttpFilters[1:]...)
			})
		}, "http_filters[1].typed_config(envoy.extensions.filters.http.ratelimit.v3.RateLimit).rate_limits: field not implemented"},
		{"retry host predicate", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
				h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetRoute().RetryPolicy = &routev3.RetryPolicy{
					RetryOn: "5xx", RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}},
				}
			})
		}, "route.retry_policy.retry_host_predicate: field not implemented by the stand-in"},
		{"request body STREAMED", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
				ep.ProcessingMode.RequestBodyMode = extprocv3.ProcessingMode_STREAMED
			})
		}, "request_body_mode STREAMED: not implemented"},
		{"response body FULL_DUPLEX_STREAMED", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
				ep.ProcessingMode.ResponseBodyMode = extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED
				ep.ProcessingMode.ResponseTrailerMode = extprocv3.ProcessingMode_SEND
			})
		}, "response_body_mode FULL_DUPLEX_STREAMED: not implemented"},
		{"trailers", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
				ep.ProcessingMode.ResponseTrailerMode = extprocv3.ProcessingMode_SEND
			})
		}, "response_trailer_mode SEND: not implemented"},
		{"observability mode", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) { ep.ObservabilityMode = true })
		}, "ExternalProcessor).observability_mode: field not implemented"},
		{"request attributes", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) { ep.RequestAttributes = []string{"request.path"} })
		}, `request_attributes[0] "request.path": only request.id is implemented`},
		{"grpc timeout", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) { ep.GrpcService.Timeout = durationpb.New(time.Second) })
		}, "grpc_service.timeout: field not implemented"},
		{"google grpc", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
				ep.GrpcService = &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{
					GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "127.0.0.1:1", StatPrefix: "x"},
				}}
			})
		}, "grpc_service.google_grpc: field not implemented"},
		{"ext_proc on an HTTP/1 cluster", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			b.StaticResources.Clusters[0].TypedExtensionProtocolOptions = nil
		}, "the cluster must use HTTP/2"},
		{"lb policy", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			b.StaticResources.Clusters[1].LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		}, "clusters[1].lb_policy: field not implemented"},
		{"second listener", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			l := proto.Clone(b.StaticResources.Listeners[0]).(*listenerv3.Listener)
			l.Name = "second"
			b.StaticResources.Listeners = append(b.StaticResources.Listeners, l)
		}, "exactly one listener"},
		{"route to unknown cluster", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
				h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "nope"}
			})
		}, `route.cluster "nope": no such cluster`},
		{"STATIC cluster with a hostname", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			b.StaticResources.Clusters[1].ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
			b.StaticResources.Clusters[1].LoadAssignment.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress().Address = "localhost"
		}, `STATIC cluster endpoint "localhost": must be an IP address`},
		{"listener option", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			b.StaticResources.Listeners[0].ListenerFilters = []*listenerv3.ListenerFilter{{Name: "tls_inspector"}}
		}, "listeners[0].listener_filters: field not implemented"},
		{"hcm option", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editHCM(t, b, func(h *hcmv3.HttpConnectionManager) { h.Via = "tollgate" })
		}, "via: field not implemented"},
		{"internal cidr", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
				h.InternalAddressConfig.CidrRanges = []*corev3.CidrRange{{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(8)}}
			})
		}, "internal_address_config.cidr_ranges: field not implemented"},
		{"trusted hops", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editHCM(t, b, func(h *hcmv3.HttpConnectionManager) { h.XffNumTrustedHops = 1 })
		}, "xff_num_trusted_hops 1: only 0"},
		{"formatted initial metadata", func(t *testing.T, b *bootstrapv3.Bootstrap) {
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
				ep.GrpcService.InitialMetadata = []*corev3.HeaderValue{{Key: "x", Value: "%REQ(x)%"}}
			})
		}, "initial_metadata: [0]: a value with % (a header formatter) is not implemented"},
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

// TestNewAcceptsTollgateBootstrap: the rendered bootstrap, TLS clusters and all, is fully
// implemented; Start logs the banner; the admin interface answers /ready.
func TestNewAcceptsTollgateBootstrap(t *testing.T) {
	b, err := bootstrap.Render(bootstrap.Params{
		ExtProc:        bootstrap.Upstream{Host: "127.0.0.1", Port: 50051},
		UpstreamCAFile: writeCA(t, startTLSUpstream(t, nil)),
		Clusters: []bootstrap.Cluster{{Name: "model_a", Priorities: [][]bootstrap.Endpoint{
			{{Backend: "openai", Host: "api.openai.com", Port: 443, TLS: true, Weight: 2}},
			{{Backend: "mock", Host: "localhost", Port: 9000}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.GetStaticResources().GetListeners()[0].GetAddress().GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 0}
	b.GetAdmin().GetAddress().GetSocketAddress().PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 0}

	var logs bytes.Buffer
	p, err := standin.New(b, standin.Options{}, slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if !strings.Contains(p.Banner(), "DEVELOPMENT STAND-IN for Envoy, not a production proxy") {
		t.Errorf("Banner = %q", p.Banner())
	}
	px := startProxyFrom(t, p)
	resp, body := do(t, http.MethodGet, "http://"+px.AdminAddr()+"/ready", "")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != "LIVE" {
		t.Errorf("/ready = %d %q", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "DEVELOPMENT STAND-IN") || !strings.Contains(logs.String(), "split_seed=") {
		t.Errorf("start-up log lacks the banner or the split seed:\n%s", logs.String())
	}
}
