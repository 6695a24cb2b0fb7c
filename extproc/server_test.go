package extproc

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tollgate/tollgate/envoy/contract"
)

type openAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

// immediate checks resp is an ImmediateResponse with status and an OpenAI-shaped error body of
// code, and returns the error.
func immediate(t *testing.T, resp *extprocv3.ProcessingResponse, status int, code string) openAIError {
	t.Helper()
	ir := resp.GetImmediateResponse()
	if ir == nil {
		t.Fatalf("want an ImmediateResponse, got %v", resp)
	}
	if got := int(ir.GetStatus().GetCode()); got != status {
		t.Errorf("status = %d, want %d", got, status)
	}
	set, _ := mutations(ir.GetHeaders())
	if set["content-type"] != "application/json" || !strings.HasPrefix(set["x-request-id"], "req_") || set["request-id"] != set["x-request-id"] {
		t.Errorf("immediate response headers = %v", set)
	}
	var e openAIError
	if err := json.Unmarshal(ir.GetBody(), &e); err != nil {
		t.Fatalf("body is not JSON: %s", ir.GetBody())
	}
	if e.Error.Code != code || e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("error = %+v, want code %s", e.Error, code)
	}
	if total := resp.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()["total_tokens"]; total == nil || total.GetNumberValue() != 0 {
		t.Errorf("rejections must still carry total_tokens 0 for the ratelimit filter: %v", resp.GetDynamicMetadata())
	}
	return e
}

func TestRequestHeaders(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name       string
		headers    []string
		eos        bool
		wantStatus int // 0: the request continues
		wantCode   string
	}{
		{name: "no key", headers: []string{":method", "POST", ":path", "/v1/chat/completions"}, wantStatus: 401, wantCode: "auth_invalid"},
		{name: "unknown bearer key", headers: []string{":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer tg_nope"}, wantStatus: 401, wantCode: "auth_invalid"},
		{name: "x-api-key", headers: []string{":method", "POST", ":path", "/v1/chat/completions", "x-api-key", goodKey}},
		{name: "gemini key in the query", headers: []string{":method", "POST", ":path", "/v1beta/models/gpt:generateContent?key=" + goodKey}},
		{name: "gateway base path", headers: []string{":method", "POST", ":path", "/v1/gateway/chat/completions?x=1", "authorization", "Bearer " + goodKey}},
		{name: "unknown route", headers: []string{":method", "POST", ":path", "/v2/chat", "authorization", "Bearer " + goodKey}, wantStatus: 404, wantCode: "not_found"},
		{name: "wrong method", headers: []string{":method", "GET", ":path", "/v1/chat/completions", "authorization", "Bearer " + goodKey}, wantStatus: 405, wantCode: "invalid_params"},
		{name: "no body", headers: chatHeaders(), eos: true, wantStatus: 400, wantCode: "invalid_params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.open(t).requestHeaders(tt.eos, tt.headers...)
			if tt.wantStatus != 0 {
				immediate(t, resp, tt.wantStatus, tt.wantCode)
				return
			}
			if resp.GetRequestHeaders() == nil {
				t.Fatalf("want a headers reply, got %v", resp)
			}
		})
	}
}

func TestClientInternalHeadersStripped(t *testing.T) {
	h := newHarness(t)
	resp := h.open(t).requestHeaders(false, chatHeaders("x-tollgate-cluster", "model_gone", "x-tollgate-org", "other-org")...)
	_, removed := mutations(resp.GetRequestHeaders().GetResponse().GetHeaderMutation())
	if !removed["x-tollgate-cluster"] || !removed["x-tollgate-org"] {
		t.Errorf("client-sent x-tollgate-* headers must be removed, removed = %v", removed)
	}
}

func TestModels(t *testing.T) {
	h := newHarness(t)
	resp := h.open(t).requestHeaders(true, ":method", "GET", ":path", "/v1/models", "authorization", "Bearer "+goodKey)
	ir := resp.GetImmediateResponse()
	if ir.GetStatus().GetCode() != 200 {
		t.Fatalf("status %v", ir.GetStatus())
	}
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID, Object, OwnedBy string
		} `json:"data"`
	}
	if err := json.Unmarshal(ir.GetBody(), &list); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	if got, want := strings.Join(ids, ","), "eu/gpt-5.4,every,gpt-5.4,msgs-only,old"; got != want || list.Object != "list" {
		t.Errorf("listed %s (%s), want %s", got, list.Object, want)
	}

	// A retrieval resolves the id as chat does: percent-decoded, aliases to their canonical
	// model, in the region asked for.
	for _, tt := range []struct{ path, wantID string }{
		{"/v1/models/eu/gpt-5.4", "eu/gpt-5.4"},
		{"/v1/models/eu%2Fgpt-5.4", "eu/gpt-5.4"},
		{"/v1/models/gpt", "gpt-5.4"},
		{"/v1/models/eu%2Fgpt", "eu/gpt-5.4"},
		{"/v1beta/models/models%2Fgpt", "models/gpt-5.4"},
	} {
		resp = h.open(t).requestHeaders(true, ":method", "GET", ":path", tt.path, "authorization", "Bearer "+goodKey)
		if ir := resp.GetImmediateResponse(); ir.GetStatus().GetCode() != 200 || !strings.Contains(string(ir.GetBody()), `"`+tt.wantID+`"`) {
			t.Errorf("GET %s = %d %s, want %s", tt.path, ir.GetStatus().GetCode(), ir.GetBody(), tt.wantID)
		}
	}
	immediate(t, h.open(t).requestHeaders(true, ":method", "GET", ":path", "/v1/models/gone", "authorization", "Bearer "+goodKey), 404, "invalid_model")
	immediate(t, h.open(t).requestHeaders(true, ":method", "GET", ":path", "/v1/models/%zz", "authorization", "Bearer "+goodKey), 404, "invalid_model")
}

// TestUnknownGeminiMethod: a Gemini method this gateway does not serve is a 404, not a 405 that
// tells the caller to use GET.
func TestUnknownGeminiMethod(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/v1beta/models/gpt:embedContent", "/v1/models/gpt:predictLongRunning", "/v1beta/models/gpt:bogus"} {
		resp := h.open(t).requestHeaders(false, ":method", "POST", ":path", path, "x-goog-api-key", goodKey)
		ir := resp.GetImmediateResponse()
		if ir.GetStatus().GetCode() != 404 || !strings.Contains(string(ir.GetBody()), "NOT_FOUND") {
			t.Errorf("POST %s = %d %s, want a Gemini-shaped 404", path, ir.GetStatus().GetCode(), ir.GetBody())
		}
	}
}

func TestRequestBodyRejects(t *testing.T) {
	h := newHarness(t)
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name       string
		key        string
		body       string
		wantStatus int
		wantCode   string
		wantInMsg  string
	}{
		{name: "malformed json", body: `{"model":`, wantStatus: 400, wantCode: "invalid_params", wantInMsg: "JSON"},
		{name: "unknown model", body: `{"model":"gpt-9",` + msgs + `}`, wantStatus: 404, wantCode: "invalid_model", wantInMsg: "gpt-9"},
		{name: "no eu backend", body: `{"model":"eu/old",` + msgs + `}`, wantStatus: 404, wantCode: "model_not_available", wantInMsg: "eu/old"},
		{name: "sunset names replacement", body: `{"model":"gone",` + msgs + `}`, wantStatus: 404, wantCode: "model_not_available", wantInMsg: "use gpt-5.4"},
		{name: "endpoint unsupported", body: `{"model":"msgs-only",` + msgs + `}`, wantStatus: 404, wantCode: "model_not_supported"},
		{name: "outside the plan", key: "tg_planned", body: `{"model":"gpt",` + msgs + `}`, wantStatus: 404, wantCode: "model_not_available", wantInMsg: "plan"},
		{name: "no subscription", key: "tg_unsubscribed", body: `{"model":"gpt",` + msgs + `}`, wantStatus: 402, wantCode: "subscription_required"},
		{name: "too large", body: `{"model":"gpt","x":"` + strings.Repeat("a", 1<<20) + `",` + msgs + `}`, wantStatus: 413, wantCode: "request_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			if key == "" {
				key = goodKey
			}
			s := h.open(t)
			s.requestHeaders(false, ":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer "+key)
			e := immediate(t, s.requestBody(tt.body), tt.wantStatus, tt.wantCode)
			if !strings.Contains(e.Error.Message, tt.wantInMsg) {
				t.Errorf("message %q does not contain %q", e.Error.Message, tt.wantInMsg)
			}
		})
	}
	if len(h.ledger.usages) != 0 {
		t.Errorf("rejected requests were settled: %v", h.ledger.usages)
	}
}

// TestGatewayDisabledEverywhere: an organisation without gateway access gets 403 on every route,
// before any body is read, model listings and the management API included.
func TestGatewayDisabledEverywhere(t *testing.T) {
	h := newHarness(t)
	for _, rt := range []struct{ method, path string }{
		{"POST", "/v1/chat/completions"}, {"POST", "/v1/messages"}, {"POST", "/v1beta/models/gpt:generateContent"},
		{"GET", "/v1/models"}, {"GET", "/v1/models/gpt"}, {"GET", "/v1beta/models"}, {"GET", "/v1/management/balance"},
	} {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			s := h.open(t)
			resp := s.requestHeaders(false, ":method", rt.method, ":path", rt.path, "authorization", "Bearer tg_disabled")
			if got := resp.GetImmediateResponse().GetStatus().GetCode(); got != 403 {
				t.Fatalf("status %d, want 403: %v", got, resp)
			}
			if !strings.Contains(string(resp.GetImmediateResponse().GetBody()), "not enabled") {
				t.Errorf("body %s", resp.GetImmediateResponse().GetBody())
			}
		})
	}
}

// TestRequestBodyRoutes: the router filter's body reply only routes (the cluster header, the
// route cache cleared, the dynamic metadata the rate limits and attempts read) and leaves the
// client's body alone; the first attempt on the cluster's backend sends the provider its own
// path, credential and body, and none of the client's credentials.
func TestRequestBodyRoutes(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		model, wantCluster, backend, wantPath, wantAuthHeader, wantAuth, wantUpstreamModel string
	}{
		{model: "gpt", wantCluster: "model_gpt-5.4", backend: primaryBackend, wantPath: "/v1/chat/completions",
			wantAuthHeader: "authorization", wantAuth: "Bearer sk-openai", wantUpstreamModel: "gpt-5.4-2026-03-01"},
		{model: "eu/gpt-5.4", wantCluster: "model_gpt-5.4_eu", backend: "compat-eu/gpt-eu", wantPath: "/openai/v1/chat/completions",
			wantAuthHeader: "api-key", wantAuth: "sk-eu", wantUpstreamModel: "gpt-eu"},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			s := h.open(t)
			s.requestHeaders(false, chatHeaders("x-api-key", goodKey)...)
			resp, attempt := h.routeAndAttempt(s, `{"model":"`+tt.model+`","messages":[{"role":"user","content":"hi"}]}`, tt.backend)
			cr := resp.GetRequestBody().GetResponse()
			if cr == nil {
				t.Fatalf("want a body reply, got %v", resp)
			}
			if !cr.GetClearRouteCache() {
				t.Error("clear_route_cache must be set so Envoy re-reads x-tollgate-cluster")
			}
			set, _ := mutations(cr.GetHeaderMutation())
			if len(set) != 1 || set["x-tollgate-cluster"] != tt.wantCluster || cr.GetBodyMutation() != nil {
				t.Errorf("the router filter sets only x-tollgate-cluster %s and keeps the body: set %v, body %v", tt.wantCluster, set, cr.GetBodyMutation())
			}
			// The rate-limit descriptors are built from this metadata, and the attempts find the
			// request by its request_id.
			md := resp.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()
			if md["org_id"].GetStringValue() != orgID || md["key_id"].GetStringValue() != keyID || md["model"].GetStringValue() != "gpt-5.4" || !strings.HasPrefix(md["request_id"].GetStringValue(), "req_") {
				t.Errorf("dynamic metadata = %v", md)
			}

			ar := attempt.GetRequestHeaders().GetResponse()
			if ar.GetStatus() != extprocv3.CommonResponse_CONTINUE_AND_REPLACE {
				t.Errorf("the attempt replaces the body: status %v", ar.GetStatus())
			}
			set, removed := mutations(ar.GetHeaderMutation())
			body := ar.GetBodyMutation().GetBody()
			want := map[string]string{":path": tt.wantPath, tt.wantAuthHeader: tt.wantAuth}
			for k, v := range want {
				if set[k] != v {
					t.Errorf("attempt header %s = %q, want %q", k, set[k], v)
				}
			}
			if cl := attempt.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()["content_length"].GetStringValue(); cl != strconv.Itoa(len(body)) {
				t.Errorf("content_length metadata %q for a %d-byte body", cl, len(body))
			}
			if !removed["x-api-key"] && set["x-api-key"] == "" {
				t.Error("the client's x-api-key must not reach the provider")
			}
			if tt.wantAuthHeader != "authorization" && !removed["authorization"] {
				t.Error("the client's authorization must not reach the provider")
			}
			if !removed["x-tollgate-cluster"] {
				t.Error("the gateway's routing header must not reach the provider")
			}
			var sent struct{ Model string }
			if err := json.Unmarshal(body, &sent); err != nil || sent.Model != tt.wantUpstreamModel {
				t.Errorf("upstream body model = %q (%v), want %q", sent.Model, err, tt.wantUpstreamModel)
			}
			for k, v := range set {
				if strings.HasPrefix(k, "x-tollgate-") || strings.Contains(v, goodKey) {
					t.Errorf("the attempt sets %s: %q", k, v)
				}
			}
		})
	}
}

func TestBufferedResponse(t *testing.T) {
	h := newHarness(t)
	s := h.open(t)
	s.requestHeaders(false, chatHeaders()...)
	h.routeAndAttempt(s, `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`, "")
	rh := s.responseHeaders(false, ":status", "200", "content-type", "application/json", "content-length", "999", "openai-organization", "operator-org")
	set, removed := mutations(rh.GetResponseHeaders().GetResponse().GetHeaderMutation())
	if !removed["openai-organization"] {
		t.Error("the operator's provider account must not be revealed")
	}
	id := set["x-request-id"]
	if !strings.HasPrefix(id, "req_") || set["request-id"] != id || set["x-tollgate-request-id"] != id {
		t.Errorf("request id headers = %v", set)
	}
	if rh.GetModeOverride() != nil {
		t.Error("a JSON response stays BUFFERED")
	}
	upstream := `{"id":"c","object":"chat.completion","model":"gpt-5.4-2026-03-01","choices":[{"index":0,"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":500,"total_tokens":512}}`
	rb := s.responseBody([]byte(upstream), true)
	cr := rb.GetResponseBody().GetResponse()
	body := cr.GetBodyMutation().GetBody()
	set, _ = mutations(cr.GetHeaderMutation())
	if set["content-length"] != strconv.Itoa(len(body)) {
		t.Errorf("content-length %s does not match the %d-byte body", set["content-length"], len(body))
	}
	if !strings.Contains(string(body), `"model":"gpt-5.4"`) {
		t.Errorf("body does not name the canonical model: %s", body)
	}
	md := rb.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()
	if md["total_tokens"].GetNumberValue() != 512 {
		t.Errorf("total_tokens metadata = %v", md)
	}
	u := h.ledger.waitSettled(t)
	// 12 × $1/M + 500 × $2/M = 12 + 1000 µUSD, +10% markup = 1113.2, rounded up.
	if u.CostMicros != 1114 || u.PromptTokens != 12 || u.CompletionTokens != 500 || u.RequestID != id || u.Streamed || u.Provider != "openai" || u.RequestedModel != "gpt" {
		t.Errorf("settled %+v", u)
	}
}

func TestUpstreamErrorRewritten(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name   string
		status string
		body   string
		// ratelimited marks the response with Envoy's ratelimit filter header.
		ratelimited bool
		wantStatus  string
		wantCode    string
	}{
		{name: "provider 500", status: "500", body: `{"error":{"message":"boom"}}`, wantStatus: "502", wantCode: "provider_error"},
		{name: "provider 429", status: "429", body: `{"error":{"message":"slow down, org sk-op…"}}`, wantStatus: "429", wantCode: "rate_limit"},
		{name: "provider 429 posing as the gateway's", status: "429", ratelimited: true, body: `{"error":{"message":"Rate limit for org sk-op…"}}`, wantStatus: "429", wantCode: "rate_limit"},
		{name: "provider 400 naming the operator", status: "400", body: `{"error":{"message":"bad metadata for sk-op123456789","param":"metadata"}}`, wantStatus: "400", wantCode: "invalid_params"},
		{name: "provider rejects operator key", status: "401", body: `{"error":{"message":"bad key sk-op…"}}`, wantStatus: "502", wantCode: "provider_error"},
		// Envoy's own replies after routing are told apart by the attempts: TestLocalReplyMapping.
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := h.open(t)
			s.requestHeaders(false, chatHeaders()...)
			// The provider answers the attempt, whose upstream filter records the status first.
			id := routedID(s.requestBody(`{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
			a := h.open(t)
			a.send(attemptRequest(id, "openai/gpt-5.4-2026-03-01"))
			a.responseHeaders(false, ":status", tt.status, "content-type", "application/json")
			hdrs := []string{":status", tt.status, "content-type", "text/plain"}
			if tt.ratelimited {
				hdrs = append(hdrs, "x-envoy-ratelimited", "true")
			}
			rh := s.responseHeaders(false, hdrs...)
			if rh.GetModeOverride() != nil {
				t.Error("error responses stay BUFFERED to be rewritten whole")
			}
			cr := s.responseBody([]byte(tt.body), true).GetResponseBody().GetResponse()
			set, _ := mutations(cr.GetHeaderMutation())
			if set[":status"] != tt.wantStatus || set["content-type"] != "application/json" {
				t.Errorf("headers %v, want :status %s", set, tt.wantStatus)
			}
			var e openAIError
			if err := json.Unmarshal(cr.GetBodyMutation().GetBody(), &e); err != nil || e.Error.Code != tt.wantCode {
				t.Errorf("body %s, want code %s", cr.GetBodyMutation().GetBody(), tt.wantCode)
			}
			if strings.Contains(e.Error.Message, "sk-op") {
				t.Error("a provider's complaint about the operator's key must not reach the client")
			}
		})
	}
}

// TestLocalReplyWithoutRequestBody covers Envoy's own 413: it is sent while the body is still
// being buffered, so the processor sees response headers without ever seeing the body.
func TestLocalReplyWithoutRequestBody(t *testing.T) {
	h := newHarness(t)
	s := h.open(t)
	s.requestHeaders(false, chatHeaders()...)
	s.responseHeaders(false, ":status", "413", "content-type", "text/plain")
	cr := s.responseBody([]byte("Payload Too Large"), true).GetResponseBody().GetResponse()
	var e openAIError
	if err := json.Unmarshal(cr.GetBodyMutation().GetBody(), &e); err != nil || e.Error.Code != "request_too_large" {
		t.Errorf("body %s", cr.GetBodyMutation().GetBody())
	}
}

const upstreamStream = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hé\"},\"finish_reason\":null}],\"usage\":null}\n\n" +
	"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"llo\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n" +
	"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n" +
	"data: [DONE]\n\n"

func TestStreamedResponse(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		t.Run("include_usage="+strconv.FormatBool(includeUsage), func(t *testing.T) {
			h := newHarness(t)
			s := h.open(t)
			s.requestHeaders(false, chatHeaders()...)
			opts := ""
			if includeUsage {
				opts = `,"stream_options":{"include_usage":true}`
			}
			h.routeAndAttempt(s, `{"model":"gpt","stream":true`+opts+`,"messages":[{"role":"user","content":"hi"}]}`, "")
			rh := s.responseHeaders(false, ":status", "200", "content-type", "text/event-stream; charset=utf-8", "content-length", "100")
			mo := rh.GetModeOverride()
			if mo.GetResponseBodyMode() != filterv3.ProcessingMode_STREAMED {
				t.Fatalf("mode_override = %v, want response body STREAMED", mo)
			}
			if _, removed := mutations(rh.GetResponseHeaders().GetResponse().GetHeaderMutation()); !removed["content-length"] {
				t.Error("content-length must be removed when switching to STREAMED")
			}
			// Chunks cut at random points, then Envoy's empty end_of_stream chunk.
			rng := rand.New(rand.NewPCG(7, uint64(len(upstreamStream))))
			var out strings.Builder
			for rest := upstreamStream; rest != ""; {
				n := 1 + rng.IntN(min(len(rest), 30))
				out.Write(s.responseBody([]byte(rest[:n]), false).GetResponseBody().GetResponse().GetBodyMutation().GetBody())
				rest = rest[n:]
			}
			last := s.responseBody(nil, true)
			out.Write(last.GetResponseBody().GetResponse().GetBodyMutation().GetBody())

			got := out.String()
			if !strings.HasSuffix(got, "data: [DONE]\n\n") || strings.Count(got, "[DONE]") != 1 {
				t.Errorf("stream must end with exactly one [DONE]: %q", got)
			}
			if strings.Contains(got, `"usage"`) != includeUsage {
				t.Errorf("usage present = %v, client asked %v: %q", !includeUsage, includeUsage, got)
			}
			if strings.Count(got, `"model":"gpt-5.4"`) != strings.Count(got, `"model"`) {
				t.Errorf("every chunk must name the canonical model: %q", got)
			}
			md := last.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()
			if md["total_tokens"].GetNumberValue() != 9 {
				t.Errorf("total_tokens metadata on the last chunk = %v", md)
			}
			u := h.ledger.waitSettled(t)
			if !u.Streamed || u.PromptTokens != 7 || u.CompletionTokens != 2 || u.FinishReason != "stop" {
				t.Errorf("settled %+v", u)
			}
		})
	}
}

// TestStreamCancelledChargesDelivered: the client leaves mid-stream (Envoy resets the ext_proc
// stream); what was delivered is still charged.
func TestStreamCancelledChargesDelivered(t *testing.T) {
	h := newHarness(t)
	s := h.open(t)
	s.requestHeaders(false, chatHeaders()...)
	h.routeAndAttempt(s, `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "")
	s.responseHeaders(false, ":status", "200", "content-type", "text/event-stream")
	first := upstreamStream[:strings.Index(upstreamStream, "\n\n")+2]
	s.responseBody([]byte(first), false)
	if err := s.s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	u := h.ledger.waitSettled(t)
	// No usage arrived: the prompt at its bound, and a token per byte of content delivered.
	if u.FinishReason != "incomplete" || u.CompletionTokens != int64(len("Hé")) || u.PromptTokens == 0 || u.CostMicros <= 0 {
		t.Errorf("settled %+v; want an incomplete request charged for the content delivered and the prompt", u)
	}
}

func TestMalformedStreamEndsWithError(t *testing.T) {
	h := newHarness(t)
	s := h.open(t)
	s.requestHeaders(false, chatHeaders()...)
	h.routeAndAttempt(s, `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "")
	s.responseHeaders(false, ":status", "200", "content-type", "text/event-stream")
	out := s.responseBody([]byte("data: {not json}\n\n"), false).GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	if !strings.Contains(string(out), `"code":"provider_error"`) || !strings.HasSuffix(string(out), "data: [DONE]\n\n") {
		t.Errorf("out = %q", out)
	}
	after := s.responseBody([]byte("data: {\"choices\":[]}\n\n"), true).GetResponseBody().GetResponse().GetBodyMutation()
	if len(after.GetBody()) != 0 {
		t.Errorf("nothing may follow the error event: %q", after.GetBody())
	}
	h.ledger.waitSettled(t)
}

// TestInsufficientCredit: the first attempt cannot hold credit; it ends in a local reply Envoy
// does not retry, and the router filter answers the client with the hold's error in its own
// protocol (hold_test.go TestAttemptHoldFailure follows the messages; this checks the shapes).
func TestInsufficientCredit(t *testing.T) {
	tests := []struct {
		name     string
		headers  []string
		body     string
		backend  string
		balance  int64 // µUSD
		wantBody string
	}{
		{name: "openai", headers: chatHeaders(), body: `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`, backend: primaryBackend,
			balance: 100, wantBody: `"type":"reject_no_credit","param":null,"code":"insufficient_quota"`},
		// msgs-only is unpriced: only an overdrawn balance refuses its zero hold.
		{name: "anthropic", headers: []string{":method", "POST", ":path", "/v1/messages", "x-api-key", goodKey, "anthropic-version", "2023-06-01"},
			body: `{"model":"msgs-only","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, backend: "anthropic/msgs-only",
			balance: -1, wantBody: `{"type":"error","error":{"type":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.ledger.mu.Lock()
			h.ledger.balance = tt.balance // less than the request's upper bound
			h.ledger.mu.Unlock()
			s := h.open(t)
			s.requestHeaders(false, tt.headers...)
			id := routedID(s.requestBody(tt.body))
			ir := h.attempt(t, id, tt.backend).GetImmediateResponse()
			if ir.GetStatus().GetCode() != 402 {
				t.Fatalf("attempt answered %v, want a 402 local reply", ir)
			}
			s.responseHeaders(false, ":status", "402", "content-type", "application/json")
			rb := s.responseBody(ir.GetBody(), true).GetResponseBody().GetResponse()
			set, _ := mutations(rb.GetHeaderMutation())
			body := string(rb.GetBodyMutation().GetBody())
			if set[":status"] != "402" || !strings.Contains(body, tt.wantBody) || !strings.Contains(body, "credit") {
				t.Errorf("status %s body %s, want a 402 with %s", set[":status"], body, tt.wantBody)
			}
			if h.ledger.openHolds() != 0 || len(h.ledger.placedHolds()) != 0 {
				t.Error("a refused request must hold nothing")
			}
		})
	}
}

// TestHoldLifecycle: how each way a request can end returns the hold its first attempt placed. An
// upstream error is released; a request whose attempt went to the provider and that then lost
// its client is charged its input, not released for free.
func TestHoldLifecycle(t *testing.T) {
	tests := []struct {
		name       string
		body       string // default: a non-streamed chat request
		run        func(s *stream)
		wantCharge bool
	}{
		{name: "upstream error releases", run: func(s *stream) {
			s.responseHeaders(false, ":status", "500", "content-type", "application/json")
			s.responseBody([]byte(`{"error":{"message":"x"}}`), true)
		}},
		{name: "client gone before the response is charged its input", wantCharge: true, run: func(s *stream) {
			_ = s.s.CloseSend()
		}},
		{name: "client gone after the response headers is charged its input", wantCharge: true, run: func(s *stream) {
			s.responseHeaders(false, ":status", "200", "content-type", "application/json")
			_ = s.s.CloseSend()
		}},
		{name: "streamed request, client gone before the first byte, is charged its input", wantCharge: true,
			body: `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			run:  func(s *stream) { _ = s.s.CloseSend() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			s := h.open(t)
			s.requestHeaders(false, chatHeaders()...)
			body := tt.body
			if body == "" {
				body = `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`
			}
			h.routeAndAttempt(s, body, "")
			if h.ledger.openHolds() != 1 {
				t.Fatalf("an admitted request holds credit: %d holds", h.ledger.openHolds())
			}
			hold := h.ledger.lastHold(t)
			tt.run(s)
			if !tt.wantCharge {
				poll(t, func() bool { return h.ledger.openHolds() == 0 })
				if len(h.ledger.usages) != 0 {
					t.Errorf("nothing is charged: %v", h.ledger.usages)
				}
				return
			}
			u := h.ledger.waitSettled(t)
			if u.CostMicros != hold.InputMicros || u.CostMicros <= 0 || u.Status != 499 || u.FinishReason != "cancelled" ||
				u.PromptTokens == 0 || u.CompletionTokens != 0 {
				t.Errorf("settled %+v; want the input (%d µUSD) of a cancelled request", u, hold.InputMicros)
			}
			if ids := h.ledger.releasedIDs(); len(ids) != 0 {
				t.Errorf("released %v as well as charged", ids)
			}
		})
	}
}

// TestHoldCarriesInputCharge: the hold records what the request costs at least once a provider
// has read it (what the sweeper charges if the hold expires): the prompt's lower-bound token
// estimate at the primary model's prompt rate, with the org's markup, never above the hold.
func TestHoldCarriesInputCharge(t *testing.T) {
	h := newHarness(t)
	s := h.open(t)
	s.requestHeaders(false, chatHeaders()...)
	content := strings.Repeat("x", 4000)
	h.routeAndAttempt(s, `{"model":"gpt","messages":[{"role":"user","content":"`+content+`"}]}`, "")
	hold := h.ledger.lastHold(t)
	// 4000 bytes of content plus the message's framing: at least 1000 tokens at $1/M (1 µUSD
	// each) plus 10% markup, and at most a quarter more for the framing.
	if hold.InputMicros < 1_100 || hold.InputMicros > 1_200 || hold.InputMicros > hold.AmountMicros {
		t.Errorf("hold %+v; want an input charge of about 1100 µUSD, within the hold", hold)
	}
}

// TestGatewayQuota429: the ratelimit filter's local reply reaches the processor through the
// encode path before any attempt started; it is re-rendered with the service's message, no
// hold was placed, and the quota headers keep one value each.
func TestGatewayQuota429(t *testing.T) {
	h := newHarness(t)
	s := h.open(t)
	s.requestHeaders(false, chatHeaders()...)
	id := routedID(s.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`))
	rh := s.responseHeaders(false, ":status", "429", "content-type", "application/json", "x-envoy-ratelimited", "true",
		"retry-after", "12", "x-ratelimit-remaining-requests", "99", "x-ratelimit-remaining-requests", "0")
	set, _ := mutations(rh.GetResponseHeaders().GetResponse().GetHeaderMutation())
	if set["x-ratelimit-remaining-requests"] != "0" {
		t.Errorf("the gateway's (last) quota header must win: %v", set)
	}
	rb := s.responseBody([]byte(`{"error":{"message":"Rate limit exceeded: your Tollgate gateway quota \"rpm\" allows 1 requests per minute; retry after 1s.","type":"rate_limit","param":null,"code":"rate_limit"}}`), true)
	var e openAIError
	if err := json.Unmarshal(rb.GetResponseBody().GetResponse().GetBodyMutation().GetBody(), &e); err != nil {
		t.Fatal(err)
	}
	if e.Error.Code != "rate_limit" || !strings.HasPrefix(e.Error.Message, "Rate limit exceeded: your Tollgate gateway quota \"rpm\"") {
		t.Errorf("error = %+v", e.Error)
	}
	_ = s.s.CloseSend()
	poll(t, func() bool { return h.srv.lookupPending(id) == nil })
	if n := len(h.ledger.placedHolds()); n != 0 || len(h.ledger.usages) != 0 {
		t.Errorf("%d holds placed, charged %v; a request refused by its quota costs nothing", n, h.ledger.usages)
	}
}

func TestManagementRoute(t *testing.T) {
	h := newHarness(t)
	immediate(t, h.open(t).requestHeaders(true, ":method", "GET", ":path", "/v1/management/balance", "authorization", "Bearer "+goodKey), 403, "access_denied")

	s := h.open(t)
	resp := s.requestHeaders(true, ":method", "GET", ":path", "/v1/management/usage.csv?bucket=day", "authorization", "Bearer tg_mgmt", "x-tollgate-org", "someone-else")
	cr := resp.GetRequestHeaders().GetResponse()
	set, removed := mutations(cr.GetHeaderMutation())
	if set["x-tollgate-cluster"] != contract.ManagementCluster || !cr.GetClearRouteCache() || !removed["x-tollgate-org"] {
		t.Fatalf("management request: set %v removed %v clear %v", set, removed, cr.GetClearRouteCache())
	}
	// The management route's per-key rate limit reads these.
	md := resp.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()
	if md["org_id"].GetStringValue() != orgID || md["key_id"].GetStringValue() != keyID {
		t.Errorf("management request metadata = %v, want org_id and key_id", resp.GetDynamicMetadata())
	}
	rh := s.responseHeaders(false, ":status", "200", "content-type", "text/csv")
	if rh.GetModeOverride().GetResponseBodyMode() != filterv3.ProcessingMode_STREAMED {
		t.Error("management responses stream through unchanged")
	}
	if rb := s.responseBody([]byte("a,b\n"), false); rb.GetResponseBody().GetResponse().GetBodyMutation() != nil {
		t.Error("management bodies pass unchanged")
	}
}

func TestModelsFilteredByPlan(t *testing.T) {
	h := newHarness(t)
	resp := h.open(t).requestHeaders(true, ":method", "GET", ":path", "/v1/models", "authorization", "Bearer tg_planned")
	body := string(resp.GetImmediateResponse().GetBody())
	if !strings.Contains(body, `"id":"old"`) || strings.Contains(body, "gpt-5.4") {
		t.Errorf("a planned org lists only its plan's models: %s", body)
	}
	immediate(t, h.open(t).requestHeaders(true, ":method", "GET", ":path", "/v1/models/gpt-5.4", "authorization", "Bearer tg_planned"), 404, "invalid_model")
}

// TestKeyKinds checks that each key kind reaches only its own API, and that the refusal is in the
// shape of the protocol the client speaks.
func TestKeyKinds(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name    string
		headers []string
		status  int // 0: the request goes on
		// wantBody is a fragment of the refusal in the client's protocol.
		wantBody string
	}{
		{name: "management key on chat", headers: []string{":method", "POST", ":path", "/v1/chat/completions", "authorization", "Bearer tg_mgmt"},
			status: 403, wantBody: `"code":"access_denied"`},
		{name: "management key on messages", headers: []string{":method", "POST", ":path", "/v1/messages", "x-api-key", "tg_mgmt", "anthropic-version", "2023-06-01"},
			status: 403, wantBody: `"type":"permission_error"`},
		{name: "management key on gemini", headers: []string{":method", "POST", ":path", "/v1beta/models/gpt-5.4:generateContent", "x-goog-api-key", "tg_mgmt"},
			status: 403, wantBody: `"status":"PERMISSION_DENIED"`},
		{name: "management key lists models", headers: []string{":method", "GET", ":path", "/v1/models", "authorization", "Bearer tg_mgmt"},
			status: 403, wantBody: `"code":"access_denied"`},
		{name: "management key reads a model", headers: []string{":method", "GET", ":path", "/v1beta/models/gpt-5.4", "x-goog-api-key", "tg_mgmt"},
			status: 403, wantBody: `"reason":"ACCESS_DENIED"`},
		{name: "standard key on management", headers: []string{":method", "GET", ":path", "/v1/management/balance", "authorization", "Bearer " + goodKey},
			status: 403, wantBody: `"code":"access_denied"`},
		{name: "management key on management", headers: []string{":method", "GET", ":path", "/v1/management/balance", "authorization", "Bearer tg_mgmt"}},
		{name: "standard key on chat", headers: chatHeaders()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.open(t).requestHeaders(tt.headers[1] == "GET", tt.headers...)
			ir := resp.GetImmediateResponse()
			if tt.status == 0 {
				if ir != nil {
					t.Fatalf("refused: %d %s", ir.GetStatus().GetCode(), ir.GetBody())
				}
				return
			}
			if ir == nil {
				t.Fatalf("want a %d refusal, got %v", tt.status, resp)
			}
			if got := int(ir.GetStatus().GetCode()); got != tt.status || !strings.Contains(string(ir.GetBody()), tt.wantBody) {
				t.Errorf("got %d %s, want %d with %s", got, ir.GetBody(), tt.status, tt.wantBody)
			}
		})
	}
}
