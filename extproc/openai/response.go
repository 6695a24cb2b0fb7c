package openai

import (
	"encoding/json"
	"fmt"
)

// Result is what the gateway learns from a provider's answer.
type Result struct {
	Usage        Usage
	HasUsage     bool
	FinishReason string
}

// RewriteResponse takes a non-streaming chat completion from an OpenAI-kind provider, puts the
// canonical model id in "model", and reports its usage. Every other field passes unchanged.
func RewriteResponse(body []byte, model string) ([]byte, Result, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, Result{}, fmt.Errorf("decode openai response: %w", errOrNull(err))
	}
	res, err := inspect(fields)
	if err != nil {
		return nil, Result{}, err
	}
	fields["model"], _ = json.Marshal(model)
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, Result{}, fmt.Errorf("encode openai response: %w", err)
	}
	return out, res, nil
}

// inspect reads usage and the first choice's finish reason from a response or chunk.
func inspect(fields map[string]json.RawMessage) (Result, error) {
	var res Result
	if raw, ok := fields["usage"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &res.Usage); err != nil {
			return res, fmt.Errorf("decode openai usage: %w", err)
		}
		res.HasUsage = true
	}
	if raw, ok := fields["choices"]; ok && !isNull(raw) {
		var choices []struct {
			FinishReason *string `json:"finish_reason"`
		}
		if err := json.Unmarshal(raw, &choices); err != nil {
			return res, fmt.Errorf("decode openai choices: %w", err)
		}
		for _, c := range choices {
			if c.FinishReason != nil {
				res.FinishReason = *c.FinishReason
			}
		}
	}
	return res, nil
}

func errOrNull(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("body is null")
}
