package openai

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
)

// DecodeResponse reads an OpenAI-kind provider's non-streaming response into the pivot, naming
// model, and returns its usage for billing.
func DecodeResponse(body []byte, model string) (*ChatCompletion, billing.Usage, error) {
	var c ChatCompletion
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, billing.Usage{}, fmt.Errorf("decode openai response: %w", err)
	}
	if len(c.Choices) == 0 {
		return nil, billing.Usage{}, fmt.Errorf("decode openai response: no choices")
	}
	c.Model = model
	var u billing.Usage
	if c.Usage != nil {
		u = c.Usage.Billing()
	}
	return &c, u, nil
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

// safetyCodes are the error codes with which OpenAI and Azure OpenAI refuse a request's content:
// content_policy_violation (images), content_filter (Azure's content filtering), and
// invalid_prompt, which reasoning models return for a prompt "flagged as potentially violating
// our usage policy".
var safetyCodes = map[string]bool{"content_policy_violation": true, "content_filter": true, "invalid_prompt": true}

// ProviderError turns an error response that came back from an OpenAI-kind upstream into the
// gateway's error. A body in OpenAI's error shape ({"error":{"message","type","param","code"}},
// or the flat {"object":"error","message",…} of vLLM and Mistral) is the provider's own answer:
// a content-policy refusal becomes 403 safety_check_failed, and otherwise apierror.FromProvider
// decides what of it the client may see (the redacted message of a 400, 404 or 422; the
// gateway's own words for the rest). Anything else is Envoy's local reply (503 when no upstream
// could be reached, 504 on timeout) and is reported by status.
func ProviderError(status int, body []byte) *apierror.Error {
	var b struct {
		Error *struct {
			Message string          `json:"message"`
			Param   string          `json:"param"`
			Code    json.RawMessage `json:"code"`
		} `json:"error"`
		Object  string `json:"object"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &b) != nil {
		return apierror.FromStatus(status)
	}
	switch {
	case b.Error != nil:
		var code string
		_ = json.Unmarshal(b.Error.Code, &code) // some compatible hosts send a number
		switch {
		case safetyCodes[code] && status >= 400 && status < 500 && status != 429:
			return apierror.SafetyRefusal(b.Error.Message)
		case code == "insufficient_quota":
			// OpenAI's 429 for an account out of credit: the operator's problem, which no retry
			// by the client will fix.
			return apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider refused the gateway's account")
		}
		return apierror.FromProvider(status, b.Error.Message, b.Error.Param)
	case b.Object == "error":
		return apierror.FromProvider(status, b.Message, "")
	}
	return apierror.FromStatus(status)
}
