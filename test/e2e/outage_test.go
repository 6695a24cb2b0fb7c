// The outage test stops and starts a private Postgres, so it needs the gateway's processes on
// this machine; `-tags external` leaves it out when the suite runs against a compose stack.

//go:build !external

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/mockprovider"
)

// gatedUpstream is the mock provider behind a gate: requests arrive (and are counted) but get
// no answer until the test opens the gate. It lets a test hold requests in flight — admitted,
// their credit held — while it breaks something.
type gatedUpstream struct {
	arrived atomic.Int64
	gate    chan struct{}
	srv     *httptest.Server
}

func newGatedUpstream(t *testing.T) *gatedUpstream {
	g := &gatedUpstream{gate: make(chan struct{})}
	mock := mockprovider.Handler(mockprovider.Config{APIKey: mockKey}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.arrived.Add(1)
		select {
		case <-g.gate:
		case <-r.Context().Done():
			return
		}
		mock.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		g.open()
		g.srv.Close()
	})
	return g
}

var openOnce sync.Mutex

func (g *gatedUpstream) open() {
	openOnce.Lock()
	defer openOnce.Unlock()
	select {
	case <-g.gate:
	default:
		close(g.gate)
	}
}

// TestPostgresOutage stops Postgres (really: a private cluster, stopped with pg_ctl) while
// admitted requests are still upstream, lets them complete during the outage, then restarts
// it. Requests that arrive during the outage cannot be held and get 503; every request that
// completed must be charged exactly once after recovery — the extproc's settlement spool
// (--spool-dir) keeps them while Postgres is away and replays them when it returns.
func TestPostgresOutage(t *testing.T) {
	pg := startPostgres(t)
	up := newGatedUpstream(t)
	spoolDir := t.TempDir()
	s := startStackWith(t, stackOptions{
		dsn:       pg.DSN,
		providers: []string{fmt.Sprintf(`{name: gated, kind: openai, base_url: "%s", api_key_env: MOCK_API_KEY}`, up.srv.URL)},
		models: []string{`{id: mock-gated, owned_by: tollgate, max_output_tokens: 100, backends: [{provider: gated, upstream_model: mock-1}], ` +
			`pricing: {prompt: "0.15", completion: "0.60"}}`},
		extprocArgs: []string{"--spool-dir", spoolDir},
	})

	completed := map[string]bool{}
	// Before the outage: ordinary requests, settled as usual.
	for i := range 5 {
		resp, body := post(t, s, "/v1/chat/completions", fmt.Sprintf(`{"model":"mock-gpt","messages":[{"role":"user","content":"before %d"}]}`, i), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("before the outage: status %d: %s", resp.StatusCode, body)
		}
		completed[resp.Header.Get("X-Request-Id")] = true
	}

	// Requests admitted (held) and upstream when Postgres goes away.
	const inflight = 12
	type result struct {
		status int
		id     string
		body   string
		err    error
	}
	results := make(chan result, inflight)
	for i := range inflight {
		go func() {
			stream := ""
			if i%2 == 0 {
				stream = `"stream":true,"stream_options":{"include_usage":true},`
			}
			body := fmt.Sprintf(`{"model":"mock-gated",%s"messages":[{"role":"user","content":"in flight %d"}]}`, stream, i)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.BaseURL+"/v1/chat/completions", strings.NewReader(body))
			if err != nil {
				results <- result{err: err}
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+s.APIKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			results <- result{status: resp.StatusCode, id: resp.Header.Get("X-Request-Id"), body: string(b), err: err}
		}()
	}
	poll(t, "in-flight requests admitted and upstream", 30*time.Second, func() (bool, error) {
		return up.arrived.Load() == inflight, fmt.Errorf("%d of %d arrived", up.arrived.Load(), inflight)
	})

	pg.Stop(t)
	up.open()
	for range inflight {
		r := <-results
		if r.err != nil || r.status != 200 {
			t.Fatalf("in-flight request during the outage: status %d, err %v: %.300s", r.status, r.err, r.body)
		}
		completed[r.id] = true
	}
	// Their settlements cannot reach Postgres: they must be durable in the spool instead.
	poll(t, "settlements spooled during the outage", 15*time.Second, func() (bool, error) {
		b, err := os.ReadFile(filepath.Join(spoolDir, "spool.log"))
		return strings.Count(string(b), `"op":"settle"`) >= inflight, err
	})

	// New requests cannot be held while Postgres is down: the gateway fails closed.
	resp, body := post(t, s, "/v1/chat/completions", `{"model":"mock-gpt","messages":[{"role":"user","content":"during"}]}`, nil)
	var e errorShape
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(body, &e) != nil || e.Error.Code != "service_unavailable" {
		t.Errorf("a new request during the outage: status %d: %s; want 503 service_unavailable", resp.StatusCode, body)
	}

	pg.Start(t)
	poll(t, "every completed request charged after recovery", 60*time.Second, func() (bool, error) {
		var n int
		err := s.DB.QueryRow(t.Context(), `SELECT count(*) FROM ledger_entries WHERE kind = 'usage'`).Scan(&n)
		return err == nil && n >= len(completed), fmt.Errorf("%d of %d charged (err %v)", n, len(completed), err)
	})
	rows, err := s.DB.Query(t.Context(), `
		SELECT r.request_id, (SELECT count(*) FROM ledger_entries e WHERE e.kind = 'usage' AND e.request_id = r.request_id)
		FROM usage_records r`)
	if err != nil {
		t.Fatal(err)
	}
	charged := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		charged[id] = n
	}
	rows.Close()
	for id := range completed {
		if charged[id] != 1 {
			t.Errorf("completed request %s has %d charges, want 1", id, charged[id])
		}
	}
	if len(charged) != len(completed) {
		t.Errorf("%d requests charged, %d completed", len(charged), len(completed))
	}
	eventually(t, "no hold left", func() (bool, error) {
		var held int64
		err := s.DB.QueryRow(t.Context(), `SELECT held_micros FROM org_balances WHERE org_id = $1`, s.OrgID).Scan(&held)
		return err == nil && held == 0, fmt.Errorf("%d µUSD held (err %v)", held, err)
	})
	s.tollgate(t, "ledger", "reconcile", "--org", s.OrgID)
}
