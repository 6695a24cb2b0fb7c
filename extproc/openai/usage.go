package openai

import "github.com/tollgate/tollgate/extproc/billing"

// Usage is the OpenAI usage object.
type Usage struct {
	PromptTokens            int64                    `json:"prompt_tokens"`
	CompletionTokens        int64                    `json:"completion_tokens"`
	TotalTokens             int64                    `json:"total_tokens"`
	PromptTokensDetails     *PromptTokensDetails     `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *CompletionTokensDetails `json:"completion_tokens_details,omitempty"`
}

// PromptTokensDetails breaks prompt tokens down.
type PromptTokensDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

// CompletionTokensDetails breaks completion tokens down.
type CompletionTokensDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

// Billing converts OpenAI's overlapping counts (cached tokens are inside prompt_tokens,
// reasoning tokens inside completion_tokens) into billing's disjoint ones.
func (u Usage) Billing() billing.Usage {
	var cached, reasoning int64
	if u.PromptTokensDetails != nil {
		cached = min(u.PromptTokensDetails.CachedTokens, u.PromptTokens)
	}
	if u.CompletionTokensDetails != nil {
		reasoning = min(u.CompletionTokensDetails.ReasoningTokens, u.CompletionTokens)
	}
	return billing.Usage{
		InputTokens:     u.PromptTokens - cached,
		CacheReadTokens: cached,
		OutputTokens:    u.CompletionTokens - reasoning,
		ReasoningTokens: reasoning,
	}
}
