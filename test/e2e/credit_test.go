package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
)

// creditModels are the models the concurrency test spreads its requests over: mock-gpt, whose
// mock bills what it wrote, and models whose mock provider (OpenAI, Anthropic and Gemini kinds)
// bills the most it was allowed — the output limit it was sent, or 10^12 tokens when it was sent
// none. All are priced alike, with max_output_tokens 38 for the latter.
var creditModels = []string{"mock-gpt", "mock-bill-max", "mock-bill-max-claude", "mock-bill-max-gemini"}

// creditBody is request i of the concurrency test, whose hold is close to its actual cost, so
// that credit for about 100 holds admits about 100 requests however settlement interleaves: the
// mock answers "Hello from the Tollgate mock provider. You said: <the prompt>", 8 + 30 words,
// and the output limit is exactly 38, so the completion bound is the completion. Requests to
// the billing-maximum models ask for max_tokens 1,000,000, which the gateway must lower to the
// model's 38 before the provider sees it, or that provider bills a million tokens.
func creditBody(i int) string {
	prompt := strings.TrimSpace(strings.Repeat("a ", 30))
	s := ""
	if i%2 == 0 {
		s = `"stream":true,"stream_options":{"include_usage":true},`
	}
	model := creditModels[i%len(creditModels)]
	limit := 38
	if model != "mock-gpt" {
		limit = 1_000_000
	}
	return fmt.Sprintf(`{"model":%q,%s"max_tokens":%d,"messages":[{"role":"user","content":%q}]}`, model, s, limit, prompt)
}

// holdFor computes the extproc's hold for body the way docs/design.md section 6 states it: prompt
// bytes at the prompt price plus max_tokens at the completion price, plus markup, rounded up.
func holdFor(t *testing.T, body string, markupBps int64) int64 {
	t.Helper()
	chat, err := openai.ParseChatRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	prices, err := billing.ParsePrices(map[string]string{"prompt": "0.15", "completion": "0.60"})
	if err != nil {
		t.Fatal(err)
	}
	return billing.Compute(prices, billing.Usage{InputTokens: chat.PromptBytes(), OutputTokens: min(*chat.MaxTokens, 38), Requests: 1}, markupBps).TotalMicros
}

type creditResult struct {
	status    int
	requestID string
	body      []byte
	err       error
}

// TestCreditCannotBeOverspent sends 500 concurrent requests, streaming and not, some to providers
// that bill the most they were allowed, for an org whose credit covers about 100 of them, and
// checks docs/design.md section 6's promises: the
// balance never goes below zero, every admitted request is charged exactly once, every other
// request gets 402 insufficient_quota in OpenAI's shape, and reconcile agrees with the ledger.
func TestCreditCannotBeOverspent(t *testing.T) {
	s := startStack(t)
	org := s.tollgate(t, "org", "create", "--name", "credit", "--markup-bps", "1000")
	key := s.tollgate(t, "key", "create", "--org", org, "--name", "credit")
	var hold int64
	for i := range 2 * len(creditModels) {
		hold = max(hold, holdFor(t, creditBody(i), 1000))
	}
	credit := 100 * hold
	s.tollgate(t, "credits", "add", "--org", org, "--usd", billing.FormatMicros(credit))
	t.Logf("hold per request %d µUSD, credit %d µUSD", hold, credit)

	// Watch the balance while the requests run: it must never be negative, and neither may
	// what is left after open holds.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(t.Context()))
	var minBalance, minAvailable int64 = credit, credit
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var bal, held int64
			if err := s.DB.QueryRow(watchCtx, `SELECT balance_micros, held_micros FROM org_balances WHERE org_id = $1`, org).Scan(&bal, &held); err == nil {
				minBalance, minAvailable = min(minBalance, bal), min(minAvailable, bal-held)
			}
			select {
			case <-watchCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	const n = 500
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 2 * time.Minute}
	results := make([]creditResult, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.BaseURL+"/v1/chat/completions", strings.NewReader(creditBody(i)))
			if err != nil {
				results[i].err = err
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := client.Do(req)
			if err != nil {
				results[i].err = err
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body) // a stream is read to its end
			results[i] = creditResult{status: resp.StatusCode, requestID: resp.Header.Get("X-Request-Id"), body: body, err: err}
		})
	}
	close(start)
	wg.Wait()

	admitted := map[string]bool{}
	rejected := 0
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("request %d: %v", i, r.err)
		case r.status == http.StatusOK:
			if r.requestID == "" || admitted[r.requestID] {
				t.Errorf("request %d: missing or repeated request id %q", i, r.requestID)
			}
			admitted[r.requestID] = true
			if i%2 == 0 && !strings.Contains(string(r.body), "data: [DONE]") {
				t.Errorf("request %d: stream did not finish: %.300s", i, r.body)
			}
		case r.status == http.StatusPaymentRequired:
			rejected++
			var e errorShape
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code != "insufficient_quota" || e.Error.Message == "" || e.Error.Type == "" {
				t.Errorf("request %d: 402 is not OpenAI's insufficient_quota shape: %s", i, r.body)
			}
		default:
			t.Errorf("request %d: status %d: %.300s", i, r.status, r.body)
		}
	}
	t.Logf("%d admitted, %d refused with 402", len(admitted), rejected)
	if len(admitted) < 50 || rejected < 100 {
		t.Errorf("admitted %d, refused %d: credit for about 100 holds should admit about 100 and refuse the rest", len(admitted), rejected)
	}

	// Settlement is asynchronous: wait until every admitted request is in the ledger and no
	// hold is left, then check that nothing else was charged.
	var charges map[string]int
	eventually(t, "every admitted request settled", func() (bool, error) {
		charges = map[string]int{}
		rows, err := s.DB.Query(t.Context(), `SELECT request_id, count(*) FROM ledger_entries WHERE org_id = $1 AND kind = 'usage' GROUP BY request_id`, org)
		if err != nil {
			return false, err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var c int
			if err := rows.Scan(&id, &c); err != nil {
				return false, err
			}
			charges[id] = c
		}
		var held int64
		if err := s.DB.QueryRow(t.Context(), `SELECT held_micros FROM org_balances WHERE org_id = $1`, org).Scan(&held); err != nil {
			return false, err
		}
		return len(charges) >= len(admitted) && held == 0, fmt.Errorf("%d of %d charged, %d µUSD held", len(charges), len(admitted), held)
	})
	stopWatch()
	<-watched
	for id := range admitted {
		if charges[id] != 1 {
			t.Errorf("admitted request %s charged %d times, want 1", id, charges[id])
		}
	}
	for id, c := range charges {
		if !admitted[id] {
			t.Errorf("request %s charged %d times but was not admitted", id, c)
		}
	}
	var balance int64
	var records int
	if err := s.DB.QueryRow(t.Context(), `SELECT balance_micros FROM org_balances WHERE org_id = $1`, org).Scan(&balance); err != nil {
		t.Fatal(err)
	}
	if err := s.DB.QueryRow(t.Context(), `SELECT count(*) FROM usage_records WHERE org_id = $1`, org).Scan(&records); err != nil {
		t.Fatal(err)
	}
	if records != len(admitted) {
		t.Errorf("%d usage records for %d admitted requests", records, len(admitted))
	}
	var excess int64
	if err := s.DB.QueryRow(t.Context(), `SELECT coalesce(sum(excess_micros), 0) FROM usage_records WHERE org_id = $1`, org).Scan(&excess); err != nil {
		t.Fatal(err)
	}
	if excess != 0 {
		t.Errorf("%d µUSD computed above the holds: a hold was not an upper bound", excess)
	}
	if balance < 0 || minBalance < 0 || minAvailable < 0 {
		t.Errorf("balance went negative: final %d, lowest %d, lowest available %d µUSD", balance, minBalance, minAvailable)
	}
	t.Logf("final balance %d µUSD, lowest seen %d, lowest available %d", balance, minBalance, minAvailable)
	if got, want := s.tollgate(t, "ledger", "reconcile", "--org", org), billing.FormatMicros(balance); got != want {
		t.Errorf("ledger reconcile = %q, want %q", got, want)
	}
}
