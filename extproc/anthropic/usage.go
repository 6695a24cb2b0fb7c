package anthropic

import (
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
)

// usageCounts accumulates Anthropic usage. A stream reports it in message_start and again,
// cumulatively, in message_delta; a field a later report leaves out keeps its earlier value.
type usageCounts struct {
	seen bool
	// final is set by message_delta: message_start's output_tokens is a placeholder (often 1),
	// and only message_delta carries the real count.
	final      bool
	input      int64
	cacheRead  int64
	cacheWrite int64 // cache_creation_input_tokens: every TTL
	cache5m    int64
	cache1h    int64
	breakdown  bool // cache_creation split by TTL was reported
	output     int64
}

func (c *usageCounts) apply(u *Usage) {
	if u == nil {
		return
	}
	c.seen = true
	set := func(dst *int64, v *int64) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.input, u.InputTokens)
	set(&c.cacheRead, u.CacheReadInputTokens)
	set(&c.cacheWrite, u.CacheCreationInputTokens)
	set(&c.output, u.OutputTokens)
	if cc := u.CacheCreation; cc != nil {
		c.breakdown = true
		set(&c.cache5m, cc.Ephemeral5mInputTokens)
		set(&c.cache1h, cc.Ephemeral1hInputTokens)
	}
}

// openAI expresses the counts in OpenAI's overlapping form: prompt_tokens covers every input
// token, cached or not, and cached_tokens is the part read from the cache. OpenAI has no count
// for cache writes; they are inside prompt_tokens.
func (c *usageCounts) openAI() openai.Usage {
	prompt := c.input + c.cacheRead + c.cacheWrite
	return openai.Usage{
		PromptTokens:        prompt,
		CompletionTokens:    c.output,
		TotalTokens:         prompt + c.output,
		PromptTokensDetails: &openai.PromptTokensDetails{CachedTokens: c.cacheRead},
	}
}

// billing expresses the counts as billing's disjoint items. Cache writes are priced by TTL:
// with a breakdown, the 1-hour part is CacheWrite1HTokens and the rest of the total the
// 5-minute part (the total, not the 5-minute field, so that no written token goes unbilled
// should the two disagree); without one, every write is a 5-minute write, the API's default.
// Anthropic's output_tokens include thinking, which it does not count apart.
func (c *usageCounts) billing() billing.Usage {
	u := billing.Usage{InputTokens: c.input, CacheReadTokens: c.cacheRead, CacheWriteTokens: c.cacheWrite, OutputTokens: c.output}
	if c.breakdown {
		u.CacheWrite1HTokens = c.cache1h
		u.CacheWriteTokens = max(c.cache5m, c.cacheWrite-c.cache1h)
	}
	return u
}
