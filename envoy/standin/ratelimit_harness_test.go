package standin_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tollgate/tollgate/envoy/bootstrap"
	"github.com/tollgate/tollgate/envoy/contract"
)

// fakeRLS is an in-test rate limit service. It records every request before answering
// with fn.
type fakeRLS struct {
	rlsv3.UnimplementedRateLimitServiceServer
	fn    func(context.Context, *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error)
	calls chan *rlsv3.RateLimitRequest
}

func (f *fakeRLS) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	select {
	case f.calls <- req:
	default:
	}
	return f.fn(ctx, req)
}

// next waits, with a deadline, for the next recorded call.
func (f *fakeRLS) next(t *testing.T) *rlsv3.RateLimitRequest {
	t.Helper()
	select {
	case r := <-f.calls:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no rate limit call arrived")
		return nil
	}
}

// startRLS serves fn on a loopback port.
func startRLS(t *testing.T, fn func(context.Context, *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error)) (*fakeRLS, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRLS{fn: fn, calls: make(chan *rlsv3.RateLimitRequest, 64)}
	s := grpc.NewServer()
	rlsv3.RegisterRateLimitServiceServer(s, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return f, ln.Addr().String()
}

func rlsOK(context.Context, *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}, nil
}

// rateLimitBootstrap renders Tollgate's bootstrap with the ratelimit filter calling rlsAddr.
func rateLimitBootstrap(t *testing.T, extprocAddr, rlsAddr string, rl bootstrap.RateLimit, ups ...upstream) *bootstrapv3.Bootstrap {
	t.Helper()
	host, port, err := net.SplitHostPort(rlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	pn, _ := strconv.Atoi(port)
	rl.Service = bootstrap.Upstream{Host: host, Port: uint32(pn)}
	return testBootstrapParams(t, extprocAddr, bootstrap.Params{RateLimit: &rl}, ups...)
}

// setRateLimitPerRoute replaces the route's RateLimitPerRoute.
func setRateLimitPerRoute(t *testing.T, b *bootstrapv3.Bootstrap, pr *ratelimitv3.RateLimitPerRoute) {
	t.Helper()
	a, err := anypb.New(pr)
	if err != nil {
		t.Fatal(err)
	}
	editHCM(t, b, func(h *hcmv3.HttpConnectionManager) {
		h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].TypedPerFilterConfig[bootstrap.RateLimitFilterName] = a
	})
}

// identity is what extproc puts in its request_body reply.
type identity struct{ org, key, model string }

// tollgateReplies answers like extproc does for the rate limiter: the request_body reply
// routes to model_0 and sets the x-tollgate-* descriptor headers (empty ones left out);
// the reply to the last response_body message carries tollgate:total_tokens. Other
// messages get an empty reply.
func tollgateReplies(t *testing.T, id identity, totalTokens any) func(*extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
	return func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		switch {
		case m.GetRequestBody() != nil:
			set := []*corev3.HeaderValueOption{setHeader(contract.ClusterHeader, "model_0")}
			for k, v := range map[string]string{bootstrap.OrgHeader: id.org, bootstrap.KeyHeader: id.key, bootstrap.ModelHeader: id.model} {
				if v != "" {
					set = append(set, setHeader(k, v))
				}
			}
			r := matching(m, &extprocsvc.CommonResponse{
				HeaderMutation:  &extprocsvc.HeaderMutation{SetHeaders: set},
				ClearRouteCache: true,
			})
			// extproc also writes the identity as dynamic metadata, which the rate limits read.
			md := map[string]any{}
			for k, v := range map[string]string{contract.OrgIDKey: id.org, contract.KeyIDKey: id.key, contract.ModelKey: id.model} {
				if v != "" {
					md[k] = v
				}
			}
			r.DynamicMetadata = structOf(t, map[string]any{contract.MetadataNamespace: md})
			return r
		case m.GetResponseBody().GetEndOfStream():
			r := continueAll(m)
			r.DynamicMetadata = structOf(t, map[string]any{contract.MetadataNamespace: map[string]any{contract.TotalTokensKey: totalTokens}})
			return r
		}
		return continueAll(m)
	}
}

// describe renders descriptors as "k=v,k=v hits=N" ("hits=-" when unset), in order.
func describe(req *rlsv3.RateLimitRequest) []string {
	var out []string
	for _, d := range req.GetDescriptors() {
		var kv []string
		for _, e := range d.GetEntries() {
			kv = append(kv, e.GetKey()+"="+e.GetValue())
		}
		hits := "-"
		if d.GetHitsAddend() != nil {
			hits = fmt.Sprint(d.GetHitsAddend().GetValue())
		}
		out = append(out, strings.Join(kv, ",")+" hits="+hits)
	}
	return out
}

// countingUpstream answers 200 "ok", counts requests and keeps the last request headers.
func countingUpstream(t *testing.T, n *atomic.Int64, last *atomic.Pointer[http.Header]) upstream {
	return startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if last != nil {
			h := r.Header.Clone()
			last.Store(&h)
		}
		w.Write([]byte("ok"))
	})
}
