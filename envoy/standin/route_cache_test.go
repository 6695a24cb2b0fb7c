package standin_test

import (
	"io"
	"net/http"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate/tollgate/envoy/contract"
)

// TestClearRouteCache: the route, and the cluster cluster_header names, are resolved when
// the request arrives and cached. clear_route_cache re-resolves them only when the same
// reply carries a header mutation (request side, per route_cache_action); a missing or
// unknown cluster is 503.
//
// Envoy: processor_state.cc DecodingProcessorState::clearRouteCache; ext_proc.cc
// decodeHeaders (mergePerRouteConfig caches the route); router config_impl.cc
// pickClusterViaClusterHeader; docs/envoy.md section 1.7.
func TestClearRouteCache(t *testing.T) {
	tests := []struct {
		name          string
		clientCluster string
		on            string // reply that carries the change
		setCluster    string // "" sets no header
		clear         bool
		action        extprocv3.ExternalProcessor_RouteCacheAction
		wantStatus    int
		wantBody      string
		wantIgnored   uint64
		wantDisabled  uint64
	}{
		{"request_body reply re-routes", "", "request_body", "model_1", true, 0, 200, "one", 0, 0},
		{"request_headers reply re-routes", "", "request_headers", "model_1", true, 0, 200, "one", 0, 0},
		{"clear without header mutation is ignored", "", "request_body", "", true, 0, 503, "", 1, 0},
		{"header mutation without clear keeps the cached route", "", "request_body", "model_1", false, 0, 503, "", 0, 0},
		{"cached route from the client's header", "model_0", "request_body", "model_1", false, 0, 200, "zero", 0, 0},
		{"re-routed away from the client's header", "model_0", "request_body", "model_1", true, 0, 200, "one", 0, 0},
		{"unknown cluster", "", "request_body", "model_9", true, 0, 503, "", 0, 0},
		{"CLEAR clears on any header mutation", "", "request_body", "model_1", false, extprocv3.ExternalProcessor_CLEAR, 200, "one", 0, 0},
		{"RETAIN never clears", "", "request_body", "model_1", true, extprocv3.ExternalProcessor_RETAIN, 503, "", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zero := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "zero") })
			one := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "one") })
			_, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				if kinds([]*extprocsvc.ProcessingRequest{m})[0] != tt.on {
					return continueAll(m)
				}
				cr := &extprocsvc.CommonResponse{ClearRouteCache: tt.clear}
				if tt.setCluster != "" {
					cr.HeaderMutation = &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader(contract.ClusterHeader, tt.setCluster)}}
				}
				return matching(m, cr)
			}))
			b := testBootstrap(t, addr, zero, one)
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) { ep.RouteCacheAction = tt.action })
			px := startProxy(t, b)
			var hdr []string
			if tt.clientCluster != "" {
				hdr = []string{contract.ClusterHeader, tt.clientCluster}
			}
			resp, body := do(t, http.MethodPost, px.url("/v1/chat"), "{}", hdr...)
			if resp.StatusCode != tt.wantStatus || body != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			st := px.Stats()
			if st.ClearRouteCacheIgnored != tt.wantIgnored || st.ClearRouteCacheDisabled != tt.wantDisabled {
				t.Errorf("clear_route_cache_ignored = %d, disabled = %d", st.ClearRouteCacheIgnored, st.ClearRouteCacheDisabled)
			}
		})
	}
}
