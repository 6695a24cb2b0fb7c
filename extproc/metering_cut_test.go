package extproc

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/billing"
)

// streamEvent describes one event of a metering fixture: the bytes of content it delivers and
// the usage it reports (outputTokens < 0: none; final: the provider's last usage event).
type fixtureEvent struct {
	content      int64
	inputTokens  int64
	outputTokens int64
	final        bool
}

// TestCutStreamsCharged cuts each provider kind's stream at every event boundary, for every
// client protocol, and checks what would be charged: before the provider's last usage event, the
// larger of its figure and a token per delivered content byte (never Anthropic's message_start
// placeholder of one output token); after it, exactly the provider's figure.
func TestCutStreamsCharged(t *testing.T) {
	const none = -1
	fixtures := []struct {
		provider protocol
		file     string
		events   []fixtureEvent
	}{
		{protoAnthropic, "anthropic.sse", []fixtureEvent{
			{inputTokens: 25, outputTokens: 1}, // message_start: output is a placeholder
			{outputTokens: none},               // content_block_start
			{outputTokens: none},               // ping
			{content: 7, outputTokens: none},
			{content: 14, outputTokens: none},
			{outputTokens: none},                               // content_block_stop
			{inputTokens: 25, outputTokens: 40, final: true},   // message_delta
			{inputTokens: 25, outputTokens: none, final: true}, // message_stop
		}},
		{protoGemini, "gemini.sse", []fixtureEvent{
			{content: 7, inputTokens: 25, outputTokens: 2},
			{content: 14, inputTokens: 25, outputTokens: 5},
			{inputTokens: 25, outputTokens: 40, final: true}, // the frame with the finish reason
		}},
		{protoOpenAI, "openai.sse", []fixtureEvent{
			{outputTokens: none},
			{content: 7, outputTokens: none},
			{content: 14, outputTokens: none},
			{outputTokens: none},                             // finish_reason
			{inputTokens: 25, outputTokens: 40, final: true}, // the usage chunk
			{inputTokens: 25, outputTokens: none, final: true},
		}},
	}
	m := meteringCatalog(t)
	clients := []struct {
		proto protocol
		ep    endpoint
		body  string
	}{
		{protoOpenAI, classify("/v1/chat/completions"), `{"model":"m","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"Tell me something, please: anything"}]}`},
		{protoAnthropic, classify("/v1/messages"), `{"model":"m","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"Tell me something, please: anything"}]}`},
		{protoGemini, classify("/v1beta/models/m:streamGenerateContent"), `{"contents":[{"role":"user","parts":[{"text":"Tell me something, please: anything"}]}],"generationConfig":{"maxOutputTokens":100}}`},
	}
	for _, f := range fixtures {
		raw, err := os.ReadFile("testdata/metering/" + f.file)
		if err != nil {
			t.Fatal(err)
		}
		events := strings.SplitAfter(string(raw), "\n\n")
		events = events[:len(events)-1] // after the last blank line
		if len(events) != len(f.events) {
			t.Fatalf("%s: %d events, %d described", f.file, len(events), len(f.events))
		}
		for _, c := range clients {
			req, perr := parseClient(c.ep, []byte(c.body), nil)
			if perr != nil {
				t.Fatal(perr)
			}
			b := requestBounds(m, req.pivot)
			for k := 0; k <= len(events); k++ {
				t.Run(fmt.Sprintf("%s/to_%s/cut_after_%d", f.provider, c.proto, k), func(t *testing.T) {
					proc := newStreamProcessor(req, nativeProvider(f.provider), "m")
					for _, ev := range events[:k] {
						if _, err := proc.Feed([]byte(ev), false); err != nil {
							t.Fatal(err)
						}
					}
					var content, in, out int64
					seen, final := false, false
					for _, e := range f.events[:k] {
						content += e.content
						if e.outputTokens != none {
							seen, in, out = true, e.inputTokens, e.outputTokens
						}
						final = final || e.final
					}
					want := billing.Usage{InputTokens: b.prompt, OutputTokens: min(content, b.output)}
					switch {
					case final:
						want = billing.Usage{InputTokens: in, OutputTokens: out}
					case seen:
						want = billing.Usage{InputTokens: in, OutputTokens: max(out, min(content, b.output))}
					}
					got, gotFinal := metered(proc, b)
					if promptTokens(got) != promptTokens(want) || completionTokens(got) != completionTokens(want) || gotFinal != final {
						t.Errorf("charged prompt %d completion %d (final %v); want %d, %d (final %v)",
							promptTokens(got), completionTokens(got), gotFinal, promptTokens(want), completionTokens(want), final)
					}
				})
			}
		}
	}
}
