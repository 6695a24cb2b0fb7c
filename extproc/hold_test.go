package extproc

import (
	"encoding/json"
	"testing"
)

// The hold is placed when the first attempt starts, after Envoy's
// ratelimit filter admitted the request: a request over its quota costs no hold, and retries
// reuse the first attempt's hold.

func TestOverQuotaCostsNoHold(t *testing.T) {
	h := newHarness(t)
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`)
	if n := len(h.ledger.placedHolds()); n != 0 {
		t.Fatalf("%d holds placed before the ratelimit filter ran", n)
	}
	// Envoy's ratelimit filter refuses the request: no attempt ever starts.
	router.responseHeaders(false, ":status", "429", "x-envoy-ratelimited", "true", "content-type", "text/plain")
	rb := router.responseBody([]byte("Too Many Requests"), true)
	set, _ := mutations(rb.GetResponseBody().GetResponse().GetHeaderMutation())
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal(rb.GetResponseBody().GetResponse().GetBodyMutation().GetBody(), &e); err != nil || set[":status"] != "429" || e.Error.Code != "rate_limit" {
		t.Errorf("status %s body code %q (%v), want 429 rate_limit", set[":status"], e.Error.Code, err)
	}
	if n := len(h.ledger.placedHolds()); n != 0 {
		t.Errorf("a request over its quota placed %d holds", n)
	}
}

func TestFirstAttemptHoldsRetriesReuse(t *testing.T) {
	h := newHarness(t)
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	id := routedID(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`))
	for i, backend := range []string{"openai/gpt-5.4-2026-03-01", "anthropic/msgs-only", "openai/gpt-5.4-2026-03-01"} {
		if h.attempt(t, id, backend).GetRequestHeaders() == nil {
			t.Fatalf("attempt %d was not translated", i)
		}
		if held := h.ledger.placedHolds(); len(held) != 1 || held[id] <= 0 {
			t.Fatalf("after attempt %d: holds %v, want exactly one for %s", i, held, id)
		}
	}
	router.responseHeaders(false, ":status", "200", "content-type", "application/json")
	router.responseBody([]byte(`{"id":"c","object":"chat.completion","model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1000000}}`), true)
	u := h.ledger.waitSettled(t)
	if hold := h.ledger.heldFor(id); u.CostMicros > hold || u.CompletionTokens > 1000 {
		t.Errorf("charged %d µUSD for %d completion tokens against a hold of %d", u.CostMicros, u.CompletionTokens, hold)
	}
	if h.ledger.openHolds() != 0 {
		t.Error("settlement leaves the hold open")
	}
}

// TestAttemptHoldFailure: the first attempt cannot hold credit; it answers with a local reply
// Envoy does not retry, and the client gets the hold's error in its own protocol.
func TestAttemptHoldFailure(t *testing.T) {
	h := newHarness(t)
	h.ledger.mu.Lock()
	h.ledger.balance = 1
	h.ledger.mu.Unlock()
	router := h.open(t)
	router.requestHeaders(false, chatHeaders()...)
	id := routedID(router.requestBody(`{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`))
	ir := h.attempt(t, id, "openai/gpt-5.4-2026-03-01").GetImmediateResponse()
	if ir.GetStatus().GetCode() != 402 {
		t.Fatalf("attempt answered %v, want a 402 local reply", ir)
	}
	// Envoy relays the local reply to the router filter as the response.
	router.responseHeaders(false, ":status", "402", "content-type", "application/json")
	rb := router.responseBody(ir.GetBody(), true).GetResponseBody().GetResponse()
	set, _ := mutations(rb.GetHeaderMutation())
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(rb.GetBodyMutation().GetBody(), &e); err != nil || set[":status"] != "402" || e.Error.Code != "insufficient_quota" {
		t.Errorf("status %s body %s (%v), want a 402 insufficient_quota", set[":status"], rb.GetBodyMutation().GetBody(), err)
	}
	if h.ledger.openHolds() != 0 || len(h.ledger.placedHolds()) != 0 {
		t.Error("a failed hold holds nothing")
	}
}
