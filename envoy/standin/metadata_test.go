package standin_test

import (
	"net/http"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestDynamicMetadata: dynamic_metadata is accepted on every reply kind, only for the
// namespaces in receiving_namespaces (none listed: all dropped), merged key by key into
// the request's metadata, where later filters (and StreamInfo) read it; namespaces in
// forwarding_namespaces are sent back in metadata_context.
//
// Envoy: ext_proc.cc Filter::setDynamicMetadata, addDynamicMetadata; StreamInfo
// setDynamicMetadata merges; docs/envoy.md section 1.8.
func TestDynamicMetadata(t *testing.T) {
	tests := []struct {
		name       string
		receiving  []string
		forwarding []string
		want       map[string]map[string]string
	}{
		{"receiving namespace kept and merged", []string{"tollgate"}, nil,
			map[string]map[string]string{"tollgate": {"phase": "response_body", "org_id": "org_1", "model": "m"}}},
		{"none listed drops everything", nil, nil, map[string]map[string]string{}},
		{"several namespaces", []string{"tollgate", "other"}, []string{"tollgate"},
			map[string]map[string]string{"tollgate": {"phase": "response_body", "org_id": "org_1", "model": "m"}, "other": {"k": "v"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
			proc, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				r := continueAll(m)
				phase := kinds([]*extprocsvc.ProcessingRequest{m})[0]
				fields := map[string]any{"phase": phase}
				switch phase {
				case "request_headers":
					fields["org_id"] = "org_1"
				case "request_body":
					fields["model"] = "m"
				}
				r.DynamicMetadata = structOf(t, map[string]any{"tollgate": fields, "other": map[string]any{"k": "v"}})
				return r
			}))
			b := testBootstrap(t, addr, up)
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
				ep.MetadataOptions = &extprocv3.MetadataOptions{
					ReceivingNamespaces:  &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: tt.receiving},
					ForwardingNamespaces: &extprocv3.MetadataOptions_MetadataNamespaces{Untyped: tt.forwarding},
				}
			})
			px := startProxy(t, b)
			if resp, body := do(t, http.MethodPost, px.url("/"), "{}", "x-tollgate-cluster", "model_0"); resp.StatusCode != 200 {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			got := px.nextInfo(t).DynamicMetadata
			if len(got) != len(tt.want) {
				t.Fatalf("namespaces = %v, want %v", got, tt.want)
			}
			for ns, kv := range tt.want {
				for k, v := range kv {
					if g := got[ns].GetFields()[k].GetStringValue(); g != v {
						t.Errorf("%s.%s = %q, want %q", ns, k, g, v)
					}
				}
			}
			// The last message carried what the earlier replies wrote, for forwarded
			// namespaces only.
			msgs := proc.messages()
			fwd := msgs[len(msgs)-1].GetMetadataContext().GetFilterMetadata()
			if len(tt.forwarding) == 0 && len(fwd) != 0 {
				t.Errorf("metadata_context = %v, want none forwarded", fwd)
			}
			if len(tt.forwarding) > 0 {
				want, _ := structpb.NewValue("org_1")
				if fwd["tollgate"].GetFields()["org_id"].GetStringValue() != want.GetStringValue() || fwd["other"] != nil {
					t.Errorf("metadata_context = %v", fwd)
				}
			}
		})
	}
}
