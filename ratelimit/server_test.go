package ratelimit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/ratelimit"
	"github.com/tollgate/tollgate/ratelimit/internal/redistest"
	"github.com/tollgate/tollgate/ratelimit/limiter"
)

const (
	ok   = rlsv3.RateLimitResponse_OK
	over = rlsv3.RateLimitResponse_OVER_LIMIT
)

func TestDescriptorShapes(t *testing.T) {
	limits := ratelimit.LimitTable{
		Defaults: map[string]ratelimit.Rates{"gpt-4o": {RPM: 7}},
		Overrides: map[ratelimit.Scope]ratelimit.Rates{
			{Org: "acme"}:                             {RPM: 10},
			{Org: "acme", Key: "k1"}:                  {RPM: 5},
			{Org: "acme", Key: "k1", Model: "gpt-4o"}: {RPM: 3},
			{Org: "acme", Model: "o3"}:                {RPM: 4},
		},
	}
	entries := func(kv ...string) *ratelimitv3.RateLimitDescriptor {
		d := &ratelimitv3.RateLimitDescriptor{}
		for i := 0; i < len(kv); i += 2 {
			d.Entries = append(d.Entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
		}
		return d
	}
	tests := []struct {
		name     string
		domain   string
		desc     *ratelimitv3.RateLimitDescriptor
		wantName string // empty: no current_limit
		wantN    uint32
	}{
		{name: "org", desc: descriptor("rpm", "acme", "", ""), wantName: "rpm org=acme", wantN: 10},
		{name: "org and key", desc: descriptor("rpm", "acme", "k1", ""), wantName: "rpm org=acme key=k1", wantN: 5},
		{name: "org, key and model", desc: descriptor("rpm", "acme", "k1", "gpt-4o"), wantName: "rpm org=acme key=k1 model=gpt-4o", wantN: 3},
		{name: "org and model gets the model default", desc: descriptor("rpm", "acme", "", "gpt-4o"), wantName: "rpm model=gpt-4o", wantN: 7},
		{name: "org and model override", desc: descriptor("rpm", "acme", "", "o3"), wantName: "rpm org=acme model=o3", wantN: 4},
		{name: "other org has no limit", desc: descriptor("rpm", "globex", "", "")},
		{name: "quota without a limit", desc: descriptor("tpm", "acme", "", "")},
		{name: "other domain", domain: "other", desc: descriptor("rpm", "acme", "", "")},
		{name: "unknown quota", desc: descriptor("rph", "acme", "", "")},
		{name: "no org", desc: entries("quota", "rpm")},
		{name: "model before key", desc: entries("quota", "rpm", "org", "acme", "model", "gpt-4o", "key", "k1")},
		{name: "unknown entry", desc: entries("quota", "rpm", "org", "acme", "user", "u1")},
		{name: "empty value", desc: entries("quota", "rpm", "org", "acme", "key", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t, staticLimits(t, limits))
			req := request(tt.desc)
			if tt.domain != "" {
				req.Domain = tt.domain
			}
			resp := call(t, s, req)
			st := resp.GetStatuses()[0]
			if st.GetCode() != ok || resp.GetOverallCode() != ok {
				t.Errorf("code %v overall %v, want OK", st.GetCode(), resp.GetOverallCode())
			}
			cl := st.GetCurrentLimit()
			if tt.wantName == "" {
				if cl != nil {
					t.Errorf("current_limit %v, want none", cl)
				}
				return
			}
			if cl.GetName() != tt.wantName || cl.GetRequestsPerUnit() != tt.wantN || cl.GetUnit() != rlsv3.RateLimitResponse_RateLimit_MINUTE {
				t.Errorf("current_limit %v, want %q %d per MINUTE", cl, tt.wantName, tt.wantN)
			}
			if got, want := st.GetLimitRemaining(), tt.wantN-1; got != want {
				t.Errorf("limit_remaining %d, want %d", got, want)
			}
		})
	}
}

func TestTokenQuota(t *testing.T) {
	limits := staticLimits(t, ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{
		{Org: "acme", Key: "k1"}: {TPM: 1000},
	}})
	s, c := newServer(t, limits)
	check := func() *rlsv3.RateLimitRequest { return request(withHits(descriptor("tpm", "acme", "k1", ""), 0)) }
	used := func(n uint64) *rlsv3.RateLimitRequest {
		return request(withHits(descriptor("tpm", "acme", "k1", ""), n))
	}
	steps := []struct {
		name          string
		advance       time.Duration
		req           *rlsv3.RateLimitRequest
		wantCode      rlsv3.RateLimitResponse_Code
		wantRemaining uint32
	}{
		{name: "check", req: check(), wantCode: ok, wantRemaining: 1000},
		{name: "check again consumes nothing", req: check(), wantCode: ok, wantRemaining: 1000},
		{name: "400 used", req: used(400), wantCode: ok, wantRemaining: 600},
		{name: "check sees them", req: check(), wantCode: ok, wantRemaining: 600},
		{name: "700 more used, past the limit", req: used(700), wantCode: over, wantRemaining: 0},
		{name: "the key is stopped", req: check(), wantCode: over, wantRemaining: 0},
		{name: "still stopped a little later", advance: 6 * time.Second, req: check(), wantCode: over, wantRemaining: 0},
		// 1100 used, 1000/min drain: back under 999 after 6.06 s.
		{name: "drained enough for a request", advance: 1200 * time.Millisecond, req: check(), wantCode: ok, wantRemaining: 20},
	}
	for _, st := range steps {
		c.Advance(st.advance)
		resp := call(t, s, st.req)
		got := resp.GetStatuses()[0]
		if got.GetCode() != st.wantCode || got.GetLimitRemaining() != st.wantRemaining || resp.GetOverallCode() != st.wantCode {
			t.Fatalf("%s: code %v remaining %d (overall %v), want %v %d",
				st.name, got.GetCode(), got.GetLimitRemaining(), resp.GetOverallCode(), st.wantCode, st.wantRemaining)
		}
	}
}

func TestRequestAndTokenQuotasTogether(t *testing.T) {
	// A request carries the request count and the token check; a refusal by
	// the exhausted tokens must not use up the request count.
	limits := staticLimits(t, ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{
		{Org: "acme"}: {RPM: 10, TPM: 100},
	}})
	s, _ := newServer(t, limits)
	onRequest := request(descriptor("rpm", "acme", "", ""), withHits(descriptor("tpm", "acme", "", ""), 0))

	resp := call(t, s, onRequest)
	if resp.GetOverallCode() != ok || resp.GetStatuses()[0].GetLimitRemaining() != 9 {
		t.Fatalf("first request: %v", resp)
	}
	call(t, s, request(withHits(descriptor("tpm", "acme", "", ""), 250))) // after the response

	for range 3 {
		resp = call(t, s, onRequest)
		rpm, tpm := resp.GetStatuses()[0], resp.GetStatuses()[1]
		if resp.GetOverallCode() != over || rpm.GetCode() != ok || tpm.GetCode() != over {
			t.Fatalf("after the tokens ran out: overall %v rpm %v tpm %v", resp.GetOverallCode(), rpm.GetCode(), tpm.GetCode())
		}
		if got := rpm.GetLimitRemaining(); got != 9 {
			t.Errorf("rpm remaining %d after refused requests, want 9", got)
		}
	}
}

func TestLimitsReplacedLive(t *testing.T) {
	scope := ratelimit.Scope{Org: "acme", Key: "k1"}
	limits := staticLimits(t, ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{scope: {RPM: 2}}})
	s, _ := newServer(t, limits)
	req := request(descriptor("rpm", "acme", "k1", ""))
	steps := []struct {
		name      string
		replace   *ratelimit.LimitTable
		wantCode  rlsv3.RateLimitResponse_Code
		wantLimit uint32 // 0: no current_limit
	}{
		{name: "1 of 2", wantCode: ok, wantLimit: 2},
		{name: "2 of 2", wantCode: ok, wantLimit: 2},
		{name: "3 of 2", wantCode: over, wantLimit: 2},
		{name: "raised to 5", replace: &ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{scope: {RPM: 5}}}, wantCode: ok, wantLimit: 5},
		{name: "lowered to 1", replace: &ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{scope: {RPM: 1}}}, wantCode: over, wantLimit: 1},
		{name: "removed", replace: &ratelimit.LimitTable{}, wantCode: ok},
	}
	for _, st := range steps {
		if st.replace != nil {
			if err := limits.Replace(*st.replace); err != nil {
				t.Fatal(err)
			}
		}
		resp := call(t, s, req)
		got := resp.GetStatuses()[0]
		if got.GetCode() != st.wantCode || got.GetCurrentLimit().GetRequestsPerUnit() != st.wantLimit {
			t.Fatalf("%s: code %v limit %d, want %v %d", st.name, got.GetCode(), got.GetCurrentLimit().GetRequestsPerUnit(), st.wantCode, st.wantLimit)
		}
	}
}

func TestResponseHeadersAndBody(t *testing.T) {
	limits := staticLimits(t, ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{
		{Org: "acme"}:            {RPM: 100, TPM: 10000, TPD: 1000000},
		{Org: "acme", Key: "k1"}: {RPM: 2, TPM: 1000},
	}})
	s, c := newServer(t, limits)
	req := request(
		descriptor("rpm", "acme", "", ""),
		descriptor("rpm", "acme", "k1", ""),
		withHits(descriptor("tpm", "acme", "", ""), 0),
		withHits(descriptor("tpm", "acme", "k1", ""), 0),
		withHits(descriptor("tpd", "acme", "", ""), 0),
	)
	call(t, s, request(withHits(descriptor("tpm", "acme", "k1", ""), 100)))

	tests := []struct {
		name        string
		advance     time.Duration
		wantCode    rlsv3.RateLimitResponse_Code
		wantHeaders map[string]string
	}{
		{
			// The key's limits are the tighter ones: 1 request left of 2
			// (30 s to drain), 900 tokens of 1000 (6 s to drain).
			name:     "first request",
			wantCode: ok,
			wantHeaders: map[string]string{
				"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "1", "x-ratelimit-reset-requests": "30s",
				"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "6s",
			},
		},
		{
			name:     "second request",
			wantCode: ok,
			wantHeaders: map[string]string{
				"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m0s",
				"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "6s",
			},
		},
		{
			name:     "over the key's request limit",
			advance:  250 * time.Millisecond,
			wantCode: over,
			wantHeaders: map[string]string{
				"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "59.75s",
				"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "904", "x-ratelimit-reset-tokens": "5.75s",
				"retry-after": "30", "content-type": "application/json",
			},
		},
	}
	for _, tt := range tests {
		c.Advance(tt.advance)
		resp := call(t, s, req)
		if resp.GetOverallCode() != tt.wantCode {
			t.Fatalf("%s: overall %v, want %v", tt.name, resp.GetOverallCode(), tt.wantCode)
		}
		got := headers(resp)
		if len(got) != len(tt.wantHeaders) {
			t.Errorf("%s: headers %v, want %v", tt.name, got, tt.wantHeaders)
		}
		for k, want := range tt.wantHeaders {
			if got[k] != want {
				t.Errorf("%s: %s = %q, want %q", tt.name, k, got[k], want)
			}
		}
		if tt.wantCode == ok && len(resp.GetRawBody()) != 0 {
			t.Errorf("%s: raw_body %q on OK", tt.name, resp.GetRawBody())
		}
		if tt.wantCode != over {
			continue
		}
		var body struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    string  `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(resp.GetRawBody(), &body); err != nil {
			t.Fatalf("raw_body %q: %v", resp.GetRawBody(), err)
		}
		e := body.Error
		if e.Type != "rate_limit" || e.Code != "rate_limit" || e.Param != nil {
			t.Errorf("error %+v, want type and code rate_limit, param null", e)
		}
		for _, want := range []string{"Rate limit exceeded: ", "gateway", `"rpm org=acme key=k1"`, "2 requests per minute", "retry after 30s", "not by the upstream"} {
			if !strings.Contains(e.Message, want) {
				t.Errorf("message %q lacks %q", e.Message, want)
			}
		}
		if st := resp.GetStatuses()[1]; st.GetCode() != over || st.GetDurationUntilReset().AsDuration() != 59750*time.Millisecond {
			t.Errorf("key status %v, want OVER_LIMIT resetting in 59.75s", st)
		}
	}
}

func TestHitsAddend(t *testing.T) {
	limits := staticLimits(t, ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{{Org: "acme"}: {RPM: 10}}})
	tests := []struct {
		name          string
		req           *rlsv3.RateLimitRequest
		wantRemaining uint32
	}{
		{name: "unset counts one", req: request(descriptor("rpm", "acme", "", "")), wantRemaining: 9},
		{name: "request level", req: &rlsv3.RateLimitRequest{Domain: ratelimit.Domain, HitsAddend: 3, Descriptors: []*ratelimitv3.RateLimitDescriptor{descriptor("rpm", "acme", "", "")}}, wantRemaining: 7},
		{name: "descriptor overrides request", req: &rlsv3.RateLimitRequest{Domain: ratelimit.Domain, HitsAddend: 3, Descriptors: []*ratelimitv3.RateLimitDescriptor{withHits(descriptor("rpm", "acme", "", ""), 4)}}, wantRemaining: 6},
		{name: "zero checks", req: request(withHits(descriptor("rpm", "acme", "", ""), 0)), wantRemaining: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t, limits)
			if got := call(t, s, tt.req).GetStatuses()[0].GetLimitRemaining(); got != tt.wantRemaining {
				t.Errorf("remaining %d, want %d", got, tt.wantRemaining)
			}
		})
	}

}

// TestRefusedCalls: what a legitimate Envoy never sends is refused as a whole, and consumes
// nothing: refunds (Envoy's own hits_addend is never negative), hits_addend beyond Envoy's bound.
func TestRefusedCalls(t *testing.T) {
	limits := staticLimits(t, ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{{Org: "acme"}: {RPM: 10}}})
	refund := withHits(descriptor("rpm", "acme", "", ""), 2)
	refund.IsNegativeHits = true
	tests := []struct {
		name string
		req  *rlsv3.RateLimitRequest
	}{
		{"negative hits", request(descriptor("rpm", "acme", "", ""), refund)},
		{"negative hits without hits_addend", request(&ratelimitv3.RateLimitDescriptor{Entries: descriptor("rpm", "acme", "", "").Entries, IsNegativeHits: true})},
		{"descriptor hits_addend over 1e9", request(withHits(descriptor("tpm", "acme", "", ""), ratelimit.MaxHitsAddend+1))},
		{"request hits_addend over 1e9", &rlsv3.RateLimitRequest{Domain: ratelimit.Domain, HitsAddend: ratelimit.MaxHitsAddend + 1, Descriptors: []*ratelimitv3.RateLimitDescriptor{descriptor("rpm", "acme", "", "")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t, limits)
			call(t, s, request(withHits(descriptor("rpm", "acme", "", ""), 5)))
			if _, err := s.ShouldRateLimit(context.Background(), tt.req); status.Code(err) != codes.InvalidArgument {
				t.Fatalf("error %v, want InvalidArgument", err)
			}
			if got := call(t, s, request(withHits(descriptor("rpm", "acme", "", ""), 0))).GetStatuses()[0].GetLimitRemaining(); got != 5 {
				t.Errorf("remaining %d after a refused call, want the 5 left before it", got)
			}
		})
	}
	t.Run("at the bound", func(t *testing.T) {
		s, _ := newServer(t, limits)
		call(t, s, request(withHits(descriptor("tpm", "acme", "", ""), ratelimit.MaxHitsAddend)))
	})
}

func TestNoDescriptors(t *testing.T) {
	s, _ := newServer(t, staticLimits(t, ratelimit.LimitTable{}))
	_, err := s.ShouldRateLimit(context.Background(), request())
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("error %v, want InvalidArgument", err)
	}
}

// commandCounter counts the commands a go-redis client sends.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func TestOneRedisCommandPerCall(t *testing.T) {
	rdb := redistest.Client(t)
	counter := &commandCounter{}
	rdb.AddHook(counter)
	lim := limiter.New(rdb)
	if err := lim.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	table := ratelimit.LimitTable{Defaults: map[string]ratelimit.Rates{}}
	for i := range 50 {
		table.Defaults[fmt.Sprintf("m%d", i)] = ratelimit.Rates{RPM: 1000, TPM: 100000}
	}
	s := ratelimit.NewServer(ratelimit.Config{KeyPrefix: redistest.Prefix(t, rdb), RedisTimeout: time.Second}, lim, staticLimits(t, table), discard())

	tests := []struct {
		name         string
		models       int // m0, m1, …, two descriptors each; m50 and beyond have no limit
		wantCommands int64
	}{
		{name: "2 descriptors", models: 1, wantCommands: 1},
		{name: "20 descriptors", models: 10, wantCommands: 1},
		{name: "200 descriptors, half without limits", models: 100, wantCommands: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ds []*ratelimitv3.RateLimitDescriptor
			for i := range tt.models {
				m := fmt.Sprintf("m%d", i)
				ds = append(ds, descriptor("rpm", "acme", "", m), withHits(descriptor("tpm", "acme", "", m), 0))
			}
			before := counter.n.Load()
			call(t, s, request(ds...))
			if got := counter.n.Load() - before; got != tt.wantCommands {
				t.Errorf("%d Redis commands for %d descriptors, want %d", got, len(ds), tt.wantCommands)
			}
		})
	}
	t.Run("nothing limited", func(t *testing.T) {
		before := counter.n.Load()
		call(t, s, request(descriptor("rpm", "acme", "", "unknown")))
		if got := counter.n.Load() - before; got != 0 {
			t.Errorf("%d Redis commands without any limit, want 0", got)
		}
	})
}

// TestManagementQuota: each management key gets its own request budget on the management API,
// counted apart from the model quotas (a key's model rpm is untouched by management calls).
func TestManagementQuota(t *testing.T) {
	limits := staticLimits(t, ratelimit.LimitTable{
		ManagementRPM: 2,
		Overrides:     map[ratelimit.Scope]ratelimit.Rates{{Org: "acme", Key: "k1"}: {RPM: 5}},
	})
	s, _ := newServer(t, limits)
	mgmt := func(key string) *rlsv3.RateLimitRequest { return request(descriptor("mgmt_rpm", "acme", key, "")) }
	steps := []struct {
		name     string
		req      *rlsv3.RateLimitRequest
		wantCode rlsv3.RateLimitResponse_Code
	}{
		{"first", mgmt("k1"), ok},
		{"second", mgmt("k1"), ok},
		{"third is over", mgmt("k1"), over},
		{"another key has its own budget", mgmt("k2"), ok},
		{"the model quota is separate", request(descriptor("rpm", "acme", "k1", "")), ok},
	}
	for _, st := range steps {
		resp := call(t, s, st.req)
		if got := resp.GetOverallCode(); got != st.wantCode {
			t.Fatalf("%s: %v, want %v", st.name, got, st.wantCode)
		}
	}
	resp := call(t, s, mgmt("k1"))
	if !strings.Contains(string(resp.GetRawBody()), `gateway quota \"mgmt_rpm per key\" allows 2 requests per minute`) {
		t.Errorf("429 body = %s", resp.GetRawBody())
	}
}
