package extproc

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/catalog"
	"github.com/tollgate/tollgate/extproc/openai"
)

func TestHoldMicros(t *testing.T) {
	prices, err := billing.ParsePrices(map[string]string{"prompt": "3.00", "completion": "15.00", "input_cache_write_1_h": "6.00", "internal_reasoning": "20.00"})
	if err != nil {
		t.Fatal(err)
	}
	m := &catalog.Model{ID: "m", MaxOutputTokens: 1000}
	m.SetPrices(prices)
	tests := []struct {
		name      string
		body      string
		markupBps int64
		want      int64
	}{
		{
			// prompt bytes: len(`"hi"`) 4 + 16 framing = 20 tokens at the dearest input rate
			// ($6/M: 120 µUSD); 1000 output tokens at the dearest output rate ($20/M: 20000).
			name: "defaults to the model's max output",
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
			want: 120 + 20_000,
		},
		{
			name: "max_tokens lowers the bound",
			body: `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
			want: 120 + 200,
		},
		{
			name: "max_tokens cannot raise it past the model's limit",
			body: `{"model":"m","max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`,
			want: 120 + 20_000,
		},
		{
			name:      "markup",
			body:      `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
			markupBps: 5000,
			want:      480,
		},
	}
	// Images count at the catalog's worst case per part (the default, 2500 tokens), besides
	// their bytes: a 40-byte URL may cost a provider thousands of tokens.
	images := func(n int) string {
		parts := `{"type":"text","text":"look"}`
		for range n {
			parts += `,{"type":"image_url","image_url":{"url":"https://x.example/a.png"}}`
		}
		return "[" + parts + "]"
	}
	for _, n := range []int{1, 200} {
		content := images(n)
		tests = append(tests, struct {
			name      string
			body      string
			markupBps int64
			want      int64
		}{
			name: fmt.Sprintf("%d images", n),
			body: `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":` + content + `}]}`,
			want: (int64(len(content))+16+int64(n)*catalog.DefaultImageTokens)*6 + 200,
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chat, err := openai.ParseRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := holdMicros(m, chat, tt.markupBps); got != tt.want {
				t.Errorf("holdMicros = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestInputMicros(t *testing.T) {
	prices, err := billing.ParsePrices(map[string]string{"prompt": "3.00", "completion": "15.00", "input_cache_write_1_h": "6.00"})
	if err != nil {
		t.Fatal(err)
	}
	m := &catalog.Model{ID: "m", MaxOutputTokens: 1000}
	m.SetPrices(prices)
	tests := []struct {
		name      string
		body      string
		markupBps int64
		want      int64
	}{
		// PromptBytes: len(`"hi"`) 4 + 16 framing = 20 bytes: 5 tokens at the prompt rate ($3/M),
		// 15 µUSD; not the dearest input rate the hold uses.
		{name: "a quarter of the prompt bytes", body: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, want: 15},
		// 21 bytes round up to 6 tokens: 18 µUSD.
		{name: "rounded up", body: `{"model":"m","messages":[{"role":"user","content":"hi!"}]}`, want: 18},
		{name: "markup", body: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, markupBps: 5000, want: 23}, // ceil(22.5)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chat, err := openai.ParseRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got := inputMicros(m, chat, tt.markupBps)
			if got != tt.want {
				t.Errorf("inputMicros = %d, want %d", got, tt.want)
			}
			if hold := holdMicros(m, chat, tt.markupBps); got > hold {
				t.Errorf("input charge %d above the hold %d", got, hold)
			}
		})
	}
}

func meteringCatalog(t *testing.T) *catalog.Model {
	t.Helper()
	raw, err := os.ReadFile("testdata/metering_catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Parse("metering_catalog.yaml", raw, func(string) string { return "key" })
	if err != nil {
		t.Fatal(err)
	}
	route, err := c.Resolve("m")
	if err != nil {
		t.Fatal(err)
	}
	return route.Model
}

// TestUpstreamOutputLimit: whatever the client's protocol and the provider's kind, the provider
// is sent an explicit output limit, min(client's, model's max_output_tokens): the limit the hold
// assumed. A client's max_tokens of 1,000,000 once reached the provider while the hold assumed
// 4096.
func TestUpstreamOutputLimit(t *testing.T) {
	m := meteringCatalog(t)
	clients := []struct {
		name string
		ep   endpoint
		body func(limit string) string
	}{
		{"openai max_tokens", classify("/v1/chat/completions"), func(l string) string {
			return `{"model":"m","messages":[{"role":"user","content":"hi"}]` + cond(l, `,"max_tokens":`+l) + `}`
		}},
		{"openai max_completion_tokens", classify("/v1/chat/completions"), func(l string) string {
			return `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]` + cond(l, `,"max_completion_tokens":`+l) + `}`
		}},
		{"anthropic", classify("/v1/messages"), func(l string) string {
			if l == "" {
				l = "1000000" // required by the Messages API
			}
			return `{"model":"m","max_tokens":` + l + `,"messages":[{"role":"user","content":"hi"}]}`
		}},
		{"gemini", classify("/v1beta/models/m:generateContent"), func(l string) string {
			return `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]` + cond(l, `,"generationConfig":{"temperature":1,"maxOutputTokens":`+l+`}`) + `}`
		}},
		{"gemini snake_case", classify("/v1beta/models/m:streamGenerateContent"), func(l string) string {
			return `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]` + cond(l, `,"generation_config":{"max_output_tokens":`+l+`}`) + `}`
		}},
	}
	limits := []struct{ client, want string }{
		{"", "4096"},
		{"1000000", "4096"},
		{"10", "10"},
	}
	// The JSON path of the limit in each provider kind's body, and the parameter that must be absent.
	wantField := map[string][2]string{
		catalog.KindOpenAI:           {"max_completion_tokens", "max_tokens"},
		catalog.KindOpenAICompatible: {"max_tokens", "max_completion_tokens"},
		catalog.KindAnthropic:        {"max_tokens", ""},
		catalog.KindGemini:           {"generationConfig.maxOutputTokens", ""},
	}
	for _, c := range clients {
		for _, l := range limits {
			if c.name == "anthropic" && l.client == "" {
				continue // the Anthropic client must send max_tokens; the 1,000,000 case covers it
			}
			req, perr := parseClient(c.ep, []byte(c.body(l.client)), nil)
			if perr != nil {
				t.Fatalf("%s: parse: %v", c.name, perr)
			}
			for i := range m.Backends {
				b := &m.Backends[i]
				kind := b.ProviderRef().Kind
				t.Run(c.name+"/"+cond(l.client, "max="+l.client)+"/"+kind, func(t *testing.T) {
					_, body, err := upstreamRequest(req, b, m)
					if err != nil {
						t.Fatal(err)
					}
					var doc map[string]any
					if err := json.Unmarshal(body, &doc); err != nil {
						t.Fatal(err)
					}
					field := wantField[kind]
					if got := lookup(doc, field[0]); fmt.Sprint(got) != l.want {
						t.Errorf("%s = %v, want %s in %s", field[0], got, l.want, body)
					}
					if field[1] != "" && lookup(doc, field[1]) != nil {
						t.Errorf("%s must not be sent beside %s: %s", field[1], field[0], body)
					}
					if kind == catalog.KindGemini && strings.Contains(string(body), "max_output_tokens") {
						t.Errorf("a snake_case limit survived: %s", body)
					}
				})
			}
		}
	}
}

func cond(s, then string) string {
	if s == "" {
		return ""
	}
	return then
}

// lookup follows a dotted path through decoded JSON objects; nil when absent.
func lookup(doc map[string]any, path string) any {
	var v any = doc
	for _, k := range strings.Split(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

// TestAdversarialProviderUsage: whatever a provider reports for a non-streamed answer, the charge
// stays within the request's bounds (and so within its hold), and an answer without usable usage
// is estimated, never free. The request: "hi" (a 20-token prompt bound), max_output_tokens 1000
// on gpt-5.4 ($1/M in, $2/M out, 10% markup).
func TestAdversarialProviderUsage(t *testing.T) {
	const answer = `"choices":[{"index":0,"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}]`
	tests := []struct {
		name             string
		usage            string
		wantPrompt       int64
		wantCompletion   int64
		wantCompletionGE int64 // for estimates: at least this much
	}{
		{name: "honest", usage: `,"usage":{"prompt_tokens":12,"completion_tokens":5}`, wantPrompt: 12, wantCompletion: 5},
		{name: "2^58 completion tokens", usage: `,"usage":{"prompt_tokens":12,"completion_tokens":288230376151711744}`, wantPrompt: 12, wantCompletion: 1000},
		{name: "1e12 completion tokens", usage: `,"usage":{"prompt_tokens":12,"completion_tokens":1000000000000}`, wantPrompt: 12, wantCompletion: 1000},
		{name: "absurd prompt", usage: `,"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":5}`, wantPrompt: 20, wantCompletion: 5},
		{name: "absurd reasoning", usage: `,"usage":{"prompt_tokens":12,"completion_tokens":5,"completion_tokens_details":{"reasoning_tokens":9000000000}}`, wantPrompt: 12, wantCompletion: 5}, // reasoning is part of completion_tokens
		{name: "negative counts", usage: `,"usage":{"prompt_tokens":-12,"completion_tokens":-5}`, wantPrompt: 20, wantCompletionGE: 100},
		{name: "no usage", usage: ``, wantPrompt: 20, wantCompletionGE: 100},
		{name: "null usage", usage: `,"usage":null`, wantPrompt: 20, wantCompletionGE: 100},
		{name: "usage that does not decode", usage: `,"usage":{"prompt_tokens":"12","completion_tokens":1e12}`, wantPrompt: 20, wantCompletionGE: 100},
		{name: "zero usage", usage: `,"usage":{"prompt_tokens":0,"completion_tokens":0}`, wantPrompt: 20, wantCompletionGE: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			s := h.open(t)
			s.requestHeaders(false, chatHeaders()...)
			h.routeAndAttempt(s, `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`, "")
			s.responseHeaders(false, ":status", "200", "content-type", "application/json")
			rb := s.responseBody([]byte(`{"id":"c","object":"chat.completion","model":"x",`+answer+tt.usage+`}`), true)
			u := h.ledger.waitSettled(t)
			hold := h.ledger.heldFor(u.RequestID)
			if u.PromptTokens != tt.wantPrompt {
				t.Errorf("prompt tokens = %d, want %d", u.PromptTokens, tt.wantPrompt)
			}
			if tt.wantCompletionGE == 0 && u.CompletionTokens != tt.wantCompletion || u.CompletionTokens < tt.wantCompletionGE || u.CompletionTokens > 1000 {
				t.Errorf("completion tokens = %d, want %d (at least %d, at most 1000)", u.CompletionTokens, tt.wantCompletion, tt.wantCompletionGE)
			}
			if u.CostMicros <= 0 || u.CostMicros > hold || u.ExcessMicros != 0 {
				t.Errorf("cost %d µUSD (excess %d) for a hold of %d", u.CostMicros, u.ExcessMicros, hold)
			}
			md := rb.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()
			if got := int64(md["total_tokens"].GetNumberValue()); got != u.PromptTokens+u.CompletionTokens {
				t.Errorf("total_tokens metadata %d, charged %d", got, u.PromptTokens+u.CompletionTokens)
			}
		})
	}
}

func TestCheckUsage(t *testing.T) {
	b := bounds{prompt: 100, output: 50}
	tests := []struct {
		name      string
		in, want  billing.Usage
		anomalous bool
	}{
		{name: "within", in: billing.Usage{InputTokens: 60, CacheReadTokens: 40, OutputTokens: 30, ReasoningTokens: 20},
			want: billing.Usage{InputTokens: 60, CacheReadTokens: 40, OutputTokens: 30, ReasoningTokens: 20}},
		{name: "negative", in: billing.Usage{InputTokens: -1, OutputTokens: -1 << 62},
			want: billing.Usage{}, anomalous: true},
		{name: "2^58 output", in: billing.Usage{InputTokens: 10, OutputTokens: 1 << 58},
			want: billing.Usage{InputTokens: 10, OutputTokens: 50}, anomalous: true},
		{name: "output and reasoning share the limit", in: billing.Usage{OutputTokens: 30, ReasoningTokens: 30},
			want: billing.Usage{OutputTokens: 30, ReasoningTokens: 20}, anomalous: true},
		{name: "prompt: cache reads kept first", in: billing.Usage{InputTokens: 1e12, CacheReadTokens: 80, CacheWriteTokens: 5},
			want: billing.Usage{InputTokens: 20, CacheReadTokens: 80}, anomalous: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, anomalies := checkUsage(tt.in, b)
			if got != tt.want || (len(anomalies) > 0) != tt.anomalous {
				t.Errorf("checkUsage = %+v %v, want %+v (anomalous %v)", got, anomalies, tt.want, tt.anomalous)
			}
		})
	}
}

// TestStreamChunksCarryRunningTotal: every streamed chunk's reply carries the token total so
// far, so that Envoy's ratelimit filter (apply_on_stream_done, which reads the last value it
// saw) charges token quotas for a stream the client abandons. Before the usage chunk the total
// is the estimate: the prompt's bound and a token per content byte delivered.
func TestStreamChunksCarryRunningTotal(t *testing.T) {
	h := newHarness(t)
	s := h.open(t)
	s.requestHeaders(false, chatHeaders()...)
	h.routeAndAttempt(s, `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "")
	s.responseHeaders(false, ":status", "200", "content-type", "text/event-stream")
	events := strings.SplitAfter(upstreamStream, "\n\n")
	const promptBound = 20 // len(`"hi"`) + 16 bytes of framing
	want := []float64{promptBound + 3, promptBound + 6, 9, 9}
	for i, ev := range events[:len(events)-1] {
		md := s.responseBody([]byte(ev), false).GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()
		got, ok := md["total_tokens"]
		if !ok || got.GetNumberValue() != want[i] {
			t.Errorf("chunk %d: total_tokens %v, want %v", i, got, want[i])
		}
	}
}

// TestPromptBoundCountsImages: every client protocol's images reach the prompt bound at the
// model's own per-image worst case (part_input_tokens.image: 1000 in the test catalog).
func TestPromptBoundCountsImages(t *testing.T) {
	m := meteringCatalog(t)
	const png = "iVBORw0KGgo="
	tests := []struct {
		name string
		ep   endpoint
		body string
	}{
		{"openai", classify("/v1/chat/completions"), `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"two"},` +
			`{"type":"image_url","image_url":{"url":"https://x.example/a.png"}},{"type":"image_url","image_url":{"url":"data:image/png;base64,` + png + `"}}]}]}`},
		{"anthropic", classify("/v1/messages"), `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"two"},` +
			`{"type":"image","source":{"type":"url","url":"https://x.example/a.png"}},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + png + `"}}]}]}`},
		{"gemini", classify("/v1beta/models/m:generateContent"), `{"contents":[{"role":"user","parts":[{"text":"two"},` +
			`{"inlineData":{"mimeType":"image/png","data":"` + png + `"}},{"fileData":{"mimeType":"image/png","fileUri":"https://x.example/a.png"}}]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, perr := parseClient(tt.ep, []byte(tt.body), nil)
			if perr != nil {
				t.Fatal(perr)
			}
			if got := req.pivot.MediaParts().Images; got != 2 {
				t.Fatalf("%d images counted, want 2", got)
			}
			if b := requestBounds(m, req.pivot); b.prompt != req.pivot.PromptBytes()+2*1000 {
				t.Errorf("prompt bound %d, want %d bytes + 2 × 1000", b.prompt, req.pivot.PromptBytes())
			}
		})
	}
}

func TestCapAtHold(t *testing.T) {
	tests := []struct{ cost, hold, charge, excess int64 }{
		{cost: 10, hold: 20, charge: 10},
		{cost: 20, hold: 20, charge: 20},
		{cost: 25, hold: 20, charge: 20, excess: 5},
		{cost: math.MaxInt64, hold: 20, charge: 20, excess: math.MaxInt64 - 20},
		{cost: 5, hold: 0, charge: 0, excess: 5},
	}
	for _, tt := range tests {
		if charge, excess := capAtHold(tt.cost, tt.hold); charge != tt.charge || excess != tt.excess {
			t.Errorf("capAtHold(%d, %d) = %d, %d; want %d, %d", tt.cost, tt.hold, charge, excess, tt.charge, tt.excess)
		}
	}
}

// TestAdversarialStreamUsage: a stream's final usage is checked like an answer's: 2^58 output
// tokens are clamped to the limit the provider was sent, negative counts are replaced by the
// estimate, and the charge stays within the hold.
func TestAdversarialStreamUsage(t *testing.T) {
	const content = `data: {"id":"c","object":"chat.completion.chunk","model":"x","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":"stop"}]}` + "\n\n"
	tests := []struct {
		name                       string
		usage                      string
		wantPrompt, wantCompletion int64
	}{
		{"2^58 output", `{"prompt_tokens":12,"completion_tokens":288230376151711744}`, 12, 1000},
		{"negative", `{"prompt_tokens":-12,"completion_tokens":-5}`, 20, int64(len("Hello"))},
		{"usage that does not decode", `{"prompt_tokens":12,"completion_tokens":"many"}`, 20, int64(len("Hello"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			s := h.open(t)
			s.requestHeaders(false, chatHeaders()...)
			h.routeAndAttempt(s, `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "")
			s.responseHeaders(false, ":status", "200", "content-type", "text/event-stream")
			mid := s.responseBody([]byte(content+`data: {"id":"c","object":"chat.completion.chunk","model":"x","choices":[],"usage":`+tt.usage+"}\n\ndata: [DONE]\n\n"), false)
			// The running total token quotas see is within the request's bounds too.
			if got := mid.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()["total_tokens"].GetNumberValue(); got <= 0 || got > 20+1000 {
				t.Errorf("running total_tokens %v, want within the 20 + 1000 token bounds", got)
			}
			last := s.responseBody(nil, true)
			u := h.ledger.waitSettled(t)
			if u.PromptTokens != tt.wantPrompt || u.CompletionTokens != tt.wantCompletion {
				t.Errorf("charged %d prompt, %d completion tokens; want %d, %d", u.PromptTokens, u.CompletionTokens, tt.wantPrompt, tt.wantCompletion)
			}
			if hold := h.ledger.heldFor(u.RequestID); u.CostMicros <= 0 || u.CostMicros > hold {
				t.Errorf("cost %d µUSD for a hold of %d", u.CostMicros, hold)
			}
			md := last.GetDynamicMetadata().GetFields()["tollgate"].GetStructValue().GetFields()
			if got := int64(md["total_tokens"].GetNumberValue()); got != u.PromptTokens+u.CompletionTokens {
				t.Errorf("total_tokens metadata %d, charged %d", got, u.PromptTokens+u.CompletionTokens)
			}
		})
	}
}
