package bootstrap

import (
	"testing"

	"github.com/tollgate/tollgate/extproc/catalog"
)

// TestFromCatalogFallbackLevels: a model cluster has one priority level per model of its chain, holding that model's backends with their weights, and never a backend of another
// region.
func TestFromCatalogFallbackLevels(t *testing.T) {
	cat, err := catalog.Parse("levels.yaml", []byte(`
providers:
  - {name: openai, kind: openai, base_url: "https://api.openai.com"}
  - {name: azure, kind: openai-compatible, base_url: "https://azure.example"}
  - {name: anthropic, kind: anthropic, base_url: "https://api.anthropic.com"}
  - {name: anthropic-eu, kind: anthropic, base_url: "https://eu.anthropic.example", region: eu}
models:
  - id: gpt
    max_output_tokens: 10
    backends: [{provider: openai, weight: 3}, {provider: azure, upstream_model: gpt-prod, weight: 1}]
    fallbacks: [claude]
  - id: claude
    max_output_tokens: 10
    backends: [{provider: anthropic}, {provider: anthropic-eu}]
`), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	p, err := FromCatalog(cat, "0.0.0.0:8080", "127.0.0.1:50051")
	if err != nil {
		t.Fatal(err)
	}
	var gpt *Cluster
	for i := range p.Clusters {
		if p.Clusters[i].Name == "model_gpt" {
			gpt = &p.Clusters[i]
		}
	}
	if gpt == nil {
		t.Fatal("no model_gpt cluster")
	}
	type ep struct {
		backend string
		weight  uint32
	}
	want := [][]ep{{{"openai/gpt", 3}, {"azure/gpt-prod", 1}}, {{"anthropic/claude", 1}}}
	if len(gpt.Priorities) != len(want) {
		t.Fatalf("levels = %+v, want %d", gpt.Priorities, len(want))
	}
	for i, level := range want {
		if len(gpt.Priorities[i]) != len(level) {
			t.Fatalf("level %d = %+v, want %+v", i, gpt.Priorities[i], level)
		}
		for j, e := range level {
			got := gpt.Priorities[i][j]
			if got.Backend != e.backend || got.Weight != e.weight {
				t.Errorf("level %d endpoint %d = %s weight %d, want %s weight %d", i, j, got.Backend, got.Weight, e.backend, e.weight)
			}
		}
	}
}
