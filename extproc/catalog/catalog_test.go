package catalog

import (
	"errors"
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestLoad(t *testing.T) {
	c, err := Load("testdata/catalog.yaml", env(map[string]string{"ANTHROPIC_EU_API_KEY": "sk-eu"}))
	if err != nil {
		t.Fatal(err)
	}
	eu, ok := c.Provider("anthropic-eu")
	if !ok {
		t.Fatal("provider anthropic-eu missing")
	}
	if eu.Host() != "eu.example-anthropic-host" || eu.Port() != 8443 || !eu.TLS() || eu.PathPrefix() != "/prefix" {
		t.Errorf("base url parsed as host %q port %d tls %v path %q", eu.Host(), eu.Port(), eu.TLS(), eu.PathPrefix())
	}
	if eu.APIKey() != "sk-eu" {
		t.Errorf("api key not read from its env var")
	}
	gpt, _ := c.Lookup("gpt-5.4")
	if gpt.Lifecycle != LifecycleAvailable || gpt.Backends[0].UpstreamModel != "gpt-5.4" || !gpt.Supports(EndpointChatCompletions) {
		t.Errorf("defaults not applied: %+v", gpt)
	}
	if got := c.LimitsFor(gpt); got.RPM != 60 {
		t.Errorf("LimitsFor(gpt-5.4).RPM = %d, want the default 60", got.RPM)
	}
	if got := gpt.Prices()["prompt"]; got != 1_250_000 {
		t.Errorf("prompt price = %d pico/token, want 1250000", got)
	}
}

func TestResolve(t *testing.T) {
	c, err := Load("testdata/catalog.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		requested   string
		wantModel   string
		wantCluster string
		wantBackend string
		wantErr     error
	}{
		{requested: "claude-sonnet-4-6", wantModel: "claude-sonnet-4-6", wantCluster: "model_claude-sonnet-4-6", wantBackend: "anthropic"},
		{requested: "claude-sonnet", wantModel: "claude-sonnet-4-6", wantCluster: "model_claude-sonnet-4-6", wantBackend: "anthropic"},
		{requested: "eu/claude-sonnet", wantModel: "claude-sonnet-4-6", wantCluster: "model_claude-sonnet-4-6_eu", wantBackend: "anthropic-eu"},
		{requested: "eu/gpt-5.4", wantErr: ErrNotAvailable},
		{requested: "gpt-9", wantErr: ErrUnknownModel},
		{requested: "eu/", wantErr: ErrUnknownModel},
	}
	for _, tt := range tests {
		t.Run(tt.requested, func(t *testing.T) {
			r, err := c.Resolve(tt.requested)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if r.Model.ID != tt.wantModel || r.Cluster != tt.wantCluster || r.Backends[0].Provider != tt.wantBackend {
				t.Errorf("got model %s cluster %s backend %s", r.Model.ID, r.Cluster, r.Backends[0].Provider)
			}
			for _, b := range r.Chain {
				if b.ProviderRef().Region != r.Region {
					t.Errorf("backend %s in region %s served a %s request", b.Provider, b.ProviderRef().Region, r.Region)
				}
			}
		})
	}
}

func TestListedIDs(t *testing.T) {
	c, err := Load("testdata/catalog.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range c.ListedIDs() {
		ids = append(ids, m.ID)
	}
	if got, want := strings.Join(ids, ","), "claude-sonnet-4-6,eu/claude-sonnet-4-6,gpt-5.4"; got != want {
		t.Errorf("ListedIDs = %s, want %s", got, want)
	}
}
