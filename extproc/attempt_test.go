package extproc

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/envoy/contract"
	"github.com/tollgate/tollgate/extproc/anthropic"
)

// attemptRequest is the first message of an upstream-filter stream as Envoy's upstream ext_proc
// filter sends it: the attempt's request headers (as the router and earlier attempts left them),
// the chosen host's backend in the attributes, and the request's tollgate metadata forwarded.
func attemptRequest(requestID, backend string, kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: headerMap(append([]string{":method", "POST", ":path", "/v1/chat/completions"}, kv...)...),
		}},
		Attributes: map[string]*structpb.Struct{contract.ExtProcAttributesKey: {Fields: map[string]*structpb.Value{
			contract.UpstreamBackendAttribute: structpb.NewStringValue(backend),
		}}},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			contract.MetadataNamespace: {Fields: map[string]*structpb.Value{contract.RequestIDKey: structpb.NewStringValue(requestID)}},
		}},
	}
}

// attempt opens an upstream-filter stream for requestID's attempt on backend, with headers as a
// previous attempt and the client left them.
func (h *harness) attempt(t testing.TB, requestID, backend string) *extprocv3.ProcessingResponse {
	t.Helper()
	return h.open(t).send(attemptRequest(requestID, backend,
		"authorization", "Bearer "+goodKey, "x-api-key", "stale-from-a-previous-attempt", "x-tollgate-cluster", "model_gpt-5.4"))
}

// routedID is the request id the router filter's body reply put in the dynamic metadata.
func routedID(resp *extprocv3.ProcessingResponse) string {
	return resp.GetDynamicMetadata().GetFields()[contract.MetadataNamespace].GetStructValue().GetFields()[contract.RequestIDKey].GetStringValue()
}

func TestTranslatedPerAttempt(t *testing.T) {
	h := newHarness(t)
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	routed := router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`)
	rb := routed.GetRequestBody().GetResponse()
	set, _ := mutations(rb.GetHeaderMutation())
	if rb.GetBodyMutation() != nil || set[":path"] != "" || set["x-tollgate-cluster"] != "model_gpt-5.4" || !rb.GetClearRouteCache() {
		t.Fatalf("the router filter only routes: set %v body %v", set, rb.GetBodyMutation())
	}
	id := routedID(routed)
	if len(set) != 1 {
		t.Errorf("the router filter sets only the cluster header, which attempts remove: %v", set)
	}

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
			if !removed["x-tollgate-cluster"] {
				t.Errorf("the gateway's routing header must not reach the provider: removed %v", removed)
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
	h := newHarness(t)
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	id := routedID(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`))
	for _, backend := range []string{"openai/gpt-5.4-2026-03-01", "anthropic/msgs-only"} {
		resp := h.attempt(t, id, backend)
		body := resp.GetRequestHeaders().GetResponse().GetBodyMutation().GetBody()
		cl := resp.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()["content_length"].GetStringValue()
		if cl != strconv.Itoa(len(body)) {
			t.Errorf("%s: content_length metadata %q for a %d-byte body", backend, cl, len(body))
		}
	}
}

func TestAttemptFailures(t *testing.T) {
	h := newHarness(t)
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	id := routedID(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`))
	tests := []struct{ name, id, backend string }{
		{name: "unknown request", id: "req_nobody", backend: "openai/gpt-5.4-2026-03-01"},
		{name: "no request named", id: "", backend: "openai/gpt-5.4-2026-03-01"},
		{name: "backend outside the chain", id: id, backend: "compat-eu/gpt-eu"},
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
	h := newHarness(t)
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	id := routedID(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`))
	a := h.open(t)
	a.send(attemptRequest(id, "openai/gpt-5.4-2026-03-01"))
	rh := a.responseHeaders(false, ":status", "503", "x-ratelimit-remaining-requests", "41", "openai-organization", "operator", "content-type", "application/json")
	if rh.GetResponseHeaders() == nil {
		t.Fatal("the attempt's response headers get a headers reply")
	}
	if _, removed := mutations(rh.GetResponseHeaders().GetResponse().GetHeaderMutation()); !removed["x-ratelimit-remaining-requests"] || !removed["openai-organization"] || removed["content-type"] {
		t.Errorf("the provider's account headers stay at the attempt: removed %v", removed)
	}
	_ = a.s.CloseSend()
	poll(t, func() bool {
		x := h.srv.lookupPending(id)
		x.attemptMu.Lock()
		defer x.attemptMu.Unlock()
		return len(x.attempts) == 1 && x.attempts[0].Status == 503
	})
}

// TestAttemptForwardsOnlyAllowedHeaders: whatever the client sent beyond the allow-list, and the
// gateway's own routing headers, never reach a provider; Envoy's own headers are left to Envoy.
func TestAttemptForwardsOnlyAllowedHeaders(t *testing.T) {
	h := newHarness(t)
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	id := routedID(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`))
	client := []string{
		"host", "gw", "accept", "application/json", "content-type", "application/json", "content-length", "60",
		"cookie", "session=victim", "proxy-authorization", "Basic eDp5", "openai-organization", "org-client",
		"openai-project", "proj_client", "x-stainless-os", "Linux", "accept-encoding", "gzip, br",
		"x-forwarded-for", "203.0.113.9", "x-request-id", "9f1c", "x-tollgate-cluster", "model_gpt-5.4",
		"x-tollgate-request-id", "req_forged", "anthropic-beta", "context-1m-2025-08-07", "user-agent", "OpenAI/JS 6.30.1",
		"x-envoy-attempt-count", "2", "authorization", "Bearer " + goodKey,
	}
	tests := []struct {
		backend  string
		wantSet  []string
		wantKept []string
	}{
		{backend: "openai/gpt-5.4-2026-03-01", wantSet: []string{"authorization", ":path", "content-type"}},
		{backend: "anthropic/msgs-only", wantSet: []string{"x-api-key", "anthropic-version", ":path", "content-type"}},
	}
	for _, tt := range tests {
		t.Run(tt.backend, func(t *testing.T) {
			cr := h.open(t).send(attemptRequest(id, tt.backend, client...)).GetRequestHeaders().GetResponse()
			set, removed := mutations(cr.GetHeaderMutation())
			for _, name := range []string{"cookie", "proxy-authorization", "openai-organization", "openai-project", "x-stainless-os",
				"accept-encoding", "x-forwarded-for", "x-request-id", "x-tollgate-cluster", "x-tollgate-request-id", "anthropic-beta", "user-agent"} {
				if !removed[name] {
					t.Errorf("%s reaches the provider", name)
				}
			}
			for _, name := range []string{"host", "accept", "content-length", "x-envoy-attempt-count", ":method"} {
				if removed[name] {
					t.Errorf("%s removed: it is allowed or Envoy's own", name)
				}
			}
			for _, name := range tt.wantSet {
				if _, ok := set[name]; !ok || removed[name] {
					t.Errorf("%s: set %v removed %v", name, set, removed[name])
				}
			}
			for name, v := range set {
				if strings.HasPrefix(name, "x-tollgate-") || strings.Contains(v, goodKey) {
					t.Errorf("set %s: %q", name, v)
				}
			}
		})
	}
}

// TestAttemptBoundToItsRequest: an attempt is answered only on a stream from the peer that opened
// the request, and only for the HTTP request Envoy names in the router filter's stream.
func TestAttemptBoundToItsRequest(t *testing.T) {
	peerOf := func(ctx context.Context) string {
		md, _ := metadata.FromIncomingContext(ctx)
		return strings.Join(md.Get("test-peer"), ",")
	}
	h := newHarnessWith(t, Config{MaxBodyBytes: 1 << 20, PeerIdentity: peerOf})
	as := func(peer string) context.Context {
		return metadata.AppendToOutgoingContext(t.Context(), "test-peer", peer)
	}
	rs, err := h.client.Process(as("envoy-a"))
	if err != nil {
		t.Fatal(err)
	}
	router := &stream{t: t, s: rs}
	first := &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(chatHeaders()...)}},
		Attributes: map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{
			"request.id": structpb.NewStringValue("7d0c-envoy"),
		}}},
	}
	router.send(first)
	id := routedID(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`))

	withEnvoyID := func(envoyID string) *extprocv3.ProcessingRequest {
		r := attemptRequest(id, "openai/gpt-5.4-2026-03-01")
		if envoyID != "" {
			r.Attributes["envoy.filters.http.ext_proc"].Fields["request.id"] = structpb.NewStringValue(envoyID)
		}
		return r
	}
	tests := []struct {
		name, peer, envoyID string
		answered            bool
	}{
		{name: "same peer, same request", peer: "envoy-a", envoyID: "7d0c-envoy", answered: true},
		{name: "same peer, a retry whose request id header was removed", peer: "envoy-a", answered: true},
		{name: "another peer", peer: "intruder", envoyID: "7d0c-envoy"},
		{name: "same peer, another HTTP request", peer: "envoy-a", envoyID: "5e1a-other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as, err := h.client.Process(as(tt.peer))
			if err != nil {
				t.Fatal(err)
			}
			resp := (&stream{t: t, s: as}).send(withEnvoyID(tt.envoyID))
			body := resp.GetRequestHeaders().GetResponse().GetBodyMutation().GetBody()
			if answered := len(body) > 0; answered != tt.answered {
				t.Fatalf("answered %v, want %v (%v)", answered, tt.answered, resp)
			}
			if !tt.answered && resp.GetImmediateResponse().GetStatus().GetCode() != 502 {
				t.Errorf("a refused attempt ends in a 502: %v", resp)
			}
			if set, _ := mutations(resp.GetRequestHeaders().GetResponse().GetHeaderMutation()); !tt.answered && len(set) > 0 {
				t.Errorf("a refused attempt learns nothing: %v", set)
			}
		})
	}
}

// TestCancelledAfterAttempt: a request whose client leaves after an
// attempt went upstream is charged its input at the attempted model; one that leaves before any
// attempt is released.
func TestCancelledAfterAttempt(t *testing.T) {
	for _, attempted := range []bool{true, false} {
		t.Run(fmt.Sprintf("attempted=%v", attempted), func(t *testing.T) {
			h := newHarness(t)
			router := h.open(t)
			router.requestHeaders(false, chatHeaders()...)
			id := routedID(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hello there"}]}`))
			if !attempted {
				// The hold is placed by the first attempt: a request that never reached one
				// holds and costs nothing.
				_ = router.s.CloseSend()
				poll(t, func() bool { return h.srv.lookupPending(id) == nil })
				if n := len(h.ledger.placedHolds()); n != 0 || len(h.ledger.usages) != 0 {
					t.Errorf("%d holds, charged %v; want nothing", n, h.ledger.usages)
				}
				return
			}
			h.attempt(t, id, "openai/gpt-5.4-2026-03-01")
			hold := h.ledger.lastHold(t)
			_ = router.s.CloseSend()
			u := h.ledger.waitSettled(t)
			if u.CostMicros != hold.InputMicros || u.CostMicros <= 0 || u.Status != 499 || u.Provider != "openai" || len(u.Attempts) != 1 {
				t.Errorf("settled %+v; want the input (%d µUSD) at the attempted backend", u, hold.InputMicros)
			}
		})
	}
}

// TestAttemptAnthropicHeaders: an attempt that reaches an Anthropic provider carries the
// client's own anthropic-version and checked anthropic-beta when the client speaks Anthropic,
// else the version the translation targets and no beta; whatever an earlier attempt left in the
// shared header map is replaced or removed.
func TestAttemptAnthropicHeaders(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name        string
		headers     []string
		body        string
		wantVersion string
		wantBeta    string // "" means removed
	}{
		{name: "anthropic client", headers: []string{":method", "POST", ":path", "/v1/messages", "x-api-key", goodKey,
			"anthropic-version", "2023-01-01", "anthropic-beta", "context-1m-2025-08-07"},
			body: `{"model":"msgs-only","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, wantVersion: "2023-01-01", wantBeta: "context-1m-2025-08-07"},
		{name: "openai client on an anthropic fallback", headers: chatHeaders(),
			body: `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`, wantVersion: anthropic.Version},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := h.open(t)
			s.requestHeaders(false, tt.headers...)
			id := routedID(s.requestBody(tt.body))
			// The shared header map as an earlier attempt may have left it.
			cr := h.open(t).send(attemptRequest(id, "anthropic/msgs-only", "anthropic-version", "stale", "anthropic-beta", "stale-beta")).
				GetRequestHeaders().GetResponse()
			set, removed := mutations(cr.GetHeaderMutation())
			if set["anthropic-version"] != tt.wantVersion {
				t.Errorf("anthropic-version %q, want %q", set["anthropic-version"], tt.wantVersion)
			}
			if tt.wantBeta != "" && set["anthropic-beta"] != tt.wantBeta {
				t.Errorf("anthropic-beta %q, want %q", set["anthropic-beta"], tt.wantBeta)
			}
			if tt.wantBeta == "" && (!removed["anthropic-beta"] || set["anthropic-beta"] != "") {
				t.Errorf("anthropic-beta must not reach the provider: set %v removed %v", set, removed)
			}
			// The same request on an OpenAI backend carries neither.
			if tt.wantBeta == "" {
				cr = h.open(t).send(attemptRequest(id, primaryBackend, "anthropic-version", "stale", "anthropic-beta", "stale-beta")).GetRequestHeaders().GetResponse()
				set, removed = mutations(cr.GetHeaderMutation())
				if !removed["anthropic-version"] || !removed["anthropic-beta"] || set["anthropic-version"] != "" {
					t.Errorf("an OpenAI backend gets no Anthropic headers: set %v removed %v", set, removed)
				}
			}
		})
	}
}

// TestStreamServedByFallbackAttempt: the primary's attempt fails and Envoy's retry reaches the
// Anthropic fallback; the router filter sees only that final attempt's response, an Anthropic
// event stream (cut at random points), and streams it to the OpenAI client as chat chunks of the
// model that served, then settles against the provider that served it, both attempts recorded.
func TestStreamServedByFallbackAttempt(t *testing.T) {
	h := newHarness(t)
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	id := routedID(router.requestBody(`{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`))

	first := h.open(t)
	first.send(attemptRequest(id, primaryBackend))
	first.responseHeaders(false, ":status", "503", "content-type", "application/json")
	if cr := h.attempt(t, id, "anthropic/msgs-only").GetRequestHeaders().GetResponse(); cr.GetBodyMutation() == nil {
		t.Fatalf("the fallback attempt was not translated: %v", cr)
	}

	rh := router.responseHeaders(false, ":status", "200", "content-type", "text/event-stream")
	if set, _ := mutations(rh.GetResponseHeaders().GetResponse().GetHeaderMutation()); set["x-tollgate-served-model"] != "msgs-only" {
		t.Errorf("served model header %q, want the fallback", set["x-tollgate-served-model"])
	}
	if rh.GetModeOverride().GetResponseBodyMode() != filterv3.ProcessingMode_STREAMED {
		t.Fatalf("an event stream switches to STREAMED: %v", rh.GetModeOverride())
	}
	raw, err := os.ReadFile("testdata/metering/anthropic.sse")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, uint64(len(raw))))
	var out strings.Builder
	for rest := raw; len(rest) > 0; {
		n := 1 + rng.IntN(min(len(rest), 40))
		out.Write(router.responseBody(rest[:n], false).GetResponseBody().GetResponse().GetBodyMutation().GetBody())
		rest = rest[n:]
	}
	out.Write(router.responseBody(nil, true).GetResponseBody().GetResponse().GetBodyMutation().GetBody())

	got := out.String()
	if !strings.Contains(got, `"object":"chat.completion.chunk"`) || !strings.HasSuffix(got, "data: [DONE]\n\n") || strings.Contains(got, "event: ") {
		t.Errorf("the OpenAI client gets Anthropic's events: %q", got)
	}
	if !strings.Contains(got, `"content":"Hello, "`) || !strings.Contains(got, `"content":"world and more"`) || strings.Count(got, `"model":"msgs-only"`) != strings.Count(got, `"model"`) {
		t.Errorf("content or model lost: %q", got)
	}
	u := h.ledger.waitSettled(t)
	// Anthropic reports 25 input and 40 output tokens: held to this request's bounds on the model
	// that served, a 20-token prompt ("hi") and msgs-only's 10-token output limit.
	if u.Provider != "anthropic" || u.Model != "msgs-only" || !u.Streamed || u.PromptTokens != 20 || u.CompletionTokens != 10 {
		t.Errorf("settled %+v; want Anthropic's usage within the bounds of msgs-only", u)
	}
	var attempts []string
	for _, a := range u.Attempts {
		attempts = append(attempts, a.Backend+" "+strconv.Itoa(a.Status))
	}
	if got := strings.Join(attempts, ", "); got != "openai/gpt-5.4-2026-03-01 503, anthropic/msgs-only 200" {
		t.Errorf("attempts recorded: %s", got)
	}
}
