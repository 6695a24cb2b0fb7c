package standin_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// echoUpstream answers with the request body it received, prefixed by "upstream:".
func echoUpstream(t *testing.T) upstream {
	return startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "upstream:"+string(b))
	})
}

// TestReplyMustMatch: exactly one reply of the matching kind per message. A reply of the
// wrong kind (or with no kind) is spurious: fail closed with status_on_error (default 500),
// or, with failure_mode_allow, ignore the processor for the rest of the request.
//
// Envoy: ext_proc.cc Filter::onReceiveMessage (spurious handling, handleErrorResponse);
// processor_state.cc handleHeadersResponse returns FailedPrecondition.
func TestReplyMustMatch(t *testing.T) {
	wrongKind := func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		if m.GetRequestHeaders() != nil {
			return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_RequestBody{RequestBody: &extprocsvc.BodyResponse{}}}
		}
		return continueAll(m)
	}
	noKind := func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		return &extprocsvc.ProcessingResponse{}
	}
	tests := []struct {
		name       string
		reply      func(*extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse
		allow      bool
		statusCode typev3.StatusCode
		wantStatus int
		wantBody   string
	}{
		{"wrong kind fails closed", wrongKind, false, 0, 500, ""},
		{"empty reply fails closed", noKind, false, 0, 500, ""},
		{"status_on_error", wrongKind, false, typev3.StatusCode_ServiceUnavailable, 503, ""},
		{"failure_mode_allow ignores the processor", wrongKind, true, 0, 200, "upstream:hi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, addr := startProcessor(t, replyEach(tt.reply))
			b := testBootstrap(t, addr, echoUpstream(t))
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
				ep.FailureModeAllow = tt.allow
				if tt.statusCode != 0 {
					ep.StatusOnError = &typev3.HttpStatus{Code: tt.statusCode}
				}
			})
			px := startProxy(t, b)
			resp, body := do(t, http.MethodPost, px.url("/"), "hi", "x-tollgate-cluster", "model_0")
			if resp.StatusCode != tt.wantStatus || body != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			px.nextInfo(t)
			if n := len(proc.messages()); n != 1 {
				t.Errorf("processor got %d messages, want only request_headers (it is ignored afterwards)", n)
			}
			if px.Stats().SpuriousMsgsReceived != 1 {
				t.Errorf("stats = %+v", px.Stats())
			}
		})
	}
}

// TestMessageTimeout: a reply that does not come within message_timeout fails the request
// with 504, not through ext_proc's encode path; with failure_mode_allow the request goes on
// without the processor. A reply carrying override_message_timeout within
// max_message_timeout extends the wait once.
//
// Envoy: ext_proc.cc Filter::onMessageTimeout, onNewTimeout.
func TestMessageTimeout(t *testing.T) {
	tests := []struct {
		name       string
		allow      bool
		extend     bool
		wantStatus int
		wantBody   string
	}{
		{"fails closed with 504", false, false, 504, ""},
		{"failure_mode_allow", true, false, 200, "upstream:hi"},
		{"override_message_timeout", false, true, 200, "upstream:hi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, addr := startProcessor(t, func(srv extprocsvc.ExternalProcessor_ProcessServer) error {
				for {
					m, err := srv.Recv()
					if err != nil {
						return nil
					}
					if m.GetRequestHeaders() == nil {
						srv.Send(continueAll(m))
						continue
					}
					if !tt.extend {
						continue // never answer request_headers
					}
					srv.Send(&extprocsvc.ProcessingResponse{OverrideMessageTimeout: durationpb.New(time.Minute)})
					// A slow processor: it answers after the configured timeout would have
					// expired (the behaviour under test, not a readiness wait), unless the
					// stream ends first.
					select {
					case <-time.After(1500 * time.Millisecond):
					case <-srv.Context().Done():
						return nil
					}
					srv.Send(continueAll(m))
				}
			})
			b := testBootstrap(t, addr, echoUpstream(t))
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
				ep.FailureModeAllow = tt.allow
				ep.MessageTimeout = durationpb.New(100 * time.Millisecond)
				if tt.extend {
					ep.MessageTimeout = durationpb.New(time.Second) // room to send the override
				}
				ep.MaxMessageTimeout = durationpb.New(2 * time.Minute)
			})
			px := startProxy(t, b)
			resp, body := do(t, http.MethodPost, px.url("/"), "hi", "x-tollgate-cluster", "model_0")
			if resp.StatusCode != tt.wantStatus || body != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			info := px.nextInfo(t)
			if !tt.allow && !tt.extend {
				if info.ResponseCodeDetails != "ext_proc_error_per-message_timeout_exceeded" {
					t.Errorf("details = %q", info.ResponseCodeDetails)
				}
				if k := kinds(proc.messages()); len(k) != 1 {
					t.Errorf("messages = %v: the 504 must not go through ext_proc's encode path", k)
				}
			}
		})
	}
}

// TestGRPCStreamEnds: a non-OK status from the processor fails closed with status_on_error
// (details ext_proc_error_gRPC_error_<code>{msg}), or is ignored with failure_mode_allow;
// an OK close makes Envoy continue without the processor; an unreachable processor is a
// gRPC error too.
//
// Envoy: ext_proc.cc Filter::onGrpcError, onGrpcClose; client_impl.cc onRemoteClose.
func TestGRPCStreamEnds(t *testing.T) {
	failing := func(srv extprocsvc.ExternalProcessor_ProcessServer) error {
		srv.Recv()
		return status.Error(codes.PermissionDenied, "no way")
	}
	closing := func(srv extprocsvc.ExternalProcessor_ProcessServer) error {
		srv.Recv()
		return nil
	}
	tests := []struct {
		name        string
		fn          processFunc
		unreachable bool
		allow       bool
		wantStatus  int
		wantBody    string
		wantDetails string
	}{
		{"error fails closed", failing, false, false, 500, "", "ext_proc_error_gRPC_error_7{no_way}"},
		{"error with failure_mode_allow", failing, false, true, 200, "upstream:hi", "via_upstream"},
		{"OK close continues", closing, false, false, 200, "upstream:hi", "via_upstream"},
		{"unreachable fails closed", nil, true, false, 500, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr string
			if tt.unreachable {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr = ln.Addr().String()
				ln.Close()
			} else {
				_, addr = startProcessor(t, tt.fn)
			}
			b := testBootstrap(t, addr, echoUpstream(t))
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) { ep.FailureModeAllow = tt.allow })
			px := startProxy(t, b)
			resp, body := do(t, http.MethodPost, px.url("/"), "hi", "x-tollgate-cluster", "model_0")
			if resp.StatusCode != tt.wantStatus || body != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			info := px.nextInfo(t)
			if tt.wantDetails != "" && info.ResponseCodeDetails != tt.wantDetails {
				t.Errorf("details = %q, want %q", info.ResponseCodeDetails, tt.wantDetails)
			}
			if tt.unreachable && !strings.HasPrefix(info.ResponseCodeDetails, "ext_proc_error_gRPC_error_14") {
				t.Errorf("details = %q, want gRPC UNAVAILABLE", info.ResponseCodeDetails)
			}
		})
	}
}
