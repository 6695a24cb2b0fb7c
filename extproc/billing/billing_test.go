package billing

import (
	"maps"
	"math"
	"strings"
	"testing"
)

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		scale   int64
		want    int64
		wantErr bool
	}{
		{name: "whole", in: "3", scale: 1_000_000, want: 3_000_000},
		{name: "two places", in: "3.00", scale: 1_000_000, want: 3_000_000},
		{name: "six places", in: "0.000001", scale: 1_000_000, want: 1},
		{name: "fraction", in: "0.30", scale: 1_000_000, want: 300_000},
		{name: "per unit", in: "0.01", scale: 1_000_000_000_000, want: 10_000_000_000},
		{name: "seven places", in: "0.0000001", scale: 1_000_000, wantErr: true},
		{name: "exponent", in: "1e-3", scale: 1_000_000, wantErr: true},
		{name: "negative", in: "-1", scale: 1_000_000, wantErr: true},
		{name: "empty", in: "", scale: 1_000_000, wantErr: true},
		{name: "leading dot", in: ".5", scale: 1_000_000, wantErr: true},
		{name: "overflow", in: "99999999999999", scale: 1_000_000_000_000, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDecimal(tt.in, tt.scale)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseDecimal(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("parseDecimal(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestCompute(t *testing.T) {
	prices, err := ParsePrices(map[string]string{
		"prompt":                  "3.00",
		"completion":              "15.00",
		"input_cache_read":        "0.30",
		"input_cache_write_5_min": "3.75",
		"request":                 "0.001",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		usage     Usage
		markupBps int64
		wantMicro int64
		wantItems map[string]int64 // pico
	}{
		{
			name:      "nothing costs nothing",
			wantMicro: 0,
			wantItems: map[string]int64{},
		},
		{
			// $3/M is 3,000,000 pico per token: 1000 tokens = 3e9 pico = 3000 µUSD
			name:      "prompt and completion",
			usage:     Usage{InputTokens: 1000, OutputTokens: 500},
			wantMicro: 3000 + 7500,
			wantItems: map[string]int64{"prompt": 3_000_000_000, "completion": 7_500_000_000},
		},
		{
			// one prompt token: 3,000,000 pico = 3 µUSD exactly
			name:      "one token",
			usage:     Usage{InputTokens: 1},
			wantMicro: 3,
			wantItems: map[string]int64{"prompt": 3_000_000},
		},
		{
			// 1 cached token = 300,000 pico = 0.3 µUSD, rounded up to 1
			name:      "fraction rounds up",
			usage:     Usage{CacheReadTokens: 1},
			wantMicro: 1,
			wantItems: map[string]int64{"input_cache_read": 300_000},
		},
		{
			// 10 cached = 3,000,000 pico = 3 µUSD exactly: no rounding
			name:      "exact stays exact",
			usage:     Usage{CacheReadTokens: 10},
			wantMicro: 3,
			wantItems: map[string]int64{"input_cache_read": 3_000_000},
		},
		{
			// 1000 prompt = 3000 µUSD; markup 2.5% = 3075
			name:      "markup applied once to the sum",
			usage:     Usage{InputTokens: 1000},
			markupBps: 250,
			wantMicro: 3075,
			wantItems: map[string]int64{"prompt": 3_000_000_000},
		},
		{
			// 1 prompt token 3 µUSD × 1.0001 = 3.0003 → 4
			name:      "markup fraction rounds up",
			usage:     Usage{InputTokens: 1},
			markupBps: 1,
			wantMicro: 4,
			wantItems: map[string]int64{"prompt": 3_000_000},
		},
		{
			// reasoning falls back to completion price; 1h write falls back to 5-minute price
			name:      "fallback prices",
			usage:     Usage{ReasoningTokens: 100, CacheWrite1HTokens: 100},
			wantMicro: 1500 + 375,
			wantItems: map[string]int64{"internal_reasoning": 1_500_000_000, "input_cache_write_1_h": 375_000_000},
		},
		{
			name:      "per request price",
			usage:     Usage{Requests: 1},
			wantMicro: 1000,
			wantItems: map[string]int64{"request": 1_000_000_000},
		},
		{
			// 10^9 completion tokens at $15/M = $15,000 = 1.5e10 µUSD, with 100% markup: no overflow
			name:      "large counts do not overflow",
			usage:     Usage{OutputTokens: 1_000_000_000},
			markupBps: 10_000,
			wantMicro: 30_000_000_000,
			wantItems: map[string]int64{"completion": 15_000_000_000_000_000},
		},
		{
			// 2^58 × 15,000,000 pico does not fit in 64 bits; it wrapped to a 30 µUSD charge once.
			// 2^58 × 15 µUSD = 4,323,455,642,275,676,160 µUSD, which fits.
			name:      "2^58 tokens are computed exactly",
			usage:     Usage{OutputTokens: 1 << 58},
			wantMicro: 4_323_455_642_275_676_160,
			wantItems: map[string]int64{"completion": math.MaxInt64},
		},
		{
			// 10^12 × 15,000,000 pico = 1.5e19 pico: above MaxInt64, within uint64.
			name:      "10^12 tokens are computed exactly",
			usage:     Usage{OutputTokens: 1_000_000_000_000},
			wantMicro: 15_000_000_000_000,
			wantItems: map[string]int64{"completion": math.MaxInt64},
		},
		{
			name:      "a charge beyond int64 saturates",
			usage:     Usage{OutputTokens: math.MaxInt64, InputTokens: math.MaxInt64},
			markupBps: 10_000,
			wantMicro: math.MaxInt64,
			wantItems: map[string]int64{"completion": math.MaxInt64, "prompt": math.MaxInt64},
		},
		{
			name:      "negative counts cost nothing",
			usage:     Usage{InputTokens: -5, OutputTokens: -1 << 62, Requests: -1},
			wantMicro: 0,
			wantItems: map[string]int64{},
		},
		{
			name:      "an absurd markup does not divide by overflow",
			usage:     Usage{InputTokens: 1},
			markupBps: 1 << 40,
			wantMicro: 329_853_492, // ceil(3e6 × (10^4 + 2^40) / 10^10)
			wantItems: map[string]int64{"prompt": 3_000_000},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compute(prices, tt.usage, tt.markupBps)
			if got.TotalMicros != tt.wantMicro {
				t.Errorf("TotalMicros = %d, want %d", got.TotalMicros, tt.wantMicro)
			}
			if !maps.Equal(got.ItemsPico, tt.wantItems) {
				t.Errorf("ItemsPico = %v, want %v", got.ItemsPico, tt.wantItems)
			}
		})
	}
}

func TestParsePricesRejects(t *testing.T) {
	_, err := ParsePrices(map[string]string{"prompt": "0.1e2", "tokens": "1"})
	if err == nil {
		t.Fatal("want errors for a non-decimal price and an unknown item")
	}
	for _, want := range []string{"prompt", "tokens"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestUSD(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		out  string
	}{
		{"12.50", 12_500_000, "12.500000"},
		{"0.000001", 1, "0.000001"},
		{"-3", -3_000_000, "-3.000000"},
	}
	for _, tt := range tests {
		got, err := ParseUSD(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseUSD(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if s := FormatMicros(got); s != tt.out {
			t.Errorf("FormatMicros(%d) = %q, want %q", got, s, tt.out)
		}
	}
}
