package standin_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tollgate/tollgate/envoy/bootstrap"
)

// TestRateLimitDescriptorsFromExtProcHeaders: with Tollgate's rendered RateLimitPerRoute,
// the ratelimit filter's decodeHeaders runs once ext_proc's request_body reply released the
// headers, so its request_headers actions read the x-tollgate-* headers extproc set there.
// Each scope whose header is missing yields no descriptor; request-path entries carry
// hits_addend 0 for tpm/tpd and none for rpm; domain is tollgate.
//
// Envoy: source/extensions/filters/http/ratelimit/ratelimit.cc Filter::decodeHeaders,
// populateRateLimitDescriptors (RateLimitPerRoute first); source/extensions/filters/common/
// ratelimit_config/ratelimit_config.cc RateLimitPolicy::populateDescriptors (stops at the
// first action that yields nothing); source/common/router/router_ratelimit.cc
// RequestHeadersAction, GenericKeyAction; filters/common/ratelimit/ratelimit_impl.cc
// createRequest (hits_addend only when set, 0 included).
func TestRateLimitDescriptorsFromExtProcHeaders(t *testing.T) {
	tests := []struct {
		name string
		id   identity
		want []string
	}{
		{"org key model", identity{"o1", "k1", "m1"}, []string{
			"quota=rpm,org=o1,model=m1 hits=-", "quota=tpm,org=o1,model=m1 hits=0", "quota=tpd,org=o1,model=m1 hits=0",
			"quota=rpm,org=o1 hits=-", "quota=tpm,org=o1 hits=0", "quota=tpd,org=o1 hits=0",
			"quota=rpm,org=o1,key=k1 hits=-", "quota=tpm,org=o1,key=k1 hits=0", "quota=tpd,org=o1,key=k1 hits=0",
			"quota=rpm,org=o1,key=k1,model=m1 hits=-", "quota=tpm,org=o1,key=k1,model=m1 hits=0", "quota=tpd,org=o1,key=k1,model=m1 hits=0",
		}},
		{"no key: key scopes dropped", identity{"o1", "", "m1"}, []string{
			"quota=rpm,org=o1,model=m1 hits=-", "quota=tpm,org=o1,model=m1 hits=0", "quota=tpd,org=o1,model=m1 hits=0",
			"quota=rpm,org=o1 hits=-", "quota=tpm,org=o1 hits=0", "quota=tpd,org=o1 hits=0",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rls, rlsAddr := startRLS(t, rlsOK)
			var hits atomic.Int64
			up := countingUpstream(t, &hits, nil)
			_, addr := startProcessor(t, replyEach(tollgateReplies(t, tt.id, 0)))
			px := startProxy(t, rateLimitBootstrap(t, addr, rlsAddr, bootstrap.RateLimit{}, up))
			if resp, body := do(t, http.MethodPost, px.url("/v1/chat"), "{}"); resp.StatusCode != 200 {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			req := rls.next(t)
			if req.GetDomain() != "tollgate" {
				t.Errorf("domain = %q", req.GetDomain())
			}
			if got := describe(req); !slices.Equal(got, tt.want) {
				t.Errorf("descriptors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestRateLimitActions: generic_key (descriptor_key defaults to "generic_key"), metadata
// (dynamic, strings only, default_value, skip_if_absent omits the entry) and
// request_headers (absent: descriptor dropped unless skip_if_absent); RateLimitPerRoute's
// domain overrides the filter's.
//
// Envoy: source/common/router/router_ratelimit.cc GenericKeyAction, MetaDataAction,
// RequestHeadersAction; ratelimit_config.cc populateDescriptors (an entry with an empty key
// is left out); ratelimit.cc Filter::getDomain.
func TestRateLimitActions(t *testing.T) {
	generic := func(k, v string) *routev3.RateLimit_Action {
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
			GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: k, DescriptorValue: v}}}
	}
	md := func(key, field, def string, skip bool) *routev3.RateLimit_Action {
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Metadata{Metadata: &routev3.RateLimit_Action_MetaData{
			DescriptorKey: key,
			MetadataKey:   &metadatav3.MetadataKey{Key: "tollgate", Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: field}}}},
			DefaultValue:  def,
			SkipIfAbsent:  skip,
		}}}
	}
	header := func(name, key string, skip bool) *routev3.RateLimit_Action {
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
			RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: name, DescriptorKey: key, SkipIfAbsent: skip}}}
	}
	entry := func(actions ...*routev3.RateLimit_Action) *routev3.RateLimit {
		return &routev3.RateLimit{Actions: actions}
	}
	pr := &ratelimitv3.RateLimitPerRoute{Domain: "custom", RateLimits: []*routev3.RateLimit{
		entry(generic("", "v")),                                   // default key
		entry(md("plan", "plan", "", false)),                      // string metadata
		entry(md("tier", "tier", "free", false)),                  // absent: default_value
		entry(md("n", "count", "", false)),                        // a number is not a string: dropped
		entry(md("x", "missing", "", true), generic("g", "kept")), // skip_if_absent: entry omitted
		entry(header("x-missing", "h", false)),                    // absent header: dropped
		entry(header("x-missing", "h", true), generic("g", "h")),  // skip_if_absent
		entry(header("X-Client", "client", false)),                // names are case-insensitive
	}}
	want := []string{"generic_key=v hits=-", "plan=gold hits=-", "tier=free hits=-", "g=kept hits=-", "g=h hits=-", "client=c1 hits=-"}

	rls, rlsAddr := startRLS(t, rlsOK)
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	_, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		if m.GetRequestHeaders() != nil {
			r := routeTo("model_0")(m)
			r.DynamicMetadata = structOf(t, map[string]any{"tollgate": map[string]any{"plan": "gold", "count": 5}})
			return r
		}
		return continueAll(m)
	}))
	b := rateLimitBootstrap(t, addr, rlsAddr, bootstrap.RateLimit{}, up)
	setRateLimitPerRoute(t, b, pr)
	px := startProxy(t, b)
	if resp, body := do(t, http.MethodPost, px.url("/"), "{}", "x-client", "c1"); resp.StatusCode != 200 {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	req := rls.next(t)
	if got := describe(req); !slices.Equal(got, want) {
		t.Errorf("descriptors:\n got %q\nwant %q", got, want)
	}
	if req.GetDomain() != "custom" {
		t.Errorf("domain = %q, want the per-route domain", req.GetDomain())
	}
}

// TestRateLimitOK: an OK answer adds request_headers_to_add to the upstream request and
// response_headers_to_add to the response in the filter's encodeHeaders, which runs before
// ext_proc's (encoder filters run in reverse order), so the processor sees them too; the
// RLS's dynamic_metadata lands in namespace envoy.filters.http.ratelimit.
//
// Envoy: ratelimit.cc Filter::complete (appendRequestHeaders, response_headers_to_add_,
// setDynamicMetadata), Filter::encodeHeaders → populateResponseHeaders;
// ratelimit_impl.cc GrpcClientImpl::onSuccess (HeaderValue.value, keys lower-cased).
func TestRateLimitOK(t *testing.T) {
	_, rlsAddr := startRLS(t, func(context.Context, *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		return &rlsv3.RateLimitResponse{
			OverallCode:          rlsv3.RateLimitResponse_OK,
			RequestHeadersToAdd:  []*corev3.HeaderValue{{Key: "X-RL-Req", Value: "r1"}},
			ResponseHeadersToAdd: []*corev3.HeaderValue{{Key: "x-rl-resp", Value: "s1"}},
			DynamicMetadata:      structOf(t, map[string]any{"decision": "ok"}),
		}, nil
	})
	var hits atomic.Int64
	var upHeaders atomic.Pointer[http.Header]
	up := countingUpstream(t, &hits, &upHeaders)
	proc, addr := startProcessor(t, replyEach(tollgateReplies(t, identity{"o1", "k1", "m1"}, 0)))
	px := startProxy(t, rateLimitBootstrap(t, addr, rlsAddr, bootstrap.RateLimit{}, up))
	resp, body := do(t, http.MethodPost, px.url("/"), "{}")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := (*upHeaders.Load()).Get("x-rl-req"); got != "r1" {
		t.Errorf("upstream x-rl-req = %q", got)
	}
	if got := resp.Header.Get("x-rl-resp"); got != "s1" {
		t.Errorf("client x-rl-resp = %q", got)
	}
	var sawProc bool
	for _, m := range proc.messages() {
		if rh := m.GetResponseHeaders(); rh != nil {
			v, ok := headerValue(rh.GetHeaders(), "x-rl-resp")
			sawProc = ok && v == "s1"
		}
	}
	if !sawProc {
		t.Errorf("processor's response_headers lack x-rl-resp: the ratelimit filter must encode before ext_proc")
	}
	info := px.nextInfo(t)
	if got := info.DynamicMetadata["envoy.filters.http.ratelimit"].GetFields()["decision"].GetStringValue(); got != "ok" {
		t.Errorf("ratelimit dynamic metadata = %v", info.DynamicMetadata)
	}
	if st := px.Stats(); st.RateLimitOK != 1 {
		t.Errorf("RateLimitOK = %d", st.RateLimitOK)
	}
}

// TestRateLimitOverLimit: OVER_LIMIT is a 429 local reply (the upstream is never called)
// whose body is raw_body and whose headers are the RLS's response_headers_to_add plus
// x-envoy-ratelimited: true; an RLS content-type replaces the text/plain a local reply
// with a body gets; an empty body has neither content-type nor content-length.
//
// Envoy: ratelimit.cc Filter::complete (OverLimit: setReferenceEnvoyRateLimited, then
// sendLocalReply(rateLimitedStatus(), response_body, populateResponseHeaders(…, true))),
// Filter::populateResponseHeaders; source/common/http/utility.cc Utility::sendLocalReply
// (modify_headers first, then content-type only if absent).
func TestRateLimitOverLimit(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		headers   []*corev3.HeaderValue
		wantCType string
	}{
		{"rls content-type wins", `{"error":"slow down"}`, []*corev3.HeaderValue{{Key: "content-type", Value: "application/json"}, {Key: "x-rl", Value: "1"}}, "application/json"},
		{"text/plain by default", "slow down", []*corev3.HeaderValue{{Key: "x-rl", Value: "1"}}, "text/plain"},
		{"empty body", "", []*corev3.HeaderValue{{Key: "content-type", Value: "application/json"}, {Key: "x-rl", Value: "1"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rlsAddr := startRLS(t, func(context.Context, *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
				return &rlsv3.RateLimitResponse{
					OverallCode:          rlsv3.RateLimitResponse_OVER_LIMIT,
					ResponseHeadersToAdd: tt.headers,
					RawBody:              []byte(tt.body),
				}, nil
			})
			var hits atomic.Int64
			up := countingUpstream(t, &hits, nil)
			_, addr := startProcessor(t, replyEach(tollgateReplies(t, identity{"o1", "k1", "m1"}, 0)))
			px := startProxy(t, rateLimitBootstrap(t, addr, rlsAddr, bootstrap.RateLimit{}, up))
			resp, body := do(t, http.MethodPost, px.url("/"), "{}")
			if resp.StatusCode != http.StatusTooManyRequests || body != tt.body {
				t.Fatalf("got %d %q, want 429 %q", resp.StatusCode, body, tt.body)
			}
			if got := resp.Header.Values("Content-Type"); strings.Join(got, ",") != tt.wantCType {
				t.Errorf("content-type = %q, want %q", got, tt.wantCType)
			}
			if resp.Header.Get("x-envoy-ratelimited") != "true" || resp.Header.Get("x-rl") != "1" {
				t.Errorf("headers = %v", resp.Header)
			}
			if hits.Load() != 0 {
				t.Errorf("upstream called %d times", hits.Load())
			}
			if d := px.nextInfo(t).ResponseCodeDetails; d != "request_rate_limited" {
				t.Errorf("details = %q", d)
			}
		})
	}
}

// TestRateLimit429GoesThroughExtProc: the 429 is sent through the filter chain from the
// first encoder filter, so ext_proc's encode path sends the processor response_headers
// with :status 429 (and x-envoy-ratelimited) and then the body, and the processor can
// rewrite it into the client's protocol.
//
// Envoy: source/common/http/filter_manager.cc DownstreamFilterManager::sendLocalReply →
// sendLocalReplyViaFilterChain (no response yet) → FilterManager::encodeHeaders(nullptr,
// …) → commonEncodePrefix returns encoder_filters_.begin(): every encoder filter, ext_proc
// included, whatever filter sent the reply.
func TestRateLimit429GoesThroughExtProc(t *testing.T) {
	_, rlsAddr := startRLS(t, func(context.Context, *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OVER_LIMIT, RawBody: []byte("over")}, nil
	})
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	tg := tollgateReplies(t, identity{"o1", "k1", "m1"}, 0)
	proc, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		if m.GetRequestBody() != nil {
			return tg(m)
		}
		return rewriteErrors(m)
	}))
	px := startProxy(t, rateLimitBootstrap(t, addr, rlsAddr, bootstrap.RateLimit{}, up))
	resp, body := do(t, http.MethodPost, px.url("/"), "{}")
	if resp.StatusCode != http.StatusTooManyRequests || body != `{"error":"rewritten"}` {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("content-type"); ct != "application/json" {
		t.Errorf("content-type = %q", ct)
	}
	msgs := proc.messages()
	if got, want := kinds(msgs), []string{"request_headers", "request_body", "response_headers", "response_body"}; !slices.Equal(got, want) {
		t.Fatalf("processor saw %v, want %v", got, want)
	}
	rh := msgs[2].GetResponseHeaders().GetHeaders()
	if st, _ := headerValue(rh, ":status"); st != "429" {
		t.Errorf("response_headers :status = %q", st)
	}
	if v, _ := headerValue(rh, "x-envoy-ratelimited"); v != "true" {
		t.Errorf("response_headers lack x-envoy-ratelimited")
	}
	if b := string(msgs[3].GetResponseBody().GetBody()); b != "over" {
		t.Errorf("response_body = %q, want the RLS raw_body", b)
	}
}

// TestRateLimitServiceFailure: a gRPC error or a call exceeding the filter's timeout is
// Error: the request goes on (fail open, the default) or gets status_on_error (500, empty
// body, details rate_limiter_error) with failure_mode_deny.
//
// Envoy: filters/common/ratelimit/ratelimit_impl.cc GrpcClientImpl::limit (timeout_),
// onFailure → LimitStatus::Error; ratelimit.cc Filter::complete (failureModeAllow,
// statusOnError, RcDetails RateLimitError); config.cc (timeout default 20 ms).
func TestRateLimitServiceFailure(t *testing.T) {
	hang := func(ctx context.Context, _ *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		<-ctx.Done() // until the stand-in's deadline cancels the call
		return nil, ctx.Err()
	}
	unavailable := func(context.Context, *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		return nil, status.Error(codes.Unavailable, "redis down")
	}
	tests := []struct {
		name        string
		rls         func(context.Context, *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error)
		deny        bool
		wantStatus  int
		wantDetails string
	}{
		{"timeout fails open", hang, false, 200, "via_upstream"},
		{"timeout with failure_mode_deny", hang, true, 500, "rate_limiter_error"},
		{"error fails open", unavailable, false, 200, "via_upstream"},
		{"error with failure_mode_deny", unavailable, true, 500, "rate_limiter_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rlsAddr := startRLS(t, tt.rls)
			var hits atomic.Int64
			up := countingUpstream(t, &hits, nil)
			_, addr := startProcessor(t, replyEach(tollgateReplies(t, identity{"o1", "k1", "m1"}, 0)))
			px := startProxy(t, rateLimitBootstrap(t, addr, rlsAddr, bootstrap.RateLimit{FailOpen: !tt.deny}, up))
			resp, body := do(t, http.MethodPost, px.url("/"), "{}")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.deny && (body != "" || hits.Load() != 0) {
				t.Errorf("deny: body %q, upstream calls %d", body, hits.Load())
			}
			if d := px.nextInfo(t).ResponseCodeDetails; d != tt.wantDetails {
				t.Errorf("details = %q, want %q", d, tt.wantDetails)
			}
			st := px.Stats()
			if st.RateLimitError != 1 || (st.RateLimitFailureModeAllowed == 1) == tt.deny {
				t.Errorf("stats: error %d, failure_mode_allowed %d", st.RateLimitError, st.RateLimitFailureModeAllowed)
			}
		})
	}
}

// TestRateLimitApplyOnStreamDone: after a streamed (SSE, mode_override STREAMED) response,
// the apply_on_stream_done entries are evaluated with the request headers and the dynamic
// metadata extproc wrote on its last response_body reply, and sent in a second,
// fire-and-forget call whose answer (here OVER_LIMIT) changes nothing. Each formatted
// hits_addend is the metadata number (or numeric string); a value over 1e9 drops its
// descriptor.
//
// Envoy: ratelimit.cc Filter::onDestroy (populateRateLimitDescriptors(…, true) with the
// saved route; OnStreamDoneCallBack::complete ignores the answer); ratelimit_config.cc
// RateLimitConfig::populateDescriptors (on_stream_done filter) and
// RateLimitPolicy::populateDescriptors (formatValue; number or string; 0 ≤ x ≤
// MAX_HITS_ADDEND 1e9); docs/envoy.md section 3.
func TestRateLimitApplyOnStreamDone(t *testing.T) {
	sse := "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n"
	rls, rlsAddr := startRLS(t, func(_ context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
		// OVER_LIMIT for consuming calls: on stream done the answer must change nothing.
		for _, d := range req.GetDescriptors() {
			if d.GetHitsAddend().GetValue() > 0 {
				return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OVER_LIMIT}, nil
			}
		}
		return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}, nil
	})
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "text/event-stream")
		for _, ev := range strings.SplitAfter(sse, "\n\n") {
			w.Write([]byte(ev))
			w.(http.Flusher).Flush()
		}
	})
	tg := tollgateReplies(t, identity{"o1", "k1", "m1"}, 1234)
	_, addr := startProcessor(t, replyEach(func(m *extprocsvc.ProcessingRequest) *extprocsvc.ProcessingResponse {
		if m.GetResponseHeaders() != nil {
			r := continueAll(m)
			r.ModeOverride = &extprocv3.ProcessingMode{ResponseBodyMode: extprocv3.ProcessingMode_STREAMED}
			return r
		}
		r := tg(m)
		if m.GetResponseBody().GetEndOfStream() {
			fields := r.DynamicMetadata.GetFields()["tollgate"].GetStructValue().Fields
			fields["as_string"] = structpb.NewStringValue(" 7")
			fields["huge"] = structpb.NewNumberValue(2e9)
		}
		return r
	}))

	t.Run("tollgate entries", func(t *testing.T) {
		px := startProxy(t, rateLimitBootstrap(t, addr, rlsAddr, bootstrap.RateLimit{}, up))
		resp, body := do(t, http.MethodPost, px.url("/"), "{}")
		if resp.StatusCode != 200 || body != sse {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if got := len(rls.next(t).GetDescriptors()); got != 12 {
			t.Fatalf("request path: %d descriptors, want 12", got)
		}
		done := rls.next(t) // polled with a deadline: it is sent after the response
		var want []string
		for _, scope := range []string{",org=o1,model=m1", ",org=o1", ",org=o1,key=k1", ",org=o1,key=k1,model=m1"} {
			want = append(want, "quota=tpm"+scope+" hits=1234", "quota=tpd"+scope+" hits=1234")
		}
		if got := describe(done); !slices.Equal(got, want) || done.GetDomain() != "tollgate" {
			t.Errorf("stream-done call (domain %q):\n got %q\nwant %q", done.GetDomain(), got, want)
		}
	})

	t.Run("hits_addend parsing", func(t *testing.T) {
		b := rateLimitBootstrap(t, addr, rlsAddr, bootstrap.RateLimit{}, up)
		onDone := func(field string, hits *routev3.RateLimit_HitsAddend) *routev3.RateLimit {
			return &routev3.RateLimit{ApplyOnStreamDone: true, HitsAddend: hits, Actions: []*routev3.RateLimit_Action{{
				ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: "f", DescriptorValue: field}},
			}}}
		}
		format := func(f string) *routev3.RateLimit_HitsAddend {
			return &routev3.RateLimit_HitsAddend{Format: "%DYNAMIC_METADATA(tollgate:" + f + ")%"}
		}
		setRateLimitPerRoute(t, b, &ratelimitv3.RateLimitPerRoute{RateLimits: []*routev3.RateLimit{
			onDone("total", format("total_tokens")),
			onDone("string", format("as_string")),
			onDone("huge", format("huge")),      // > 1e9: dropped
			onDone("absent", format("nothing")), // missing: dropped
			onDone("number", &routev3.RateLimit_HitsAddend{Number: wrapperspb.UInt64(3)}),
		}})
		px := startProxy(t, b)
		if resp, body := do(t, http.MethodPost, px.url("/"), "{}"); resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		// No request-path entries: the only call is the stream-done one.
		want := []string{"f=total hits=1234", "f=string hits=7", "f=number hits=3"}
		if got := describe(rls.next(t)); !slices.Equal(got, want) {
			t.Errorf("stream-done descriptors:\n got %q\nwant %q", got, want)
		}
	})
}

// TestRateLimitXRateLimitHeaders: DRAFT_VERSION_03 headers come from the status with the
// lowest limit_remaining among those with a current_limit; x-ratelimit-limit lists every
// such status's limit and window (and name), on OK responses and on the 429 alike.
//
// Envoy: source/extensions/filters/http/ratelimit/ratelimit_headers.cc
// XRateLimitHeaderUtils::create, convertRateLimitUnit; ratelimit.cc Filter::complete.
func TestRateLimitXRateLimitHeaders(t *testing.T) {
	statuses := []*rlsv3.RateLimitResponse_DescriptorStatus{
		{Code: rlsv3.RateLimitResponse_OK, CurrentLimit: &rlsv3.RateLimitResponse_RateLimit{Name: "rpm", RequestsPerUnit: 100, Unit: rlsv3.RateLimitResponse_RateLimit_MINUTE},
			LimitRemaining: 40, DurationUntilReset: durationpb.New(30e9)},
		{Code: rlsv3.RateLimitResponse_OK, CurrentLimit: &rlsv3.RateLimitResponse_RateLimit{RequestsPerUnit: 10000, Unit: rlsv3.RateLimitResponse_RateLimit_DAY},
			LimitRemaining: 5, DurationUntilReset: durationpb.New(3600e9)},
		{Code: rlsv3.RateLimitResponse_OK, LimitRemaining: 0}, // no current_limit: ignored
	}
	for _, code := range []rlsv3.RateLimitResponse_Code{rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT} {
		t.Run(code.String(), func(t *testing.T) {
			_, rlsAddr := startRLS(t, func(context.Context, *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
				return &rlsv3.RateLimitResponse{OverallCode: code, Statuses: statuses}, nil
			})
			up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
			_, addr := startProcessor(t, replyEach(tollgateReplies(t, identity{"o1", "k1", "m1"}, 0)))
			px := startProxy(t, rateLimitBootstrap(t, addr, rlsAddr, bootstrap.RateLimit{}, up))
			resp, _ := do(t, http.MethodPost, px.url("/"), "{}")
			want := map[string]string{
				"x-ratelimit-limit":     `10000, 100;w=60;name="rpm", 10000;w=86400`,
				"x-ratelimit-remaining": "5",
				"x-ratelimit-reset":     "3600",
			}
			for k, v := range want {
				if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
