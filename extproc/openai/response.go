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
	// ContentBytes counts the bytes of the choices' text, reasoning, refusal and tool-call
	// arguments (message or delta), from which an answer without usage is estimated.
	ContentBytes int64
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
		// Usage that does not decode (counts written 1e12, or as strings) is no usage: the
		// answer still reaches the client, and the gateway estimates what it cost.
		var u Usage
		if json.Unmarshal(raw, &u) == nil {
			res.Usage, res.HasUsage = u, true
		}
	}
	if raw, ok := fields["choices"]; ok && !isNull(raw) {
		type body struct {
			Content          textLen `json:"content"`
			ReasoningContent textLen `json:"reasoning_content"`
			Refusal          textLen `json:"refusal"`
			ToolCalls        []struct {
				Function struct {
					Name      textLen `json:"name"`
					Arguments textLen `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		}
		var choices []struct {
			FinishReason *string `json:"finish_reason"`
			Message      body    `json:"message"`
			Delta        body    `json:"delta"`
		}
		if err := json.Unmarshal(raw, &choices); err != nil {
			return res, fmt.Errorf("decode openai choices: %w", err)
		}
		for _, c := range choices {
			if c.FinishReason != nil {
				res.FinishReason = *c.FinishReason
			}
			for _, b := range []*body{&c.Message, &c.Delta} {
				res.ContentBytes += int64(b.Content + b.ReasoningContent + b.Refusal)
				for _, tc := range b.ToolCalls {
					res.ContentBytes += int64(tc.Function.Name + tc.Function.Arguments)
				}
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

// textLen decodes a JSON string as its length in bytes as written, escapes included (an upper
// bound of the text's bytes), without allocating the string: it is read from every streamed
// chunk. null is 0; any other value (some compatible hosts send content as an array of parts)
// counts whole.
type textLen int64

func (n *textLen) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) >= 2 && b[0] == '"':
		*n = textLen(len(b) - 2)
	case string(b) != "null":
		*n = textLen(len(b))
	}
	return nil
}
