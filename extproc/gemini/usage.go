package gemini

import (
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
)

// pivotUsage converts Gemini's counts into OpenAI's overlapping ones: cached tokens are inside
// prompt_tokens (promptTokenCount already includes them), reasoning tokens inside
// completion_tokens (candidatesTokenCount does not include thoughtsTokenCount, so they are
// added). Tool-use prompt tokens (Google Search results and the like) are billed as prompt.
func pivotUsage(m UsageMetadata) openai.Usage {
	prompt := m.PromptTokenCount + m.ToolUsePromptTokenCount
	completion := m.CandidatesTokenCount + m.ThoughtsTokenCount
	u := openai.Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
	if m.CachedContentTokenCount > 0 {
		u.PromptTokensDetails = &openai.PromptTokensDetails{CachedTokens: m.CachedContentTokenCount}
	}
	if m.ThoughtsTokenCount > 0 {
		u.CompletionTokensDetails = &openai.CompletionTokensDetails{ReasoningTokens: m.ThoughtsTokenCount}
	}
	return u
}

// usages returns both views of m: the pivot's and billing's disjoint counts.
func usages(m UsageMetadata) (openai.Usage, billing.Usage) {
	u := pivotUsage(m)
	return u, u.Billing()
}

// usageMetadata is the inverse of pivotUsage, for rendering a pivot answer to a Gemini client.
func usageMetadata(u openai.Usage) *UsageMetadata {
	var cached, reasoning int64
	if u.PromptTokensDetails != nil {
		cached = min(u.PromptTokensDetails.CachedTokens, u.PromptTokens)
	}
	if u.CompletionTokensDetails != nil {
		reasoning = min(u.CompletionTokensDetails.ReasoningTokens, u.CompletionTokens)
	}
	return &UsageMetadata{
		PromptTokenCount:        u.PromptTokens,
		CandidatesTokenCount:    u.CompletionTokens - reasoning,
		TotalTokenCount:         u.PromptTokens + u.CompletionTokens,
		CachedContentTokenCount: cached,
		ThoughtsTokenCount:      reasoning,
	}
}

// pivotFinish maps a Gemini finish reason (or prompt block reason) to OpenAI's. STOP after a
// function call is tool_calls: Gemini has no reason of its own for it. Reasons that mean the
// output was withheld are content_filter; the rest (OTHER, MALFORMED_FUNCTION_CALL, …) end the
// answer like a stop.
func pivotFinish(reason string, calledTools bool) string {
	switch reason {
	case "":
		return ""
	case FinishStop:
		if calledTools {
			return openai.FinishToolCalls
		}
		return openai.FinishStop
	case FinishMaxTokens:
		return openai.FinishLength
	case FinishSafety, "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
		"IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION":
		return openai.FinishContentFilter
	default:
		if calledTools {
			return openai.FinishToolCalls
		}
		return openai.FinishStop
	}
}

// blockFinish maps promptFeedback.blockReason: a blocked prompt gets no candidates.
func blockFinish(fb *PromptFeedback) string {
	if fb == nil || fb.BlockReason == "" {
		return ""
	}
	return openai.FinishContentFilter
}

// geminiFinish maps OpenAI's finish reason to Gemini's.
func geminiFinish(reason string) string {
	switch reason {
	case "":
		return ""
	case openai.FinishStop, openai.FinishToolCalls, "function_call":
		return FinishStop
	case openai.FinishLength:
		return FinishMaxTokens
	case openai.FinishContentFilter:
		return FinishSafety
	default:
		return FinishOther
	}
}
