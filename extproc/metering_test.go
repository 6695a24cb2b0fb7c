package extproc

import (
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chat, err := openai.ParseChatRequest([]byte(tt.body))
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
			chat, err := openai.ParseChatRequest([]byte(tt.body))
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
