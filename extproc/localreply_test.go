package extproc

import (
	"encoding/json"
	"strconv"
	"testing"
)

// clientCall is one client protocol's request for the harness catalog's "every" model.
type clientCall struct {
	proto   string
	headers []string
	body    string
}

func clientCalls() []clientCall {
	return []clientCall{
		{"openai", chatHeaders(), `{"model":"every","messages":[{"role":"user","content":"hi"}]}`},
		{"anthropic", []string{":method", "POST", ":path", "/v1/messages", "x-api-key", goodKey, "anthropic-version", "2023-06-01", "content-type", "application/json"},
			`{"model":"every","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`},
		{"gemini", []string{":method", "POST", ":path", "/v1beta/models/every:generateContent", "x-goog-api-key", goodKey, "content-type", "application/json"},
			`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`},
	}
}

// errorShape reads an error body in proto's shape: the OpenAI code, the Anthropic type, or
// Gemini's status name, and Gemini's numeric code (0 elsewhere).
func errorShape(t *testing.T, proto string, body []byte) (kind string, code int) {
	t.Helper()
	var b struct {
		Type  string `json:"type"`
		Error struct {
			Code    json.RawMessage `json:"code"`
			Type    string          `json:"type"`
			Status  string          `json:"status"`
			Message string          `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Error.Message == "" {
		t.Fatalf("%s error body %s is not in its shape (%v)", proto, body, err)
	}
	switch proto {
	case "anthropic":
		if b.Type != "error" {
			t.Errorf("anthropic error body without type error: %s", body)
		}
		return b.Error.Type, 0
	case "gemini":
		n, _ := strconv.Atoi(string(b.Error.Code))
		return b.Error.Status, n
	}
	var c string
	_ = json.Unmarshal(b.Error.Code, &c)
	return c, 0
}

// TestLocalReplyMapping covers Envoy's own replies after the request was admitted: they are
// told from a provider's answer by the attempts, whatever the status, and mapped by status into
// seed 003's table in every client protocol.
func TestLocalReplyMapping(t *testing.T) {
	type want struct {
		status                    int
		openai, anthropic, gemini string
	}
	var (
		noProvider = want{502, "no_provider_available", "overloaded_error", "UNAVAILABLE"}
		timeout    = want{524, "provider_timeout", "timeout_error", "DEADLINE_EXCEEDED"}
		unavail    = want{503, "service_unavailable", "overloaded_error", "UNAVAILABLE"}
		tooLarge   = want{413, "request_too_large", "request_too_large", "INVALID_ARGUMENT"}
		provider   = want{502, "provider_error", "api_error", "UNAVAILABLE"}
	)
	tests := []struct {
		name string
		// attempt opens an attempt stream first; attemptStatus is its response (0: none, as
		// when the connection failed, was reset or timed out).
		attempt       bool
		attemptStatus int
		status        int
		body          string
		want          want
	}{
		{name: "ratelimit filter fails closed", status: 500, body: "", want: unavail},
		{name: "no healthy upstream", status: 503, body: "no healthy upstream", want: noProvider},
		{name: "route timeout before any attempt", status: 504, body: "upstream request timeout", want: timeout},
		{name: "buffer overflow", status: 413, body: "Payload Too Large", want: tooLarge},
		{name: "connect failure on the last try", attempt: true, status: 503,
			body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure", want: noProvider},
		{name: "last try timed out", attempt: true, status: 504, body: "upstream request timeout", want: timeout},
		{name: "stream idle timeout", attempt: true, status: 408, body: "stream timeout", want: timeout},
		{name: "provider's own 503", attempt: true, attemptStatus: 503, status: 503,
			body: `{"error":{"message":"overloaded","type":"server_error"}}`, want: provider},
		{name: "provider's own 504", attempt: true, attemptStatus: 504, status: 504,
			body: `{"error":{"message":"gateway timeout","type":"server_error"}}`, want: timeout},
	}
	h := newHarnessWith(t, Config{MaxBodyBytes: 1 << 20})
	for _, tt := range tests {
		for _, c := range clientCalls() {
			t.Run(tt.name+"/"+c.proto, func(t *testing.T) {
				router := h.open(t)
				router.requestHeaders(false, c.headers...)
				routed := router.requestBody(c.body)
				id := routedID(routed)
				if id == "" {
					t.Fatalf("request not routed: %v", routed)
				}
				if tt.attempt {
					a := h.open(t)
					a.send(attemptRequest(id, "openai/every"))
					if tt.attemptStatus != 0 {
						a.responseHeaders(false, ":status", strconv.Itoa(tt.attemptStatus), "content-type", "application/json")
					}
				}
				router.responseHeaders(false, ":status", strconv.Itoa(tt.status), "content-type", "text/plain")
				cr := router.responseBody([]byte(tt.body), true).GetResponseBody().GetResponse()
				set, _ := mutations(cr.GetHeaderMutation())
				if set[":status"] != strconv.Itoa(tt.want.status) {
					t.Errorf(":status %s, want %d", set[":status"], tt.want.status)
				}
				body := cr.GetBodyMutation().GetBody()
				kind, code := errorShape(t, c.proto, body)
				wantKind := map[string]string{"openai": tt.want.openai, "anthropic": tt.want.anthropic, "gemini": tt.want.gemini}[c.proto]
				if kind != wantKind {
					t.Errorf("%s error %q, want %q: %s", c.proto, kind, wantKind, body)
				}
				if c.proto == "gemini" && code != tt.want.status {
					t.Errorf("gemini error code %d, want %d", code, tt.want.status)
				}
			})
		}
	}
}

// TestUnansweredAttemptCharged: a request that timed out after an attempt went out was read by a
// provider, which bills it: it is charged its input, recorded with its status; one that no
// provider answered because none could be reached, or that a provider refused, is released.
func TestUnansweredAttemptCharged(t *testing.T) {
	tests := []struct {
		name          string
		attemptStatus int // the attempt's response; 0 when it had none
		status        int
		body          string
		wantCharged   bool
	}{
		{name: "timed out after the attempt went out", status: 504, body: "upstream request timeout", wantCharged: true},
		{name: "stream idle after the attempt went out", status: 408, body: "stream timeout", wantCharged: true},
		{name: "connect failure", status: 503, body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure"},
		{name: "provider's own 503", attemptStatus: 503, status: 503, body: `{"error":{"message":"overloaded","type":"server_error"}}`},
		{name: "provider's own 400", attemptStatus: 400, status: 400, body: `{"error":{"message":"bad","type":"invalid_request_error"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarnessWith(t, Config{MaxBodyBytes: 1 << 20})
			router := h.open(t)
			router.requestHeaders(false, chatHeaders()...)
			id := routedID(router.requestBody(`{"model":"every","messages":[{"role":"user","content":"hello there"}]}`))
			a := h.open(t)
			a.send(attemptRequest(id, "openai/every"))
			if tt.attemptStatus != 0 {
				a.responseHeaders(false, ":status", strconv.Itoa(tt.attemptStatus), "content-type", "application/json")
			}
			hold := h.ledger.lastHold(t)
			router.responseHeaders(false, ":status", strconv.Itoa(tt.status), "content-type", "text/plain")
			router.responseBody([]byte(tt.body), true)
			_ = router.s.CloseSend()
			if !tt.wantCharged {
				poll(t, func() bool { return h.ledger.openHolds() == 0 })
				if ids := h.ledger.releasedIDs(); len(ids) != 1 {
					t.Errorf("released %v, want the request's hold", ids)
				}
				return
			}
			u := h.ledger.waitSettled(t)
			if u.CostMicros != hold.InputMicros || u.CostMicros <= 0 || u.Status != 524 || u.FinishReason != "timeout" {
				t.Errorf("settled %+v; want its input (%d µUSD), status 524, finish timeout", u, hold.InputMicros)
			}
		})
	}
}
