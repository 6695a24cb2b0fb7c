// The cancellation test holds a request at a local gated provider, so it needs the gateway's
// processes on this machine; `-tags external` leaves it out when the suite runs against a
// compose stack.

//go:build !external

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/billing"
)

// TestCancelledRequestChargedInput: a client that gives up on a non-streamed request after it
// reached the provider (the provider read the prompt, and bills it) is charged the request's
// input, once; its hold is gone and the ledger reconciles.
func TestCancelledRequestChargedInput(t *testing.T) {
	up := newGatedUpstream(t)
	s := startStackWith(t, stackOptions{
		providers: []string{fmt.Sprintf(`{name: gated, kind: openai, base_url: "%s", api_key_env: MOCK_API_KEY}`, up.srv.URL)},
		models: []string{`{id: mock-gated, owned_by: tollgate, max_output_tokens: 100, backends: [{provider: gated, upstream_model: mock-1}], ` +
			`pricing: {prompt: "1.00", completion: "2.00"}}`},
	})
	var before int64
	if err := s.DB.QueryRow(t.Context(), `SELECT balance_micros FROM org_balances WHERE org_id = $1`, s.OrgID).Scan(&before); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	body := `{"model":"mock-gated","messages":[{"role":"user","content":"` + strings.Repeat("a", 4000) + `"}]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.BaseURL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.APIKey)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	poll(t, "request upstream", 30*time.Second, func() (bool, error) {
		return up.arrived.Load() == 1, fmt.Errorf("%d arrived", up.arrived.Load())
	})
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the cancelled request completed")
	}

	var status int
	var cost int64
	var finish string
	eventually(t, "the cancelled request charged", func() (bool, error) {
		err := s.DB.QueryRow(t.Context(), `SELECT status, cost_micros, finish_reason FROM usage_records WHERE org_id = $1`, s.OrgID).Scan(&status, &cost, &finish)
		return err == nil, err
	})
	// 4000 bytes of prompt: at least 1000 tokens at $1/M.
	if status != 499 || finish != "cancelled" || cost < 1000 {
		t.Errorf("usage record: status %d, finish %q, cost %d µUSD; want 499, cancelled, the input (≥ 1000 µUSD)", status, finish, cost)
	}
	eventually(t, "no hold left", func() (bool, error) {
		var held int64
		err := s.DB.QueryRow(t.Context(), `SELECT held_micros FROM org_balances WHERE org_id = $1`, s.OrgID).Scan(&held)
		return err == nil && held == 0, fmt.Errorf("%d µUSD held (err %v)", held, err)
	})
	var entries int
	if err := s.DB.QueryRow(t.Context(), `SELECT count(*) FROM ledger_entries WHERE org_id = $1 AND kind = 'usage'`, s.OrgID).Scan(&entries); err != nil || entries != 1 {
		t.Errorf("%d usage entries (err %v), want 1", entries, err)
	}
	if got, want := s.tollgate(t, "ledger", "reconcile", "--org", s.OrgID), billing.FormatMicros(before-cost); got != want {
		t.Errorf("ledger reconcile = %q, want %q", got, want)
	}
}
