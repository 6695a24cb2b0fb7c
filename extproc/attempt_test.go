package extproc

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// attemptHeaders opens an upstream-filter stream the way Envoy's upstream ext_proc filter does:
// the attempt's request headers (as the router left them) and the chosen host's metadata.
func (h *harness) attempt(t *testing.T, requestID, backend string) *extprocv3.ProcessingResponse {
	t.Helper()
	md, err := structpb.NewStruct(map[string]any{"filter_metadata": map[string]any{"tollgate": map[string]any{"backend": backend}}})
	if err != nil {
		t.Fatal(err)
	}
	s := h.open(t)
	return s.send(&extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: headerMap(":method", "POST", ":path", "/v1/chat/completions", "x-tollgate-request-id", requestID,
				"authorization", "Bearer "+goodKey, "x-api-key", "stale-from-a-previous-attempt"),
		}},
		Attributes: map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{
			"xds.upstream_host_metadata": structpb.NewStructValue(md),
		}}},
	})
}

func TestTranslatePerAttempt(t *testing.T) {
	h := newHarnessWith(t, Config{MaxBodyBytes: 1 << 20, TranslatePerAttempt: true})
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	rb := router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`).GetRequestBody().GetResponse()
	set, _ := mutations(rb.GetHeaderMutation())
	if rb.GetBodyMutation() != nil || set[":path"] != "" || set["x-tollgate-cluster"] != "model_gpt-5.4" || !rb.GetClearRouteCache() {
		t.Fatalf("the router filter only routes: set %v body %v", set, rb.GetBodyMutation())
	}
	id := set["x-tollgate-request-id"]

	tests := []struct {
		name, backend, wantPath, wantModel, wantAuth, wantAuthValue, wantGone string
	}{
		{name: "primary", backend: "openai/gpt-5.4-2026-03-01", wantPath: "/v1/chat/completions", wantModel: "gpt-5.4-2026-03-01",
			wantAuth: "authorization", wantAuthValue: "Bearer sk-openai", wantGone: "x-api-key"},
		{name: "fallback of another kind", backend: "anthropic/msgs-only", wantPath: "/v1/messages", wantModel: "msgs-only",
			wantAuth: "x-api-key", wantAuthValue: "sk-ant", wantGone: "authorization"},
		{name: "primary again, rebuilt from the client's request", backend: "openai/gpt-5.4-2026-03-01", wantPath: "/v1/chat/completions",
			wantModel: "gpt-5.4-2026-03-01", wantAuth: "authorization", wantAuthValue: "Bearer sk-openai", wantGone: "x-api-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := h.attempt(t, id, tt.backend).GetRequestHeaders().GetResponse()
			if cr.GetStatus() != extprocv3.CommonResponse_CONTINUE_AND_REPLACE {
				t.Fatalf("status %v, want CONTINUE_AND_REPLACE", cr.GetStatus())
			}
			set, removed := mutations(cr.GetHeaderMutation())
			if removed["x-tollgate-request-id"] {
				t.Errorf("the request id must survive every attempt: removed %v", removed)
			}
			if removed[tt.wantAuth] {
				t.Errorf("the credential header %s is set, not also removed", tt.wantAuth)
			}
			if set[":path"] != tt.wantPath || !removed[tt.wantGone] {
				t.Errorf("set %v removed %v", set, removed)
			}
			if _, ok := set[tt.wantAuth]; !ok || (tt.wantAuthValue != "" && set[tt.wantAuth] != tt.wantAuthValue) {
				t.Errorf("credential header %s = %q", tt.wantAuth, set[tt.wantAuth])
			}
			body := cr.GetBodyMutation().GetBody()
			var sent struct {
				Model string `json:"model"`
			}
			if err := json.Unmarshal(body, &sent); err != nil || sent.Model != tt.wantModel {
				t.Errorf("body model %q (%v), want %q", sent.Model, err, tt.wantModel)
			}
		})
	}

	// The final attempt (OpenAI kind) answers; the router filter translates from it.
	router.responseHeaders(false, ":status", "200", "content-type", "application/json")
	router.responseBody([]byte(`{"id":"c","object":"chat.completion","model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`), true)
	u := h.ledger.waitSettled(t)
	if u.Provider != "openai" || u.CompletionTokens != 1 {
		t.Errorf("settled %+v, want the final attempt's provider", u)
	}
	var backends []string
	for _, a := range u.Attempts {
		backends = append(backends, a.Backend)
	}
	if got := strings.Join(backends, ","); got != "openai/gpt-5.4-2026-03-01,anthropic/msgs-only,openai/gpt-5.4-2026-03-01" {
		t.Errorf("attempts recorded: %s", got)
	}
	if last := u.Attempts[len(u.Attempts)-1]; last.Status != 200 {
		t.Errorf("the final attempt's status is the response's: %+v", last)
	}
}

func TestAttemptContentLength(t *testing.T) {
	h := newHarnessWith(t, Config{MaxBodyBytes: 1 << 20, TranslatePerAttempt: true})
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	set, _ := mutations(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`).GetRequestBody().GetResponse().GetHeaderMutation())
	for _, backend := range []string{"openai/gpt-5.4-2026-03-01", "anthropic/msgs-only"} {
		resp := h.attempt(t, set["x-tollgate-request-id"], backend)
		body := resp.GetRequestHeaders().GetResponse().GetBodyMutation().GetBody()
		cl := resp.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()["content_length"].GetStringValue()
		if cl != strconv.Itoa(len(body)) {
			t.Errorf("%s: content_length metadata %q for a %d-byte body", backend, cl, len(body))
		}
	}
}

func TestAttemptFailures(t *testing.T) {
	h := newHarnessWith(t, Config{MaxBodyBytes: 1 << 20, TranslatePerAttempt: true})
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	set, _ := mutations(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`).GetRequestBody().GetResponse().GetHeaderMutation())
	tests := []struct{ name, id, backend string }{
		{name: "unknown request", id: "req_nobody", backend: "openai/gpt-5.4-2026-03-01"},
		{name: "backend outside the chain", id: set["x-tollgate-request-id"], backend: "compat-eu/gpt-eu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ir := h.attempt(t, tt.id, tt.backend).GetImmediateResponse()
			if ir.GetStatus().GetCode() != 502 {
				t.Fatalf("want a 502 immediate response, got %v", ir)
			}
		})
	}
}

// TestAttemptStatusRecorded: when the upstream filter sends the attempt's response headers, the
// attempt's status is recorded.
func TestAttemptStatusRecorded(t *testing.T) {
	h := newHarnessWith(t, Config{MaxBodyBytes: 1 << 20, TranslatePerAttempt: true})
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	set, _ := mutations(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`).GetRequestBody().GetResponse().GetHeaderMutation())
	md, _ := structpb.NewStruct(map[string]any{"filter_metadata": map[string]any{"tollgate": map[string]any{"backend": "openai/gpt-5.4-2026-03-01"}}})
	a := h.open(t)
	a.send(&extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: headerMap(":method", "POST", ":path", "/v1/chat/completions", "x-tollgate-request-id", set["x-tollgate-request-id"])}},
		Attributes: map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{"xds.upstream_host_metadata": structpb.NewStructValue(md)}}},
	})
	rh := a.responseHeaders(false, ":status", "503", "x-ratelimit-remaining-requests", "41", "openai-organization", "operator", "content-type", "application/json")
	if rh.GetResponseHeaders() == nil {
		t.Fatal("the attempt's response headers get a headers reply")
	}
	if _, removed := mutations(rh.GetResponseHeaders().GetResponse().GetHeaderMutation()); !removed["x-ratelimit-remaining-requests"] || !removed["openai-organization"] || removed["content-type"] {
		t.Errorf("the provider's account headers stay at the attempt: removed %v", removed)
	}
	_ = a.s.CloseSend()
	poll(t, func() bool {
		x := h.srv.lookupPending(set["x-tollgate-request-id"])
		x.attemptMu.Lock()
		defer x.attemptMu.Unlock()
		return len(x.attempts) == 1 && x.attempts[0].Status == 503
	})
}

// TestCancelledAfterAttempt: with per-attempt translation, a request whose client leaves after an
// attempt went upstream is charged its input at the attempted model; one that leaves before any
// attempt is released.
func TestCancelledAfterAttempt(t *testing.T) {
	for _, attempted := range []bool{true, false} {
		t.Run(fmt.Sprintf("attempted=%v", attempted), func(t *testing.T) {
			h := newHarnessWith(t, Config{MaxBodyBytes: 1 << 20, TranslatePerAttempt: true})
			router := h.open(t)
			router.requestHeaders(false, chatHeaders()...)
			set, _ := mutations(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hello there"}]}`).GetRequestBody().GetResponse().GetHeaderMutation())
			hold := h.ledger.lastHold(t)
			if attempted {
				h.attempt(t, set["x-tollgate-request-id"], "openai/gpt-5.4-2026-03-01")
			}
			_ = router.s.CloseSend()
			if !attempted {
				poll(t, func() bool { return h.ledger.openHolds() == 0 })
				if ids := h.ledger.releasedIDs(); len(ids) != 1 || len(h.ledger.usages) != 0 {
					t.Errorf("released %v, charged %v; want only a release", ids, h.ledger.usages)
				}
				return
			}
			u := h.ledger.waitSettled(t)
			if u.CostMicros != hold.InputMicros || u.CostMicros <= 0 || u.Status != 499 || u.Provider != "openai" || len(u.Attempts) != 1 {
				t.Errorf("settled %+v; want the input (%d µUSD) at the attempted backend", u, hold.InputMicros)
			}
		})
	}
}
