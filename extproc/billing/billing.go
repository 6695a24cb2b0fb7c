// Package billing turns token counts and catalog prices into money.
//
// Money is integer. Catalog prices are exact decimals in USD per million tokens (or per unit for
// request, image and web_search) and are held as pico-USD per token (per unit), so every price
// with up to six decimal places is exact. A request's cost is summed exactly in pico-USD, the
// organisation's markup is applied once to that sum, and the result is rounded UP to whole
// micro-USD — the one rounding step, at most 1 µUSD per request, in the operator's favour.
package billing

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"sort"
	"strconv"
	"strings"
)

// Billing items (docs/design.md section 6; seed 003's billing items).
const (
	ItemPrompt              = "prompt"
	ItemCompletion          = "completion"
	ItemInputCacheRead      = "input_cache_read"
	ItemInputCacheWrite     = "input_cache_write"
	ItemInputCacheWrite5Min = "input_cache_write_5_min"
	ItemInputCacheWrite1H   = "input_cache_write_1_h"
	ItemInternalReasoning   = "internal_reasoning"
	ItemRequest             = "request"
	ItemImage               = "image"
	ItemWebSearch           = "web_search"
)

// perUnit lists the items priced per unit rather than per million tokens.
var perUnit = map[string]bool{ItemRequest: true, ItemImage: true, ItemWebSearch: true}

// Prices maps a billing item to its price in pico-USD per token (or per unit).
type Prices map[string]int64

const (
	picoPerMicro = 1_000_000
	maxDecimals  = 6
)

// ParsePrices parses a catalog pricing block. Every problem is reported.
func ParsePrices(raw map[string]string) (Prices, error) {
	p := make(Prices, len(raw))
	var errs []error
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, item := range keys {
		switch item {
		case ItemPrompt, ItemCompletion, ItemInputCacheRead, ItemInputCacheWrite, ItemInputCacheWrite5Min,
			ItemInputCacheWrite1H, ItemInternalReasoning, ItemRequest, ItemImage, ItemWebSearch:
		default:
			errs = append(errs, fmt.Errorf("%s: unknown billing item", item))
			continue
		}
		// USD per million tokens is pico-USD per token: scale 1e6. USD per unit: scale 1e12.
		scale := int64(1_000_000)
		if perUnit[item] {
			scale = 1_000_000_000_000
		}
		v, err := parseDecimal(raw[item], scale)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", item, err))
			continue
		}
		p[item] = v
	}
	return p, errors.Join(errs...)
}

// parseDecimal parses a non-negative decimal string exactly into value×scale, where scale is a
// power of ten of at least 10^maxDecimals.
func parseDecimal(s string, scale int64) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(frac) > maxDecimals || strings.Trim(whole, "0123456789") != "" ||
		strings.Trim(frac, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not an exact decimal with at most %d places", s, maxDecimals)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > (1<<62)/scale {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	v := w * scale
	unit := scale
	for _, d := range frac {
		unit /= 10
		v += int64(d-'0') * unit
	}
	return v, nil
}

// Usage is what one request consumed, in disjoint counts: a token is in exactly one field.
type Usage struct {
	InputTokens        int64 // uncached prompt tokens
	CacheReadTokens    int64
	CacheWriteTokens   int64 // written to a 5-minute (default) cache
	CacheWrite1HTokens int64
	OutputTokens       int64 // completion tokens other than reasoning
	ReasoningTokens    int64
	Requests           int64
	Images             int64
	WebSearches        int64
}

// Cost is the price of one request.
type Cost struct {
	// ItemsPico is the exact cost of each billing item before markup, in pico-USD.
	ItemsPico map[string]int64
	// TotalMicros is the amount charged: Σ items, with markup, rounded up to micro-USD.
	TotalMicros int64
}

// ItemsMicros returns each item's cost rounded half-up to micro-USD, for reporting only; the
// charge is TotalMicros, computed from the exact sum.
func (c Cost) ItemsMicros() map[string]int64 {
	out := make(map[string]int64, len(c.ItemsPico))
	for k, v := range c.ItemsPico {
		out[k] = (v + picoPerMicro/2) / picoPerMicro
	}
	return out
}

// Compute prices u with p and applies markupBps (basis points, 250 = 2.5%). An item without its
// own price falls back: cache reads and writes to the prompt price, reasoning to the completion
// price, the 1-hour cache write to the 5-minute one.
func Compute(p Prices, u Usage, markupBps int64) Cost {
	price := func(item string, fallbacks ...string) int64 {
		if v, ok := p[item]; ok {
			return v
		}
		for _, f := range fallbacks {
			if v, ok := p[f]; ok {
				return v
			}
		}
		return 0
	}
	lines := []struct {
		item  string
		count int64
		price int64
	}{
		{ItemPrompt, u.InputTokens, price(ItemPrompt)},
		{ItemInputCacheRead, u.CacheReadTokens, price(ItemInputCacheRead, ItemPrompt)},
		{ItemInputCacheWrite5Min, u.CacheWriteTokens, price(ItemInputCacheWrite5Min, ItemInputCacheWrite, ItemPrompt)},
		{ItemInputCacheWrite1H, u.CacheWrite1HTokens, price(ItemInputCacheWrite1H, ItemInputCacheWrite5Min, ItemInputCacheWrite, ItemPrompt)},
		{ItemCompletion, u.OutputTokens, price(ItemCompletion)},
		{ItemInternalReasoning, u.ReasoningTokens, price(ItemInternalReasoning, ItemCompletion)},
		{ItemRequest, u.Requests, price(ItemRequest)},
		{ItemImage, u.Images, price(ItemImage)},
		{ItemWebSearch, u.WebSearches, price(ItemWebSearch)},
	}
	c := Cost{ItemsPico: make(map[string]int64, len(lines))}
	// The sum is kept in 128 bits (hi, lo): a provider-reported count of 2^58 tokens times a
	// price in pico-USD does not fit in 64, and a wrapped product once charged 30 µUSD for it.
	var hi, lo uint64
	for _, l := range lines {
		if l.count <= 0 || l.price <= 0 {
			continue
		}
		ph, pl := bits.Mul64(uint64(l.count), uint64(l.price))
		c.ItemsPico[l.item] = saturate(ph, pl)
		var carry uint64
		lo, carry = bits.Add64(lo, pl, 0)
		hi, carry = bits.Add64(hi, ph, carry)
		if carry != 0 {
			hi, lo = math.MaxUint64, math.MaxUint64
		}
	}
	c.TotalMicros = applyMarkupCeilMicros(hi, lo, uint64(10_000+max(markupBps, 0)))
	return c
}

// saturate returns the 128-bit value hi:lo as an int64, or math.MaxInt64 if it does not fit.
func saturate(hi, lo uint64) int64 {
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo)
}

// applyMarkupCeilMicros returns ceil(pico × factor / 10_000 / 10^6), where pico is the 128-bit
// value hi:lo, saturated at math.MaxInt64: a charge that large is refused by every hold and
// capped at the hold by every settlement, so saturating loses nothing that could be charged.
func applyMarkupCeilMicros(hi, lo, factor uint64) int64 {
	const div = 10_000 * picoPerMicro
	if hi == 0 && factor < div {
		// The common case: one 64×64 product and one 128/64 division.
		ph, pl := bits.Mul64(lo, factor)
		q, r := bits.Div64(ph, pl, div) // ph < factor < div, so the quotient fits
		if r != 0 {
			q++
		}
		return saturate(0, q)
	}
	n := new(big.Int).Lsh(new(big.Int).SetUint64(hi), 64)
	n.Or(n, new(big.Int).SetUint64(lo))
	n.Mul(n, new(big.Int).SetUint64(factor))
	q, r := n.QuoRem(n, big.NewInt(div), new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return math.MaxInt64
	}
	return q.Int64()
}

// FormatMicros renders micro-USD as a decimal USD string with six places ("12.500000").
func FormatMicros(m int64) string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	return fmt.Sprintf("%s%d.%06d", sign, m/picoPerMicro, m%picoPerMicro)
}

// ParseUSD parses a decimal USD amount ("12.50") into micro-USD exactly.
func ParseUSD(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	v, err := parseDecimal(strings.TrimPrefix(s, "-"), picoPerMicro)
	if err != nil {
		return 0, err
	}
	if neg {
		v = -v
	}
	return v, nil
}
