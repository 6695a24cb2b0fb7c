package openai

import (
	"encoding/json"
	"strings"

	"github.com/tollgate/tollgate/extproc/apierror"
)

// Reasoning is a request's reasoning control in the pivot, whichever protocol it came in:
// OpenAI's reasoning_effort, Anthropic's thinking, Gemini's generationConfig.thinkingConfig. A
// nil *Reasoning means the client said nothing, and each provider keeps its own default.
//
// Efforts and token budgets map onto each other through one table, so that a control survives
// any pair of protocols:
//
//	effort   budget (tokens)   budget → effort
//	none     0 (off)           0
//	minimal  1,024             (not produced: only some OpenAI models accept it)
//	low      2,048             1 – 4,095
//	medium   8,192             4,096 – 16,383, and Gemini's dynamic budget (-1)
//	high     24,576            16,384 and above
//	xhigh    32,768            (not produced: only the newest OpenAI models accept it)
//
// 1,024 is Anthropic's smallest budget; 24,576 is the largest Gemini 2.5 Flash accepts and
// 32,768 the largest of Gemini 2.5 Pro. A budget always travels with the request's output
// limit, which bounds the reasoning too (every provider counts reasoning as output), so the
// credit hold never depends on this table.
type Reasoning struct {
	// Effort is one of the Effort* values, or "" when the client gave only a budget.
	Effort string
	// Budget is the client's own token budget (Anthropic budget_tokens, Gemini
	// thinkingBudget): -1 is Gemini's dynamic thinking, 0 is off. HasBudget says it was given.
	Budget    int64
	HasBudget bool
	// IncludeThoughts is Gemini's includeThoughts: false hides thought parts from a Gemini
	// client. Other protocols always show the reasoning a provider returns.
	IncludeThoughts *bool
}

// Reasoning efforts, OpenAI's reasoning_effort values.
const (
	EffortNone    = "none"
	EffortMinimal = "minimal"
	EffortLow     = "low"
	EffortMedium  = "medium"
	EffortHigh    = "high"
	EffortXHigh   = "xhigh"
)

// DynamicBudget is Gemini's thinkingBudget for "the model decides".
const DynamicBudget = -1

var effortBudgets = map[string]int64{
	EffortNone: 0, EffortMinimal: 1024, EffortLow: 2048, EffortMedium: 8192, EffortHigh: 24576, EffortXHigh: 32768,
}

// EffortBudget is the token budget of a reasoning effort (the table in Reasoning's doc);
// ok is false for an unknown effort.
func EffortBudget(effort string) (int64, bool) {
	b, ok := effortBudgets[effort]
	return b, ok
}

// BudgetEffort is the reasoning effort of a token budget, by the ranges in Reasoning's doc.
func BudgetEffort(budget int64) string {
	switch {
	case budget == 0:
		return EffortNone
	case budget < 0:
		return EffortMedium // dynamic: the provider's default amount of thought
	case budget < 4096:
		return EffortLow
	case budget < 16384:
		return EffortMedium
	}
	return EffortHigh
}

// Off reports whether the client turned reasoning off.
func (r *Reasoning) Off() bool {
	if r == nil {
		return false
	}
	if r.HasBudget {
		return r.Budget == 0
	}
	return r.Effort == EffortNone
}

// TokenBudget is the budget a provider that takes one should get: the client's own budget,
// else its effort's. ok is false when the client asked for none (nil or dynamic).
func (r *Reasoning) TokenBudget() (int64, bool) {
	switch {
	case r == nil:
		return 0, false
	case r.HasBudget:
		return r.Budget, r.Budget >= 0
	}
	return EffortBudget(r.Effort)
}

// EffortLevel is the effort a provider that takes one should get: the client's own effort,
// else its budget's range; "" when the client asked for none.
func (r *Reasoning) EffortLevel() string {
	switch {
	case r == nil:
		return ""
	case r.Effort != "":
		return r.Effort
	case r.HasBudget:
		return BudgetEffort(r.Budget)
	}
	return ""
}

// parseReasoningEffort takes reasoning_effort out of fields into r.Reasoning. Unknown values
// are refused here: forwarded, the provider would refuse them in words that may name the
// operator's account, and translated, they would have no budget.
func (r *ChatRequest) parseReasoningEffort(fields map[string]json.RawMessage) error {
	var effort *string
	if err := take(fields, "reasoning_effort", &effort); err != nil {
		return err
	}
	if effort == nil {
		return nil
	}
	if _, ok := EffortBudget(*effort); !ok {
		return apierror.InvalidParam("reasoning_effort", "Parameter reasoning_effort must be one of %s", strings.Join(effortNames, ", "))
	}
	r.Reasoning = &Reasoning{Effort: *effort}
	return nil
}

var effortNames = []string{EffortNone, EffortMinimal, EffortLow, EffortMedium, EffortHigh, EffortXHigh}
