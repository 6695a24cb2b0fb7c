package openai

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
)

func TestEffortBudgetTable(t *testing.T) {
	tests := []struct {
		effort     string
		budget     int64
		backEffort string // the effort the budget maps back to
	}{
		{EffortNone, 0, EffortNone},
		{EffortMinimal, 1024, EffortLow},
		{EffortLow, 2048, EffortLow},
		{EffortMedium, 8192, EffortMedium},
		{EffortHigh, 24576, EffortHigh},
		{EffortXHigh, 32768, EffortHigh},
	}
	for _, tt := range tests {
		t.Run(tt.effort, func(t *testing.T) {
			b, ok := EffortBudget(tt.effort)
			if !ok || b != tt.budget {
				t.Fatalf("EffortBudget(%q) = %d, %v; want %d", tt.effort, b, ok, tt.budget)
			}
			if got := BudgetEffort(b); got != tt.backEffort {
				t.Errorf("BudgetEffort(%d) = %q, want %q", b, got, tt.backEffort)
			}
		})
	}
	if _, ok := EffortBudget("extreme"); ok {
		t.Error("an unknown effort has a budget")
	}
}

func TestBudgetEffortRanges(t *testing.T) {
	tests := []struct {
		budget int64
		want   string
	}{
		{DynamicBudget, EffortMedium}, {0, EffortNone}, {1, EffortLow}, {1024, EffortLow}, {4095, EffortLow},
		{4096, EffortMedium}, {16383, EffortMedium}, {16384, EffortHigh}, {1 << 20, EffortHigh},
	}
	for _, tt := range tests {
		if got := BudgetEffort(tt.budget); got != tt.want {
			t.Errorf("BudgetEffort(%d) = %q, want %q", tt.budget, got, tt.want)
		}
	}
}

func TestReasoningAccessors(t *testing.T) {
	tests := []struct {
		name       string
		r          *Reasoning
		off        bool
		budget     int64
		budgetOK   bool
		effortWant string
	}{
		{name: "absent", r: nil},
		{name: "effort", r: &Reasoning{Effort: EffortHigh}, budget: 24576, budgetOK: true, effortWant: EffortHigh},
		{name: "effort none", r: &Reasoning{Effort: EffortNone}, off: true, budget: 0, budgetOK: true, effortWant: EffortNone},
		{name: "budget", r: &Reasoning{Budget: 5000, HasBudget: true}, budget: 5000, budgetOK: true, effortWant: EffortMedium},
		{name: "budget zero", r: &Reasoning{HasBudget: true}, off: true, budget: 0, budgetOK: true, effortWant: EffortNone},
		{name: "dynamic", r: &Reasoning{Budget: DynamicBudget, HasBudget: true}, budget: DynamicBudget, effortWant: EffortMedium},
		{name: "thoughts only", r: &Reasoning{IncludeThoughts: new(bool)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, ok := tt.r.TokenBudget()
			if tt.r.Off() != tt.off || ok != tt.budgetOK || (ok && b != tt.budget) || tt.r.EffortLevel() != tt.effortWant {
				t.Errorf("off %v budget %d,%v effort %q; want off %v budget %d,%v effort %q",
					tt.r.Off(), b, ok, tt.r.EffortLevel(), tt.off, tt.budget, tt.budgetOK, tt.effortWant)
			}
		})
	}
}

func TestReasoningEffortParsed(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name       string
		body       string
		wantEffort string // in the pivot and in the upstream body; "" for neither
		wantErr    bool
	}{
		{name: "absent", body: `{"model":"m",` + msgs + `}`},
		{name: "null", body: `{"model":"m","reasoning_effort":null,` + msgs + `}`},
		{name: "minimal", body: `{"model":"m","reasoning_effort":"minimal",` + msgs + `}`, wantEffort: "minimal"},
		{name: "none", body: `{"model":"m","reasoning_effort":"none",` + msgs + `}`, wantEffort: "none"},
		{name: "xhigh", body: `{"model":"m","reasoning_effort":"xhigh",` + msgs + `}`, wantEffort: "xhigh"},
		{name: "unknown", body: `{"model":"m","reasoning_effort":"extreme",` + msgs + `}`, wantErr: true},
		{name: "not a string", body: `{"model":"m","reasoning_effort":3,` + msgs + `}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRequest([]byte(tt.body))
			if tt.wantErr {
				var e *apierror.Error
				if !errors.As(err, &e) || e.Param != "reasoning_effort" {
					t.Fatalf("err = %v, want invalid reasoning_effort", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Reasoning.EffortLevel(); got != tt.wantEffort {
				t.Errorf("pivot effort %q, want %q", got, tt.wantEffort)
			}
			body, err := BuildRequest(r, "gpt-up")
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Effort *string `json:"reasoning_effort"`
			}
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
			if (out.Effort == nil) != (tt.wantEffort == "") || (out.Effort != nil && *out.Effort != tt.wantEffort) {
				t.Errorf("upstream reasoning_effort %v, want %q", out.Effort, tt.wantEffort)
			}
		})
	}
}
