package management_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/auth"
	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
	"github.com/tollgate/tollgate/extproc/management"
)

// fixture is a seeded ledger: org A with two standard keys, a management key and five
// requests; org B with one request that A must never see.
type fixture struct {
	srv                     *httptest.Server
	store                   *ledger.Store
	orgA                    string
	mgmtKey, stdKey, otherB string // keys
	keyStd, keyStd2         string // key ids
}

func seed(t *testing.T) *fixture {
	t.Helper()
	s, _ := ledgertest.NewStore(t)
	ctx := context.Background()
	f := &fixture{store: s}
	var err error
	mustOrg := func() string {
		id, err := s.CreateOrg(ctx, ledger.OrgOptions{Name: "org"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddCredits(ctx, id, 10_000_000, "seed"); err != nil {
			t.Fatal(err)
		}
		return id
	}
	mustKey := func(org string, kind ledger.KeyKind) (string, string) {
		key, id, err := s.CreateKey(ctx, org, kind, "k")
		if err != nil {
			t.Fatal(err)
		}
		return key, id
	}
	f.orgA = mustOrg()
	orgB := mustOrg()
	f.mgmtKey, _ = mustKey(f.orgA, ledger.KeyManagement)
	f.stdKey, f.keyStd = mustKey(f.orgA, ledger.KeyStandard)
	_, f.keyStd2 = mustKey(f.orgA, ledger.KeyStandard)
	f.otherB, _ = mustKey(orgB, ledger.KeyManagement)

	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	u := func(id, org, key, created, model, provider, finish string, cost int64) ledger.Usage {
		return ledger.Usage{
			RequestID: id, OrgID: org, KeyID: key, Endpoint: "chat_completions", RequestedModel: model, Model: model,
			Provider: provider, Region: "global", Status: 200, FinishReason: finish,
			PromptTokens: 10, CompletionTokens: 20, CostMicros: cost, CostItems: map[string]int64{"prompt": cost},
			Latency: 120 * time.Millisecond, TimeToFirstToken: 30 * time.Millisecond, CreatedAt: at(created),
		}
	}
	_, err = s.SettleBatch(ctx, []ledger.Usage{
		u("r1", f.orgA, f.keyStd, "2026-01-01T10:15:00Z", "m1", "p1", "stop", 1_000),
		u("r2", f.orgA, f.keyStd, "2026-01-01T10:45:00Z", "m1", "p2", "length", 2_000),
		u("r3", f.orgA, f.keyStd2, "2026-01-01T11:05:00Z", "m2", "p1", "stop", 3_000),
		u("r4", f.orgA, f.keyStd, "2026-01-02T00:00:00Z", "m2", "p1", "stop", 4_000),
		u("r5", f.orgA, f.keyStd, "2026-02-03T12:00:00Z", "m1", "p1", "stop", 5_000),
		u("r6", orgB, "", "2026-01-01T10:30:00Z", "m1", "p1", "stop", 99_999),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PlaceHold(ctx, ledger.Hold{RequestID: "inflight", OrgID: f.orgA, AmountMicros: 500, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	h := management.New(s, auth.New(s, 0), slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) get(t *testing.T, key, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func TestAuthAndErrors(t *testing.T) {
	f := seed(t)
	tests := []struct {
		name       string
		key, path  string
		wantStatus int
		wantCode   string
		wantParam  string
	}{
		{name: "no key", path: "/v1/management/balance", wantStatus: 401, wantCode: "auth_invalid"},
		{name: "unknown key", key: "tg_nope", path: "/v1/management/balance", wantStatus: 401, wantCode: "auth_invalid"},
		{name: "standard key", key: f.stdKey, path: "/v1/management/balance", wantStatus: 403, wantCode: "access_denied"},
		{name: "management key", key: f.mgmtKey, path: "/v1/management/balance", wantStatus: 200},
		{name: "unknown path", key: f.mgmtKey, path: "/v1/management/nothing", wantStatus: 404, wantCode: "not_found"},
		{name: "unknown path needs auth first", path: "/v1/management/nothing", wantStatus: 401, wantCode: "auth_invalid"},
		{name: "bad group_by", key: f.mgmtKey, path: "/v1/management/usage?group_by=color", wantStatus: 400, wantCode: "invalid_params", wantParam: "group_by"},
		{name: "bad bucket", key: f.mgmtKey, path: "/v1/management/usage?bucket=week", wantStatus: 400, wantCode: "invalid_params", wantParam: "bucket"},
		{name: "bad from", key: f.mgmtKey, path: "/v1/management/usage?from=yesterday", wantStatus: 400, wantCode: "invalid_params", wantParam: "from"},
		{name: "from after to", key: f.mgmtKey, path: "/v1/management/usage?from=2026-02-01&to=2026-01-01", wantStatus: 400, wantCode: "invalid_params", wantParam: "from"},
		{name: "bad limit", key: f.mgmtKey, path: "/v1/management/request-logs?limit=0", wantStatus: 400, wantCode: "invalid_params", wantParam: "limit"},
		{name: "bad cursor", key: f.mgmtKey, path: "/v1/management/request-logs?cursor=%21%21", wantStatus: 400, wantCode: "invalid_params", wantParam: "cursor"},
		{name: "bad key_id", key: f.mgmtKey, path: "/v1/management/request-logs?key_id=abc", wantStatus: 400, wantCode: "invalid_params", wantParam: "key_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.get(t, tt.key, tt.path)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode == "" {
				return
			}
			var e apiError
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("not OpenAI's error shape: %s", body)
			}
			if e.Error.Code != tt.wantCode || e.Error.Type == "" || e.Error.Message == "" {
				t.Errorf("error = %+v, want code %s", e.Error, tt.wantCode)
			}
			if got := ""; e.Error.Param != nil {
				got = *e.Error.Param
				if got != tt.wantParam {
					t.Errorf("param = %q, want %q", got, tt.wantParam)
				}
			} else if tt.wantParam != "" {
				t.Errorf("param = null, want %q", tt.wantParam)
			}
		})
	}
}

func TestBalance(t *testing.T) {
	f := seed(t)
	_, body := f.get(t, f.mgmtKey, "/v1/management/balance")
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"object": "balance", "org_id": f.orgA, "currency": "USD",
		"balance": "9.985000", "held": "0.000500", "available": "9.984500",
		"balance_micros": 9_985_000.0, "held_micros": 500.0, "available_micros": 9_984_500.0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// Another org's management key sees its own balance, not A's.
	_, body = f.get(t, f.otherB, "/v1/management/balance")
	if !strings.Contains(string(body), `"balance":"9.900001"`) {
		t.Errorf("org B balance: %s", body)
	}
}

type usageRow struct {
	BucketStart string `json:"bucket_start"`
	Model       string `json:"model"`
	KeyID       string `json:"key_id"`
	Provider    string `json:"provider"`
	Requests    int64  `json:"requests"`
	TotalTokens int64  `json:"total_tokens"`
	CostMicros  int64  `json:"cost_micros"`
	CostUSD     string `json:"cost_usd"`
}

func TestUsage(t *testing.T) {
	f := seed(t)
	const rng = "from=2026-01-01&to=2026-03-01"
	tests := []struct {
		name      string
		query     string
		want      []usageRow
		wantTotal usageRow
	}{
		{
			name: "totals only", query: rng,
			want:      []usageRow{{Requests: 5, TotalTokens: 150, CostMicros: 15_000, CostUSD: "0.015000"}},
			wantTotal: usageRow{Requests: 5, TotalTokens: 150, CostMicros: 15_000, CostUSD: "0.015000"},
		},
		{
			name: "by model and day", query: rng + "&group_by=model&bucket=day",
			want: []usageRow{
				{BucketStart: "2026-01-01T00:00:00Z", Model: "m1", Requests: 2, TotalTokens: 60, CostMicros: 3_000, CostUSD: "0.003000"},
				{BucketStart: "2026-01-01T00:00:00Z", Model: "m2", Requests: 1, TotalTokens: 30, CostMicros: 3_000, CostUSD: "0.003000"},
				{BucketStart: "2026-01-02T00:00:00Z", Model: "m2", Requests: 1, TotalTokens: 30, CostMicros: 4_000, CostUSD: "0.004000"},
				{BucketStart: "2026-02-03T00:00:00Z", Model: "m1", Requests: 1, TotalTokens: 30, CostMicros: 5_000, CostUSD: "0.005000"},
			},
			wantTotal: usageRow{Requests: 5, TotalTokens: 150, CostMicros: 15_000, CostUSD: "0.015000"},
		},
		{
			name: "by hour, one day", query: "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&bucket=hour",
			want: []usageRow{
				{BucketStart: "2026-01-01T10:00:00Z", Requests: 2, TotalTokens: 60, CostMicros: 3_000, CostUSD: "0.003000"},
				{BucketStart: "2026-01-01T11:00:00Z", Requests: 1, TotalTokens: 30, CostMicros: 3_000, CostUSD: "0.003000"},
			},
			wantTotal: usageRow{Requests: 3, TotalTokens: 90, CostMicros: 6_000, CostUSD: "0.006000"},
		},
		{
			name: "by provider and month", query: rng + "&group_by=provider&bucket=month",
			want: []usageRow{
				{BucketStart: "2026-01-01T00:00:00Z", Provider: "p1", Requests: 3, TotalTokens: 90, CostMicros: 8_000, CostUSD: "0.008000"},
				{BucketStart: "2026-01-01T00:00:00Z", Provider: "p2", Requests: 1, TotalTokens: 30, CostMicros: 2_000, CostUSD: "0.002000"},
				{BucketStart: "2026-02-01T00:00:00Z", Provider: "p1", Requests: 1, TotalTokens: 30, CostMicros: 5_000, CostUSD: "0.005000"},
			},
			wantTotal: usageRow{Requests: 5, TotalTokens: 150, CostMicros: 15_000, CostUSD: "0.015000"},
		},
		{
			name: "by key", query: rng + "&group_by=key",
			want: sortedByKey([]usageRow{
				{KeyID: f.keyStd, Requests: 4, TotalTokens: 120, CostMicros: 12_000, CostUSD: "0.012000"},
				{KeyID: f.keyStd2, Requests: 1, TotalTokens: 30, CostMicros: 3_000, CostUSD: "0.003000"},
			}),
			wantTotal: usageRow{Requests: 5, TotalTokens: 150, CostMicros: 15_000, CostUSD: "0.015000"},
		},
		{
			name: "range excludes the end", query: "from=2026-01-01T10:15:00Z&to=2026-01-01T11:05:00Z",
			want:      []usageRow{{Requests: 2, TotalTokens: 60, CostMicros: 3_000, CostUSD: "0.003000"}},
			wantTotal: usageRow{Requests: 2, TotalTokens: 60, CostMicros: 3_000, CostUSD: "0.003000"},
		},
		{
			name: "empty range", query: "from=2025-01-01&to=2025-02-01",
			want:      []usageRow{},
			wantTotal: usageRow{CostUSD: "0.000000"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.get(t, f.mgmtKey, "/v1/management/usage?"+tt.query)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var got struct {
				Data   []usageRow `json:"data"`
				Totals usageRow   `json:"totals"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Data, tt.want) {
				t.Errorf("data = %+v\nwant   %+v", got.Data, tt.want)
			}
			if got.Totals != tt.wantTotal {
				t.Errorf("totals = %+v, want %+v", got.Totals, tt.wantTotal)
			}
		})
	}
}

func sortedByKey(rows []usageRow) []usageRow {
	slices.SortFunc(rows, func(a, b usageRow) int { return strings.Compare(a.KeyID, b.KeyID) })
	return rows
}

type logsPage struct {
	Data []struct {
		RequestID  string `json:"request_id"`
		CostUSD    string `json:"cost_usd"`
		CostMicros int64  `json:"cost_micros"`
		TTFTMs     *int64 `json:"ttft_ms"`
	} `json:"data"`
	HasMore    bool   `json:"has_more"`
	NextCursor string `json:"next_cursor"`
}

func (f *fixture) logs(t *testing.T, query string) logsPage {
	t.Helper()
	resp, body := f.get(t, f.mgmtKey, "/v1/management/request-logs?"+query)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var p logsPage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func ids(p logsPage) []string {
	var out []string
	for _, d := range p.Data {
		out = append(out, d.RequestID)
	}
	return out
}

func TestRequestLogsFilters(t *testing.T) {
	f := seed(t)
	const rng = "from=2026-01-01&to=2026-03-01"
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{name: "all, newest first", query: rng, want: []string{"r5", "r4", "r3", "r2", "r1"}},
		{name: "model", query: rng + "&model=m2", want: []string{"r4", "r3"}},
		{name: "provider", query: rng + "&provider=p2", want: []string{"r2"}},
		{name: "finish reason", query: rng + "&finish_reason=length", want: []string{"r2"}},
		{name: "key", query: rng + "&key_id=" + f.keyStd2, want: []string{"r3"}},
		{name: "request id", query: rng + "&request_id=r4", want: []string{"r4"}},
		{name: "another org's request is invisible", query: rng + "&request_id=r6", want: nil},
		{name: "time window", query: "from=2026-01-01T10:30:00Z&to=2026-01-02T00:00:00Z", want: []string{"r3", "r2"}},
		{name: "default range is the last 30 days", query: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ids(f.logs(t, tt.query)); !slices.Equal(got, tt.want) {
				t.Errorf("request ids = %v, want %v", got, tt.want)
			}
		})
	}
	p := f.logs(t, rng+"&request_id=r1")
	if len(p.Data) != 1 || p.Data[0].CostUSD != "0.001000" || p.Data[0].TTFTMs == nil || *p.Data[0].TTFTMs != 30 {
		t.Errorf("r1 = %+v", p.Data)
	}
}

func TestRequestLogsPagination(t *testing.T) {
	f := seed(t)
	var got []string
	query := "from=2026-01-01&to=2026-03-01&limit=2"
	pages := 0
	for {
		p := f.logs(t, query)
		pages++
		got = append(got, ids(p)...)
		if !p.HasMore {
			if p.NextCursor != "" {
				t.Errorf("last page has a cursor")
			}
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		// Rows arriving meanwhile (newer than the first page) must not disturb later pages.
		if pages == 1 {
			_, err := f.store.SettleBatch(context.Background(), []ledger.Usage{{
				RequestID: "r-new", OrgID: f.orgA, Status: 200, CostMicros: 1, CreatedAt: time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC),
			}})
			if err != nil {
				t.Fatal(err)
			}
		}
		query = "from=2026-01-01&to=2026-03-01&limit=2&cursor=" + p.NextCursor
	}
	if want := []string{"r5", "r4", "r3", "r2", "r1"}; !slices.Equal(got, want) || pages != 3 {
		t.Errorf("pages = %d, ids = %v; want 3 pages of %v", pages, got, want)
	}
}

func TestCSVExports(t *testing.T) {
	f := seed(t)
	t.Run("usage", func(t *testing.T) {
		resp, body := f.get(t, f.mgmtKey, "/v1/management/usage.csv?from=2026-01-01&to=2026-03-01&group_by=model&bucket=month")
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
			t.Errorf("content-type = %q", ct)
		}
		want := "bucket_start,model,requests,prompt_tokens,completion_tokens,cached_read_tokens,cache_write_tokens,reasoning_tokens,total_tokens,cost_micros,cost_usd\n" +
			"2026-01-01T00:00:00Z,m1,2,20,40,0,0,0,60,3000,0.003000\n" +
			"2026-01-01T00:00:00Z,m2,2,20,40,0,0,0,60,7000,0.007000\n" +
			"2026-02-01T00:00:00Z,m1,1,10,20,0,0,0,30,5000,0.005000\n"
		if string(body) != want {
			t.Errorf("usage.csv =\n%s\nwant\n%s", body, want)
		}
		if s := resp.Trailer.Get("X-Export-Status"); s != "complete" {
			t.Errorf("X-Export-Status = %q", s)
		}
	})
	t.Run("request logs", func(t *testing.T) {
		resp, body := f.get(t, f.mgmtKey, "/v1/management/request-logs.csv?from=2026-01-01&to=2026-03-01&provider=p1")
		recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 5 || recs[0][0] != "request_id" || recs[0][16] != "cost_micros" {
			t.Fatalf("request-logs.csv = %q", recs)
		}
		var got []string
		for _, r := range recs[1:] {
			got = append(got, r[0]+"="+r[17])
		}
		if want := []string{"r5=0.005000", "r4=0.004000", "r3=0.003000", "r1=0.001000"}; !slices.Equal(got, want) {
			t.Errorf("rows = %v, want %v", got, want)
		}
		if s := resp.Trailer.Get("X-Export-Status"); s != "complete" {
			t.Errorf("X-Export-Status = %q", s)
		}
	})
	t.Run("standard key refused", func(t *testing.T) {
		resp, _ := f.get(t, f.stdKey, "/v1/management/request-logs.csv")
		if resp.StatusCode != 403 {
			t.Errorf("status = %d, want 403", resp.StatusCode)
		}
	})
}
