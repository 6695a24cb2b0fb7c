package params_test

import (
	"testing"

	"github.com/tollgate/tollgate/extproc/params"
)

func TestKnown(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{params.ServiceTier, true},
		{params.Files, true},
		{"anthropic-beta:context-1m-2025-08-07", true},
		{"anthropic-beta:", false},
		{"anthropic-beta:a,b", false},
		{"field:repetition_penalty", true},
		{"field:", false},
		{"field:a.b", false},
		{"service-tier", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := params.Known(tt.name); got != tt.want {
			t.Errorf("Known(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
	for _, n := range params.Names() {
		if n != params.BetaPrefix+"<value>" && n != params.FieldPrefix+"<name>" && !params.Known(n) {
			t.Errorf("Names lists %q, which Known refuses", n)
		}
	}
}

func TestCheck(t *testing.T) {
	uses := []params.Use{{Name: params.ServiceTier, Param: "service_tier"}, {Name: params.Store, Param: "store"}}
	if err := params.Check(uses, params.Allowed{params.ServiceTier, params.Store}, "m"); err != nil {
		t.Errorf("all allowed: %v", err)
	}
	if err := params.Check(nil, nil, "m"); err != nil {
		t.Errorf("nothing used: %v", err)
	}
	err := params.Check(uses, params.Allowed{params.ServiceTier}, "gpt")
	if err == nil || err.Status != 400 || err.Code != "invalid_params" || err.Param != "store" {
		t.Fatalf("store not allowed: %+v", err)
	}
	if want := `Parameter store is not supported for model gpt on this gateway (it changes billing or data handling; the operator can allow "store" for the model)`; err.Message != want {
		t.Errorf("message %q, want %q", err.Message, want)
	}
}
