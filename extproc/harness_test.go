package extproc

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate/tollgate/extproc/auth"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/ledger"
)

const (
	goodKey = "tg_good"
	orgID   = "00000000-0000-0000-0000-00000000000a"
	keyID   = "00000000-0000-0000-0000-00000000000b"
)

type fakeAuth map[string]ledger.Principal

func (f fakeAuth) Authenticate(_ context.Context, key string) (ledger.Principal, error) {
	if p, ok := f[key]; ok {
		return p, nil
	}
	return ledger.Principal{}, auth.ErrUnknownKey
}

// fakeLedger holds credit like the real ledger (balance minus open holds must cover a hold) and
// records settlements; settled delivers each as it happens.
type fakeLedger struct {
	mu       sync.Mutex
	balance  int64
	holds    map[string]int64
	placed   []ledger.Hold    // every hold placed, as placed
	heldByID map[string]int64 // every hold ever placed, by request id
	released []string
	usages   []ledger.Usage
	settled  chan ledger.Usage
}

func (f *fakeLedger) PlaceHold(_ context.Context, h ledger.Hold) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var held int64
	for _, v := range f.holds {
		held += v
	}
	if f.balance-held < h.AmountMicros {
		return ledger.ErrInsufficientCredit
	}
	f.holds[h.RequestID] = h.AmountMicros
	f.placed = append(f.placed, h)
	if f.heldByID == nil {
		f.heldByID = map[string]int64{}
	}
	f.heldByID[h.RequestID] = h.AmountMicros
	return nil
}

// lastHold returns the last hold placed.
func (f *fakeLedger) lastHold(t testing.TB) ledger.Hold {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.placed) == 0 {
		t.Fatal("no hold placed")
	}
	return f.placed[len(f.placed)-1]
}

func (f *fakeLedger) releasedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.released)
}

func (f *fakeLedger) ReleaseHold(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.holds, id)
	f.released = append(f.released, id)
	return nil
}

// placedHolds returns every hold ever placed, by request id.
func (f *fakeLedger) placedHolds() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.heldByID)
}

// heldFor returns the hold placed for request id (0 if none).
func (f *fakeLedger) heldFor(id string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.heldByID[id]
}

func (f *fakeLedger) openHolds() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.holds)
}

func (f *fakeLedger) Settle(_ context.Context, u ledger.Usage) (bool, error) {
	f.mu.Lock()
	f.usages = append(f.usages, u)
	delete(f.holds, u.RequestID)
	f.mu.Unlock()
	if f.settled != nil {
		f.settled <- u
	}
	return true, nil
}

// waitSettled returns the next settlement, failing after a deadline.
func (f *fakeLedger) waitSettled(t testing.TB) ledger.Usage {
	t.Helper()
	select {
	case u := <-f.settled:
		return u
	case <-time.After(10 * time.Second):
		t.Fatal("no settlement")
		return ledger.Usage{}
	}
}

type harness struct {
	client extprocv3.ExternalProcessorClient
	ledger *fakeLedger
	srv    *Server
}

// newHarness serves a Server on a loopback socket, as Envoy would reach it.
func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessWith(t, Config{MaxBodyBytes: 1 << 20})
}

func newHarnessWith(t testing.TB, cfg Config) *harness {
	t.Helper()
	env := map[string]string{"OPENAI_API_KEY": "sk-openai", "EU_KEY": "sk-eu", "ANTHROPIC_API_KEY": "sk-ant", "GEMINI_API_KEY": "gm-key"}
	cat, err := catalog.Load("testdata/catalog.yaml", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	principals := fakeAuth{goodKey: {KeyID: keyID, OrgID: orgID, Kind: ledger.KeyStandard, MarkupBps: 1000, SubscriptionActive: true, GatewayEnabled: true}}
	principals["tg_mgmt"] = ledger.Principal{KeyID: keyID, OrgID: orgID, Kind: ledger.KeyManagement, SubscriptionActive: true, GatewayEnabled: true}
	principals["tg_planned"] = ledger.Principal{KeyID: keyID, OrgID: orgID, Kind: ledger.KeyStandard, SubscriptionActive: true, GatewayEnabled: true, Plan: []string{"old"}}
	principals["tg_disabled"] = ledger.Principal{KeyID: keyID, OrgID: orgID, SubscriptionActive: true}
	principals["tg_unsubscribed"] = ledger.Principal{KeyID: keyID, OrgID: orgID, GatewayEnabled: true}
	l := &fakeLedger{balance: 1_000_000, holds: map[string]int64{}, settled: make(chan ledger.Usage, 16)}
	srv := NewServer(cfg, cat, principals, l, slog.New(slog.NewTextHandler(io.Discard, nil)))

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{client: extprocv3.NewExternalProcessorClient(conn), ledger: l, srv: srv}
}

// stream is one request's ext_proc stream, driven the way Envoy drives it.
type stream struct {
	t testing.TB
	s extprocv3.ExternalProcessor_ProcessClient
}

func (h *harness) open(t testing.TB) *stream {
	t.Helper()
	s, err := h.client.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return &stream{t: t, s: s}
}

func (s *stream) send(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	s.t.Helper()
	if err := s.s.Send(req); err != nil {
		s.t.Fatal(err)
	}
	resp, err := s.s.Recv()
	if err != nil {
		s.t.Fatal(err)
	}
	return resp
}

func headerMap(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return hm
}

func (s *stream) requestHeaders(eos bool, kv ...string) *extprocv3.ProcessingResponse {
	return s.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(kv...), EndOfStream: eos}}})
}

func (s *stream) requestBody(body string) *extprocv3.ProcessingResponse {
	return s.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}})
}

func (s *stream) responseHeaders(eos bool, kv ...string) *extprocv3.ProcessingResponse {
	return s.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(kv...), EndOfStream: eos}}})
}

func (s *stream) responseBody(body []byte, eos bool) *extprocv3.ProcessingResponse {
	return s.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: body, EndOfStream: eos}}})
}

// primaryBackend is the first backend of the test catalog's gpt-5.4 chain in the global region:
// where Envoy sends a request for "gpt" first.
const primaryBackend = "openai/gpt-5.4-2026-03-01"

// routeAndAttempt sends the client's body on the router filter's stream s and, when the router
// filter routed it, runs its first attempt on backend (if empty, the route's first backend, the
// cluster's priority 0), as Envoy does before any response reaches the router filter. It returns
// both replies (attempt nil when the body was refused).
func (h *harness) routeAndAttempt(s *stream, body, backend string) (routed, attempt *extprocv3.ProcessingResponse) {
	s.t.Helper()
	routed = s.requestBody(body)
	if routed.GetImmediateResponse() != nil {
		return routed, nil
	}
	id := routedID(routed)
	if backend == "" {
		x := h.srv.lookupPending(id)
		if x == nil {
			s.t.Fatalf("routed request %q is not pending", id)
		}
		backend = x.route.Backends[0].Key()
	}
	attempt = h.attempt(s.t, id, backend)
	if attempt.GetRequestHeaders() == nil {
		s.t.Fatalf("the first attempt was not translated: %v", attempt)
	}
	return routed, attempt
}

// chatHeaders are the request headers of an OpenAI SDK chat call with the good key.
func chatHeaders(extra ...string) []string {
	return append([]string{":method", "POST", ":path", "/v1/chat/completions", ":authority", "gw", ":scheme", "http",
		"authorization", "Bearer " + goodKey, "content-type", "application/json"}, extra...)
}

// mutations flattens a header mutation into set values and removed names.
func mutations(m *extprocv3.HeaderMutation) (set map[string]string, removed map[string]bool) {
	set, removed = map[string]string{}, map[string]bool{}
	for _, h := range m.GetSetHeaders() {
		set[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
	}
	for _, r := range m.GetRemoveHeaders() {
		removed[r] = true
	}
	return set, removed
}

// poll waits for cond with a deadline.
func poll(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met before the deadline")
		}
		<-tick.C
	}
}

// nativeProvider is the codec of the provider kind that speaks p natively (OpenAI itself for the
// OpenAI protocol), for tests that pick a provider by protocol.
func nativeProvider(p protocol) providerCodec {
	for _, kind := range []string{catalog.KindOpenAI, catalog.KindAnthropic, catalog.KindGemini} {
		if pc := providerCodecs[kind]; pc.native() == p {
			return pc
		}
	}
	panic("no provider kind speaks " + string(p))
}
