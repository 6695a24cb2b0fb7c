package standin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate/tollgate/envoy/contract"
)

// seenRequest is what the echo upstream reports.
type seenRequest struct {
	Method, Path, Host, Body string
	Header                   http.Header
	ContentLength            int64
	TransferEncoding         []string
}

func headerEchoUpstream(t *testing.T) upstream {
	return startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(seenRequest{r.Method, r.URL.Path, r.Host, string(b), r.Header, r.ContentLength, r.TransferEncoding})
	})
}

// TestHeaderMutations: set_headers honour only the deprecated append BoolValue (default
// false: overwrite) and ignore append_action; values come from raw_value only; the default
// mutation rules refuse host, :authority, :scheme, :method and x-envoy-* (but allow :path)
// and refuse removing host or pseudo-headers; refused mutations are skipped and counted;
// invalid characters, or value and raw_value both set, fail the reply with a 500.
//
// Envoy: source/extensions/filters/http/ext_proc/mutation_utils.cc applyHeaderMutations;
// source/extensions/filters/common/mutation_rules/mutation_rules.cc Checker;
// docs/envoy.md section 1.6 (issue #36982 for append_action).
func TestHeaderMutations(t *testing.T) {
	raw := func(k, v string) *corev3.HeaderValueOption { return setHeader(k, v) }
	tests := []struct {
		name         string
		set          []*corev3.HeaderValueOption
		remove       []string
		wantStatus   int
		wantRejected uint64
		check        func(t *testing.T, s seenRequest)
	}{
		{"set overwrites", []*corev3.HeaderValueOption{raw("x-a", "2")}, nil, 200, 0, func(t *testing.T, s seenRequest) {
			wantValues(t, s.Header, "X-A", "2")
		}},
		{"append adds", []*corev3.HeaderValueOption{appendHeader("x-a", "2")}, nil, 200, 0, func(t *testing.T, s seenRequest) {
			wantValues(t, s.Header, "X-A", "1", "2")
		}},
		{"append_action is ignored", []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "x-a", RawValue: []byte("2")},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		}}, nil, 200, 0, func(t *testing.T, s seenRequest) {
			wantValues(t, s.Header, "X-A", "2")
		}},
		{"value without raw_value sets empty", []*corev3.HeaderValueOption{{
			Header: &corev3.HeaderValue{Key: "x-a", Value: "2"},
		}}, nil, 200, 0, func(t *testing.T, s seenRequest) {
			wantValues(t, s.Header, "X-A", "")
		}},
		{":path may be set", []*corev3.HeaderValueOption{raw(":path", "/v1/new")}, nil, 200, 0, func(t *testing.T, s seenRequest) {
			if s.Path != "/v1/new" {
				t.Errorf("path = %q", s.Path)
			}
		}},
		{"routing headers and x-envoy are refused", []*corev3.HeaderValueOption{
			raw(":method", "DELETE"), raw(":scheme", "https"), raw(":authority", "evil"), raw("host", "evil"), raw("x-envoy-retry-on", "5xx"),
		}, nil, 200, 5, func(t *testing.T, s seenRequest) {
			if s.Method != http.MethodPost || s.Header.Get("X-Envoy-Retry-On") != "" {
				t.Errorf("refused mutations applied: %+v", s)
			}
		}},
		{"appending to a pseudo-header is refused", []*corev3.HeaderValueOption{appendHeader(":path", "/x")}, nil, 200, 1, func(t *testing.T, s seenRequest) {
			if s.Path != "/v1/chat" {
				t.Errorf("path = %q", s.Path)
			}
		}},
		{"removing host and pseudo-headers is refused", nil, []string{"host", ":path", ":method", "x-a"}, 200, 3, func(t *testing.T, s seenRequest) {
			if s.Path != "/v1/chat" || s.Method != http.MethodPost || len(s.Header["X-A"]) != 0 {
				t.Errorf("got %+v", s)
			}
		}},
		{"value and raw_value both set", []*corev3.HeaderValueOption{{
			Header: &corev3.HeaderValue{Key: "x-a", Value: "v", RawValue: []byte("r")},
		}}, nil, 500, 1, nil},
		{"invalid character", []*corev3.HeaderValueOption{raw("x-a", "a\nb")}, nil, 500, 1, nil},
		{"invalid name", []*corev3.HeaderValueOption{raw("x a", "b")}, nil, 500, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				if m.GetRequestHeaders() == nil {
					return continueAll(m)
				}
				set := append([]*corev3.HeaderValueOption{setHeader(contract.ClusterHeader, "model_0")}, tt.set...)
				return matching(m, &extprocsvc.CommonResponse{
					HeaderMutation:  &extprocsvc.HeaderMutation{SetHeaders: set, RemoveHeaders: tt.remove},
					ClearRouteCache: true,
				})
			}))
			px := startProxy(t, testBootstrap(t, addr, headerEchoUpstream(t)))
			resp, body := do(t, http.MethodPost, px.url("/v1/chat"), "{}", "X-A", "1")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := px.Stats().RejectedHeaderMutations; got != tt.wantRejected {
				t.Errorf("rejected_header_mutations = %d, want %d", got, tt.wantRejected)
			}
			if tt.check != nil {
				var s seenRequest
				if err := json.Unmarshal([]byte(body), &s); err != nil {
					t.Fatalf("upstream reply %q: %v", body, err)
				}
				tt.check(t, s)
			}
		})
	}
}

func wantValues(t *testing.T, h http.Header, key string, want ...string) {
	t.Helper()
	if got := h.Values(key); !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", key, got, want)
	}
}

// TestBufferedBodyContentLength: in BUFFERED mode a replaced body must agree with
// content-length, which the same reply's header mutation may set or remove first;
// otherwise the reply fails with a 500 local reply. Without content-length the upstream
// request is chunked.
//
// Envoy: processor_state.cc handleBufferedBodyCallback, validateContentLength.
func TestBufferedBodyContentLength(t *testing.T) {
	const newBody = `{"rewritten":true}`
	tests := []struct {
		name       string
		mutation   *extprocsvc.HeaderMutation
		body       *extprocsvc.BodyMutation
		wantStatus int
		check      func(t *testing.T, s seenRequest)
	}{
		{"mismatch is rejected", nil, bodyMutation(newBody), 500, nil},
		{"set in the same reply", &extprocsvc.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-length", "18")}},
			bodyMutation(newBody), 200, func(t *testing.T, s seenRequest) {
				if s.Body != newBody || s.ContentLength != 18 {
					t.Errorf("upstream got %+v", s)
				}
			}},
		{"removed in the same reply", &extprocsvc.HeaderMutation{RemoveHeaders: []string{"content-length"}},
			bodyMutation(newBody), 200, func(t *testing.T, s seenRequest) {
				if s.Body != newBody || !slices.Equal(s.TransferEncoding, []string{"chunked"}) {
					t.Errorf("upstream got %+v", s)
				}
			}},
		{"clear_body with content-length is a mismatch", nil,
			&extprocsvc.BodyMutation{Mutation: &extprocsvc.BodyMutation_ClearBody{ClearBody: true}}, 500, nil},
		{"same length passes", nil, bodyMutation("{ }"), 200, func(t *testing.T, s seenRequest) {
			if s.Body != "{ }" {
				t.Errorf("upstream got %+v", s)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
				if m.GetRequestBody() == nil {
					return continueAll(m)
				}
				return matching(m, &extprocsvc.CommonResponse{HeaderMutation: tt.mutation, BodyMutation: tt.body})
			}))
			px := startProxy(t, testBootstrap(t, addr, headerEchoUpstream(t)))
			resp, body := do(t, http.MethodPost, px.url("/v1/chat"), "{a}", "x-tollgate-cluster", "model_0")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if tt.wantStatus == 500 {
				if d := px.nextInfo(t).ResponseCodeDetails; d != "mismatch_between_content_length_and_the_length_of_the_mutated_body" {
					t.Errorf("details = %q", d)
				}
			}
			if tt.check != nil {
				var s seenRequest
				if err := json.Unmarshal([]byte(body), &s); err != nil {
					t.Fatalf("upstream reply %q: %v", body, err)
				}
				tt.check(t, s)
			}
		})
	}
}
