// These tests talk to the gateway's own processes (their gRPC ports, their Redis), so
// `-tags external` leaves them out when the suite runs against a compose stack.

//go:build !external

package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/peerauth"
)

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestSidecarsRefuseUnauthenticatedCallers: a raw gRPC client that speaks ext_proc or the RLS
// protocol to the sidecars, with a valid customer key in the request, gets nothing without the
// peer secret; with it, the RLS still refuses refunds and scopes Tollgate never issued.
func TestSidecarsRefuseUnauthenticatedCallers(t *testing.T) {
	s := startStack(t)
	wrong := metadata.Pairs(peerauth.MetadataKey, "not-the-secret-not-the-secret-not-the-secret")

	// ext_proc: the stream is refused before the first message is read.
	ep := extprocsvc.NewExternalProcessorClient(dial(t, s.ExtprocAddr))
	for name, md := range map[string]metadata.MD{"no secret": nil, "wrong secret": wrong} {
		st, err := ep.Process(metadata.NewOutgoingContext(t.Context(), md))
		if err == nil {
			// Send reports io.EOF when the server has already ended the stream; the stream's
			// status, as always in grpc-go, comes from Recv.
			_ = st.Send(&extprocsvc.ProcessingRequest{Request: &extprocsvc.ProcessingRequest_RequestHeaders{
				RequestHeaders: &extprocsvc.HttpHeaders{Headers: nil},
			}})
			_, err = st.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("ext_proc, %s: %v, want Unauthenticated", name, err)
		}
	}

	rls := rlsv3.NewRateLimitServiceClient(dial(t, s.RatelimitAddr))
	desc := func(org string) *ratelimitv3.RateLimitDescriptor {
		return &ratelimitv3.RateLimitDescriptor{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{
			{Key: "quota", Value: "rpm"}, {Key: "org", Value: org}, {Key: "model", Value: "mock-gpt"},
		}}
	}
	call := func(md metadata.MD, d *ratelimitv3.RateLimitDescriptor) error {
		_, err := rls.ShouldRateLimit(metadata.NewOutgoingContext(t.Context(), md),
			&rlsv3.RateLimitRequest{Domain: "tollgate", Descriptors: []*ratelimitv3.RateLimitDescriptor{d}})
		return err
	}
	if err := call(nil, desc(s.OrgID)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("RLS, no secret: %v, want Unauthenticated", err)
	}
	if err := call(wrong, desc(s.OrgID)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("RLS, wrong secret: %v, want Unauthenticated", err)
	}
	good := metadata.Pairs(peerauth.MetadataKey, s.PeerSecret)
	if err := call(good, desc(s.OrgID)); err != nil {
		t.Errorf("RLS, the secret and an issued org: %v", err)
	}
	if err := call(good, desc("00000000-0000-4000-8000-000000000000")); status.Code(err) != codes.PermissionDenied {
		t.Errorf("RLS, an org Tollgate never issued: %v, want PermissionDenied", err)
	}
	refund := desc(s.OrgID)
	refund.IsNegativeHits = true
	if err := call(good, refund); status.Code(err) != codes.InvalidArgument {
		t.Errorf("RLS, a refund: %v, want InvalidArgument", err)
	}
}

// TestRateLimitBurst: with the production deadlines, a burst of 40 concurrent requests against
// an RPM of 20 is served exactly 20 times, every success carrying the quota headers, and the
// rest get the gateway's 429.
func TestRateLimitBurst(t *testing.T) {
	const rpm, burst = 20, 40
	s := startStackWith(t, stackOptions{productionTimeouts: true, beforeStart: func(s *stack) {
		s.tollgate(t, "limits", "set", "--org", s.OrgID, "--model", "mock-gpt", "--rpm", strconv.Itoa(rpm))
	}})
	type result struct {
		status           int
		remaining, limit string
		code             string
	}
	results := make([]result, burst)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range burst {
		wg.Go(func() {
			<-start
			resp, body := post(t, s, "/v1/chat/completions", chatBody, nil)
			r := result{status: resp.StatusCode, remaining: resp.Header.Get("X-Ratelimit-Remaining-Requests"), limit: resp.Header.Get("X-Ratelimit-Limit-Requests")}
			var e errorShape
			if json.Unmarshal(body, &e) == nil {
				r.code = e.Error.Code
			}
			results[i] = r
		})
	}
	close(start)
	wg.Wait()
	var ok, limited int
	for i, r := range results {
		switch r.status {
		case http.StatusOK:
			ok++
			if r.remaining == "" || r.limit != strconv.Itoa(rpm) {
				t.Errorf("request %d: 200 without the quota headers (remaining %q, limit %q)", i, r.remaining, r.limit)
			}
		case http.StatusTooManyRequests:
			limited++
			if r.code != "rate_limit" {
				t.Errorf("request %d: 429 with code %q, want rate_limit", i, r.code)
			}
		default:
			t.Errorf("request %d: status %d (code %q)", i, r.status, r.code)
		}
	}
	if ok != rpm || limited != burst-rpm {
		t.Errorf("%d served and %d limited, want exactly %d and %d", ok, limited, rpm, burst-rpm)
	}
	assertNothingHeld(t, s)
}

// TestRateLimitOutageFailsClosed: with Redis unreachable the rate-limit service cannot decide,
// and the production setting (ratelimit fails closed, Envoy's failure_mode_deny) refuses the
// request — Envoy's local 500 before any attempt, which extproc answers as the gateway's own
// failure, 503 service_unavailable, in the client's protocol — instead of admitting it unmetered.
func TestRateLimitOutageFailsClosed(t *testing.T) {
	s := startStackWith(t, stackOptions{redisURL: "redis://" + freeAddr(t) + "/0", beforeStart: func(s *stack) {
		s.tollgate(t, "limits", "set", "--org", s.OrgID, "--model", "mock-gpt", "--rpm", "1000")
	}})
	want := map[string]string{"openai": "service_unavailable", "anthro": "overloaded_error", "gemini": "UNAVAILABLE"}
	for _, c := range clientErrorCalls {
		t.Run(c.proto, func(t *testing.T) {
			resp, body := post(t, s, c.path("mock-gpt"), c.body("mock-gpt"), c.hdr)
			if resp.StatusCode != 503 {
				t.Fatalf("status %d, want 503 while the rate limiter cannot decide: %s", resp.StatusCode, body)
			}
			kind, code := protocolError(t, c.proto, body)
			if kind != want[c.proto[:6]] {
				t.Errorf("error %q, want %q: %s", kind, want[c.proto[:6]], body)
			}
			if c.proto[:6] == "gemini" && code != 503 {
				t.Errorf("gemini error code %d, want 503", code)
			}
		})
	}
	assertNothingHeld(t, s)
	var charged int64
	if err := s.DB.QueryRow(t.Context(), `SELECT count(*) FROM usage_records WHERE org_id = $1`, s.OrgID).Scan(&charged); err != nil {
		t.Fatal(err)
	}
	if charged != 0 {
		t.Errorf("%d usage records: a refused request reached a provider", charged)
	}
}
