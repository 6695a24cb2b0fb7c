package standin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

func immediate(ir *extprocsvc.ImmediateResponse) *extprocsvc.ProcessingResponse {
	return &extprocsvc.ProcessingResponse{Response: &extprocsvc.ProcessingResponse_ImmediateResponse{ImmediateResponse: ir}}
}

// TestImmediateResponse: an immediate_response ends processing and answers the client: a
// missing or < 200 status becomes 200; its headers go through the mutation rules; a body
// gets content-type text/plain unless set, and an empty body drops content-type; its
// dynamic_metadata is kept. It does not go through ext_proc's encode path. Sent while a
// response is held it replaces it; once the response is streaming it resets the stream.
// disable_immediate_response makes it spurious.
//
// Envoy: ext_proc.cc onReceiveMessage (kImmediateResponse), sendImmediateResponse;
// mutation_utils.cc isValidHttpStatus; utility.cc sendLocalReply; filter_manager.cc
// sendLocalReply; docs/envoy.md section 1.8.
func TestImmediateResponse(t *testing.T) {
	withHeaders := &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
		setHeader("content-type", "application/json"), setHeader("x-custom", "1"), setHeader("x-envoy-foo", "no"),
	}}
	tests := []struct {
		name        string
		on          string
		streamed    bool
		disable     bool
		ir          *extprocsvc.ImmediateResponse
		wantStatus  int
		wantBody    string
		wantType    string
		wantReset   bool
		wantCustom  bool
		wantKinds   []string
		wantDetails string
	}{
		{"no status is 200", "request_headers", false, false,
			&extprocsvc.ImmediateResponse{Body: []byte("hi")}, 200, "hi", "text/plain", false, false,
			[]string{"request_headers"}, ""},
		{"status under 200 is 200", "request_headers", false, false,
			&extprocsvc.ImmediateResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Continue}, Body: []byte("hi")}, 200, "hi", "text/plain", false, false,
			[]string{"request_headers"}, ""},
		{"status, headers, body, details", "request_headers", false, false,
			&extprocsvc.ImmediateResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized}, Headers: withHeaders,
				Body: []byte(`{"error":"auth"}`), Details: "bad key"}, 401, `{"error":"auth"}`, "application/json", false, true,
			[]string{"request_headers"}, "bad_key"},
		{"empty body drops content-type", "request_headers", false, false,
			&extprocsvc.ImmediateResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_NotFound}, Headers: withHeaders}, 404, "", "", false, true,
			[]string{"request_headers"}, ""},
		{"replaces a held response", "response_headers", false, false,
			&extprocsvc.ImmediateResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, Body: []byte("no")}, 403, "no", "text/plain", false, false,
			[]string{"request_headers", "request_body", "response_headers"}, ""},
		{"resets a streaming response", "response_body", true, false,
			&extprocsvc.ImmediateResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}}, 0, "", "", true, false,
			nil, ""},
		{"disabled is spurious", "request_headers", false, true,
			&extprocsvc.ImmediateResponse{Body: []byte("hi")}, 500, "", "", false, false,
			[]string{"request_headers"}, "unhandled_immediate_response_due_to_config_disabled_it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.(http.Flusher).Flush()
				io.WriteString(w, "upstream")
			})
			proc, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				if kinds([]*extprocsvc.ProcessingRequest{m})[0] != tt.on {
					return continueAll(m)
				}
				r := immediate(tt.ir)
				r.DynamicMetadata = structOf(t, map[string]any{"tollgate": map[string]any{"outcome": "immediate"}})
				return r
			}))
			b := testBootstrap(t, addr, up)
			editExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
				ep.DisableImmediateResponse = tt.disable
				if tt.streamed {
					streamedConfig(ep)
				}
			})
			px := startProxy(t, b)
			req, _ := http.NewRequest(http.MethodPost, px.url("/"), strings.NewReader("{}"))
			req.Header.Set("x-tollgate-cluster", "model_0")
			resp, err := http.DefaultClient.Do(req)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			info := px.nextInfo(t)
			if tt.wantReset {
				if err == nil || !info.Reset {
					t.Fatalf("want a reset stream, got err=%v info=%+v", err, info)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus || string(body) != tt.wantBody || resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("got %d %q content-type %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
			}
			if (resp.Header.Get("x-custom") == "1") != tt.wantCustom || resp.Header.Get("x-envoy-foo") != "" {
				t.Errorf("headers = %v", resp.Header)
			}
			if got := kinds(proc.messages()); !slices.Equal(got, tt.wantKinds) {
				t.Errorf("messages = %v, want %v (not through ext_proc's encode path)", got, tt.wantKinds)
			}
			if tt.wantDetails != "" && info.ResponseCodeDetails != tt.wantDetails {
				t.Errorf("details = %q, want %q", info.ResponseCodeDetails, tt.wantDetails)
			}
			if !tt.disable && info.DynamicMetadata["tollgate"].GetFields()["outcome"].GetStringValue() != "immediate" {
				t.Errorf("dynamic metadata = %v", info.DynamicMetadata)
			}
		})
	}
}

// TestContinueAndReplace: CONTINUE_AND_REPLACE in a headers reply applies the header
// mutation (:method included), replaces or creates the whole body when body_mutation is
// set (removing content-length), and sends nothing more in that direction; without a body
// mutation the original body passes untouched.
//
// Envoy: processor_state.cc handleHeadersResponse (CONTINUE_AND_REPLACE); mutation_utils.cc
// (replacing_message lets :method change); ext_proc.cc onData (bodyReplaced drains).
func TestContinueAndReplace(t *testing.T) {
	replace := func(body *extprocsvc.BodyMutation, set ...*corev3.HeaderValueOption) *extprocsvc.CommonResponse {
		return &extprocsvc.CommonResponse{
			Status:         extprocsvc.CommonResponse_CONTINUE_AND_REPLACE,
			HeaderMutation: &extprocsvc.HeaderMutation{SetHeaders: set},
			BodyMutation:   body,
		}
	}
	t.Run("request: GET becomes POST with a body", func(t *testing.T) {
		proc, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if m.GetRequestHeaders() != nil {
				return matching(m, replace(bodyMutation(`{"new":1}`), setHeader(":method", "POST")))
			}
			return continueAll(m)
		}))
		px := startProxy(t, testBootstrap(t, addr, headerEchoUpstream(t)))
		resp, body := do(t, http.MethodGet, px.url("/v1/x"), "", "x-tollgate-cluster", "model_0")
		var s seenRequest
		if err := json.Unmarshal([]byte(body), &s); err != nil || resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if s.Method != http.MethodPost || s.Body != `{"new":1}` {
			t.Errorf("upstream saw %+v", s)
		}
		px.nextInfo(t)
		if got := kinds(proc.messages()); !slices.Equal(got, []string{"request_headers", "response_headers", "response_body"}) {
			t.Errorf("messages = %v", got)
		}
	})
	t.Run("request: no body mutation keeps the body", func(t *testing.T) {
		proc, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if m.GetRequestHeaders() != nil {
				return matching(m, replace(nil))
			}
			return continueAll(m)
		}))
		px := startProxy(t, testBootstrap(t, addr, headerEchoUpstream(t)))
		_, body := do(t, http.MethodPost, px.url("/v1/x"), "original", "x-tollgate-cluster", "model_0")
		var s seenRequest
		if err := json.Unmarshal([]byte(body), &s); err != nil || s.Body != "original" || s.ContentLength != 8 {
			t.Fatalf("upstream saw %+v (%v)", s, err)
		}
		px.nextInfo(t)
		if got := kinds(proc.messages()); slices.Contains(got, "request_body") {
			t.Errorf("messages = %v: nothing more is sent on the request side", got)
		}
	})
	t.Run("response: replaced body", func(t *testing.T) {
		up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("u", 1000)) })
		proc, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
			if m.GetResponseHeaders() != nil {
				return matching(m, replace(bodyMutation("replaced")))
			}
			return continueAll(m)
		}))
		px := startProxy(t, testBootstrap(t, addr, up))
		resp, body := do(t, http.MethodGet, px.url("/"), "", "x-tollgate-cluster", "model_0")
		if resp.StatusCode != 200 || body != "replaced" || resp.ContentLength != -1 {
			t.Fatalf("got %d %q content-length %d", resp.StatusCode, body, resp.ContentLength)
		}
		px.nextInfo(t)
		if got := kinds(proc.messages()); slices.Contains(got, "response_body") {
			t.Errorf("messages = %v", got)
		}
	})
}
