package catalog

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestParseInvalid loads one fixture per mistake and wants the exact report, so a change in a
// line number or a field path is as visible as a missing check.
func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string // testdata/invalid/<name>.yaml
		want []string
	}{
		{"unknown_key_top", []string{
			`unknown_key_top.yaml:6: modles: unknown key (known: providers, models, defaults)`}},
		{"unknown_key_model", []string{
			`unknown_key_model.yaml:7: models[0].contxt: unknown key (known: id, aliases, owned_by, lifecycle, tier, endpoints, max_output_tokens, part_input_tokens, backends, pricing, fallbacks, limits, replacement, sunset, allowed_params)`}},
		{"unknown_provider", []string{
			`unknown_provider.yaml:9: models[0].backends[1].provider: unknown provider "azure"`}},
		{"duplicate_id", []string{
			`duplicate_id.yaml:6: models[1].id: "gpt" is already used by model gpt at line 5`}},
		{"duplicate_alias", []string{
			`duplicate_alias.yaml:10: models[1].aliases[1]: "gpt-latest" is already used by model gpt at line 6`}},
		{"duplicate_provider", []string{
			`duplicate_provider.yaml:3: providers[1].name: provider "openai" is already defined at line 2`}},
		{"duplicate_backend", []string{
			`duplicate_backend.yaml:9: models[0].backends[1]: repeats backends[0] (provider openai, upstream_model gpt-4o)`}},
		{"duplicate_key", []string{
			`duplicate_key.yaml:8: models[0].max_output_tokens: key repeated (first at line 6)`}},
		{"eu_prefix_id", []string{
			`eu_prefix_id.yaml:5: models[0].id: "eu/gpt" must not start with "eu/": the prefix is added per request for EU routing`}},
		{"fallback_unknown", []string{
			`fallback_unknown.yaml:8: models[0].fallbacks[0]: "claude" is not a model`}},
		{"fallback_eu_prefix", []string{
			`fallback_eu_prefix.yaml:5: models[0].fallbacks[0]: "eu/mistral": a fallback is followed in the region of the request; name it without "eu/"`}},
		{"fallback_alias", []string{
			`fallback_alias.yaml:5: models[0].fallbacks[0]: "mistral-latest" is an alias; name the model id mistral`}},
		{"fallback_self", []string{
			`fallback_self.yaml:10: models[0].fallbacks[0]: model gpt falls back to itself`}},
		{"fallback_duplicate", []string{
			`fallback_duplicate.yaml:5: models[0].fallbacks[1]: "b" is already listed as fallbacks[0]`}},
		{"fallback_cycle", []string{
			`fallback_cycle.yaml:7: models[2].fallbacks[0]: fallback cycle a -> b -> c -> a`}},
		{"price_inexact", []string{
			`price_inexact.yaml:10: models[0].pricing.completion: "1e-3" is not an exact decimal with at most 6 places`,
			`price_inexact.yaml:11: models[0].pricing.input_cache_read: "0.0000001" is not an exact decimal with at most 6 places`}},
		{"price_unknown_item", []string{
			`price_unknown_item.yaml:8: models[0].pricing.completions: unknown billing item`}},
		{"lifecycle", []string{
			`lifecycle.yaml:5: models[0].lifecycle: "RETIRED" is not one of AVAILABLE, PREVIEW, DEPRECATED, SUNSET, UNAVAILABLE`}},
		{"endpoint", []string{
			`endpoint.yaml:6: models[0].endpoints[1]: "responses" is not one of chat_completions, messages, gemini`}},
		{"allowed_params", []string{
			`allowed_params.yaml:7: models[0].allowed_params[1]: "servce_tier" is not a governed parameter (known: service_tier, store, metadata, prediction, output_modalities, prompt_cache_retention, mcp_servers, container, cached_content, labels, web_search, web_fetch, code_execution, google_maps, files, server_tools, inference_geo, speed, provider_fallbacks, anthropic-beta:<value>, field:<name>)`,
			`allowed_params.yaml:7: models[0].allowed_params[2]: "anthropic-beta:" is not a governed parameter (known: service_tier, store, metadata, prediction, output_modalities, prompt_cache_retention, mcp_servers, container, cached_content, labels, web_search, web_fetch, code_execution, google_maps, files, server_tools, inference_geo, speed, provider_fallbacks, anthropic-beta:<value>, field:<name>)`}},
		{"tier", []string{
			`tier.yaml:5: models[0].tier: "gold" is not premium or base`}},
		{"kind", []string{
			`kind.yaml:3: providers[0].kind: "bedrock" is not one of openai, anthropic, gemini, openai-compatible`}},
		{"region", []string{
			`region.yaml:5: providers[0].region: "us" is not global or eu`}},
		{"base_url", []string{
			`base_url.yaml:2: providers[0].base_url: "ftp://api.openai.com": scheme must be http or https`,
			`base_url.yaml:3: providers[1].base_url: is required`}},
		{"replacement_unknown", []string{
			`replacement_unknown.yaml:5: models[0].replacement: "gpt-5" is not a model`}},
		{"replacement_eu_no_backend", []string{
			`replacement_eu_no_backend.yaml:5: models[0].replacement: "eu/gpt-5" names an EU model, but gpt-5 has no eu backend`}},
		{"part_input_tokens", []string{
			`part_input_tokens.yaml:6: models[0].part_input_tokens.image: must be between 0 (the default) and 10000000`,
			`part_input_tokens.yaml:6: models[0].part_input_tokens.document: must be between 0 (the default) and 10000000`}},
		{"sunset", []string{
			`sunset.yaml:5: models[0].sunset: "next spring" is not a date (2006-01-02) or an RFC 3339 time`}},
		{"type_mismatch", []string{
			// Not also "must be positive": a value that did not decode is reported once.
			`type_mismatch.yaml:6: models[0].max_output_tokens: "lots" is not an integer`,
			`type_mismatch.yaml:7: models[0].backends[0].weight: "-1" is not a non-negative integer up to 4294967295`,
			`type_mismatch.yaml:8: models[0].aliases: want a list, got "gpt-latest"`}},
		{"missing_fields", []string{
			// A missing key points at its model's mapping.
			`missing_fields.yaml:5: models[0].max_output_tokens: must be positive`,
			`missing_fields.yaml:5: models[0].backends: at least one backend is required`}},
		{"syntax", []string{
			// The YAML parser names the line where the broken block starts.
			`syntax.yaml:4: (document): did not find expected '-' indicator`}},
		{"empty", []string{
			`empty.yaml:1: (document): the file is empty`}},
		{"two_documents", []string{
			`two_documents.yaml:6: (document): only one YAML document is allowed`}},
		{"many", []string{
			`many.yaml:2: providers[0].region: "emea" is not global or eu`,
			`many.yaml:5: models[0].lifecycle: "available" is not one of AVAILABLE, PREVIEW, DEPRECATED, SUNSET, UNAVAILABLE`,
			`many.yaml:6: models[0].max_output_tokens: must be positive`,
			`many.yaml:7: models[0].backends[0].provider: unknown provider "opneai"`,
			`many.yaml:8: models[0].pricing.prompt: "$1" is not an exact decimal with at most 6 places`,
			`many.yaml:9: models[0].fallbacks[0]: model gpt falls back to itself`,
			`many.yaml:10: models[0].replacement: "claude" is not a model`,
			`many.yaml:11: models[1].colour: unknown key (known: id, aliases, owned_by, lifecycle, tier, endpoints, max_output_tokens, part_input_tokens, backends, pricing, fallbacks, limits, replacement, sunset, allowed_params)`,
			`many.yaml:11: models[1].id: "gpt" is already used by model gpt at line 4`}},
	}
	seen := make(map[string]bool)
	for _, tt := range tests {
		seen[tt.name+".yaml"] = true
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", "invalid", tt.name+".yaml"), env(nil))
			if err == nil {
				t.Fatalf("Load succeeded with %d models, want an error", len(c.Models))
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, "testdata/invalid/"+w)
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
			}
			var p Problem
			if !errors.As(err, &p) || p.File == "" || p.Line == 0 {
				t.Errorf("error does not carry a located Problem: %#v", p)
			}
		})
	}
	// Every fixture must be in the table, or a new one would silently test nothing.
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("fixture %s has no entry in the table", f)
		}
	}
}

func TestWarnings(t *testing.T) {
	c, err := Load("testdata/warnings.yaml", env(map[string]string{"OPENAI_API_KEY": "sk-test"}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings() {
		got = append(got, w.Error())
	}
	want := []string{
		"testdata/warnings.yaml:4: providers[1].api_key_env: MISTRAL_API_KEY is not set; requests to provider mistral-eu will carry no credential",
		"testdata/warnings.yaml:9: models[0].fallbacks[1]: gpt-4 is SUNSET; its backends are skipped",
		"testdata/warnings.yaml:11: models[2].replacement: \"gpt-3\" is itself UNAVAILABLE",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// TestParseConfigs keeps the catalogs shipped in the repository valid under every new check.
func TestParseConfigs(t *testing.T) {
	for _, f := range []string{"../../config/dev.yaml", "../../config/catalog.example.yaml", "../testdata/catalog.yaml", "testdata/catalog.yaml"} {
		t.Run(f, func(t *testing.T) {
			if _, err := Load(f, env(nil)); err != nil {
				t.Error(err)
			}
		})
	}
}
