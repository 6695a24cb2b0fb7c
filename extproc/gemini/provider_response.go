package gemini

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
)

// DecodeResponse converts a Gemini provider's generateContent response into the pivot, naming model,
// and reports its usage. Thought parts become ReasoningContent; functionCall parts become
// tool_calls (ids from the parts, else generated: see callID). A body in Google's error shape
// is returned as the provider's error; a malformed body is an error.
func DecodeResponse(body []byte, model string) (*openai.ChatCompletion, billing.Usage, error) {
	var resp struct {
		GenerateContentResponse
		Error *googleError `json:"error"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, billing.Usage{}, fmt.Errorf("decode gemini response: %w", err)
	}
	if resp.Error != nil {
		return nil, billing.Usage{}, streamError(body, resp.Error)
	}
	r := &resp.GenerateContentResponse
	msg := openai.ResponseMessage{Role: "assistant"}
	finish := blockFinish(r.PromptFeedback)
	if len(r.Candidates) > 0 {
		cand := &r.Candidates[0]
		var text, thought strings.Builder
		if cand.Content != nil {
			for _, p := range cand.Content.Parts {
				switch {
				case p.FunctionCall != nil:
					msg.ToolCalls = append(msg.ToolCalls, openai.ToolCall{
						ID:       callID(p.FunctionCall.ID, r.ResponseID, len(msg.ToolCalls)),
						Type:     "function",
						Function: openai.FunctionCall{Name: p.FunctionCall.Name, Arguments: compactOr(p.FunctionCall.Args, "{}")},
					})
				case p.Text != nil && p.Thought:
					thought.WriteString(*p.Text)
				case p.Text != nil:
					text.WriteString(*p.Text)
				}
			}
		}
		msg.ReasoningContent = thought.String()
		if text.Len() > 0 || len(msg.ToolCalls) == 0 {
			msg.Content = ptr(text.String())
		}
		finish = pivotFinish(cand.FinishReason, len(msg.ToolCalls) > 0)
	} else {
		msg.Content = ptr("")
	}
	c := &openai.ChatCompletion{
		ID:      completionID(r.ResponseID),
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   model,
		Choices: []openai.Choice{{Message: msg, FinishReason: finish, Logprobs: json.RawMessage("null")}},
	}
	var bu billing.Usage
	if r.UsageMetadata != nil {
		u, b := usages(*r.UsageMetadata)
		c.Usage, bu = &u, b
	}
	return c, bu, nil
}

// callID names a function call for the pivot. Gemini's own id wins; otherwise the id is built
// from the response id, so calls of different turns never share an id (the pivot matches tool
// results to calls by id, across the whole conversation).
func callID(id, responseID string, n int) string {
	if id != "" {
		return id
	}
	clean := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return -1
	}, responseID)
	if clean == "" {
		return fmt.Sprintf("call_%d", n)
	}
	return fmt.Sprintf("call_%s_%d", clean, n)
}

func completionID(responseID string) string {
	if responseID == "" {
		return "chatcmpl-gemini"
	}
	return "chatcmpl-" + responseID
}

// googleError is the error object of a Gemini error body.
type googleError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Status  string `json:"status"`
	Details []struct {
		Reason string `json:"reason"`
	} `json:"details"`
}

// parseGoogleError reads {"error":{…}}, or the one-element array a non-SSE stream fails with.
func parseGoogleError(body []byte) *googleError {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		var arr []json.RawMessage
		if json.Unmarshal(body, &arr) != nil || len(arr) == 0 {
			return nil
		}
		body = arr[0]
	}
	var b struct {
		Error *googleError `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil {
		return nil
	}
	return b.Error
}

// ProviderError turns an error response from a Gemini provider into the gateway's error. A body
// in Google's shape is the provider's own answer. Where the refusal concerns the operator's
// account rather than the request (401, 403, an invalid API key — which Gemini reports as 400 —
// and FAILED_PRECONDITION, Gemini's "set up billing" and "location not supported") it becomes a
// 502 that reveals nothing of the operator's key; otherwise apierror.FromProvider decides what
// of it the client may see: the redacted message of a 400, 404 or 422, the gateway's own words
// for 429, 5xx and the rest. Anything else is Envoy's local reply and is reported by status.
func ProviderError(status int, body []byte) *apierror.Error {
	g := parseGoogleError(body)
	if g == nil {
		return apierror.FromStatus(status)
	}
	if operatorProblem(status, g) {
		return apierror.New(http.StatusBadGateway, apierror.CodeProviderError, "The upstream provider refused the gateway's credentials")
	}
	return apierror.FromProvider(status, g.Message, "")
}

func operatorProblem(status int, g *googleError) bool {
	if status == http.StatusUnauthorized || status == http.StatusForbidden ||
		g.Status == "UNAUTHENTICATED" || g.Status == "PERMISSION_DENIED" || g.Status == "FAILED_PRECONDITION" {
		return true
	}
	for _, d := range g.Details {
		if strings.HasPrefix(d.Reason, "API_KEY_") {
			return true
		}
	}
	return strings.Contains(g.Message, "API key")
}

// streamError is the gateway's error for an error object met inside a provider's stream, where
// the HTTP status was already 200: the object's own code stands in for it.
func streamError(data []byte, g *googleError) *apierror.Error {
	status := g.Code
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	return ProviderError(status, data)
}

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
