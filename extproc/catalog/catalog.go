// Package catalog holds the operator's model catalog: providers, models, prices and limits,
// loaded from one YAML file (DESIGN.md section 5) and queried on every request.
//
// A Catalog is immutable once loaded; reloading builds a new one and swaps a pointer, so readers
// never need a lock.
package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tollgate/tollgate/extproc/billing"
)

// Provider kinds.
const (
	KindOpenAI           = "openai"
	KindAnthropic        = "anthropic"
	KindGemini           = "gemini"
	KindOpenAICompatible = "openai-compatible"
)

// Regions.
const (
	RegionGlobal = "global"
	RegionEU     = "eu"
)

// EUPrefix marks a model id that must be served by EU backends only (seed 000).
const EUPrefix = "eu/"

// Lifecycle states of a model.
const (
	LifecycleAvailable   = "AVAILABLE"
	LifecyclePreview     = "PREVIEW"
	LifecycleDeprecated  = "DEPRECATED"
	LifecycleSunset      = "SUNSET"
	LifecycleUnavailable = "UNAVAILABLE"
)

// Endpoint names a client-facing API a model may be used through.
const (
	EndpointChatCompletions = "chat_completions"
	EndpointMessages        = "messages"
	EndpointGemini          = "gemini"
)

// Provider is one upstream account: where it is, what it speaks, and where its key comes from.
type Provider struct {
	Name    string `yaml:"name"`
	Kind    string `yaml:"kind"`
	BaseURL string `yaml:"base_url"`
	Region  string `yaml:"region"`
	// APIKeyEnv names the environment variable holding the provider's credential. The value is
	// read once at load and never logged.
	APIKeyEnv string `yaml:"api_key_env"`
	// AuthHeader overrides the header the credential travels in (openai-compatible hosts such as
	// Azure use "api-key"). Empty means the kind's default.
	AuthHeader string `yaml:"auth_header"`

	apiKey string
	url    baseURL
}

// APIKey returns the provider's credential as read from its environment variable at load.
func (p *Provider) APIKey() string { return p.apiKey }

// Host, Port, TLS and PathPrefix describe the parsed base URL.
func (p *Provider) Host() string       { return p.url.host }
func (p *Provider) Port() uint32       { return p.url.port }
func (p *Provider) TLS() bool          { return p.url.tls }
func (p *Provider) PathPrefix() string { return p.url.path }

// Backend is one way to serve a model: a provider and the name that provider knows it by.
type Backend struct {
	Provider      string `yaml:"provider"`
	UpstreamModel string `yaml:"upstream_model"`
	Weight        uint32 `yaml:"weight"`

	provider *Provider
}

// ProviderRef returns the resolved provider of the backend.
func (b *Backend) ProviderRef() *Provider { return b.provider }

// Limits are default quotas per organisation for a model.
type Limits struct {
	RPM uint64 `yaml:"rpm"`
	TPM uint64 `yaml:"tpm"`
	TPD uint64 `yaml:"tpd"`
}

// Model is one canonical model id with its aliases, backends, prices and limits.
type Model struct {
	ID              string            `yaml:"id"`
	Aliases         []string          `yaml:"aliases"`
	OwnedBy         string            `yaml:"owned_by"`
	Lifecycle       string            `yaml:"lifecycle"`
	Tier            string            `yaml:"tier"`
	Endpoints       []string          `yaml:"endpoints"`
	MaxOutputTokens int64             `yaml:"max_output_tokens"`
	Backends        []Backend         `yaml:"backends"`
	Pricing         map[string]string `yaml:"pricing"`
	Fallbacks       []string          `yaml:"fallbacks"`
	Limits          *Limits           `yaml:"limits"`
	Replacement     string            `yaml:"replacement"`
	Sunset          string            `yaml:"sunset"`

	prices billing.Prices
}

// Prices returns the model's parsed prices.
func (m *Model) Prices() billing.Prices { return m.prices }

// Supports reports whether the model may be used through endpoint.
func (m *Model) Supports(endpoint string) bool {
	for _, e := range m.Endpoints {
		if e == endpoint {
			return true
		}
	}
	return false
}

// BackendsIn returns the model's backends in region, in catalog order.
func (m *Model) BackendsIn(region string) []*Backend {
	var out []*Backend
	for i := range m.Backends {
		if m.Backends[i].provider.Region == region {
			out = append(out, &m.Backends[i])
		}
	}
	return out
}

// ClusterName is the Envoy cluster serving model in region.
func ClusterName(modelID, region string) string {
	if region == RegionEU {
		return "model_" + modelID + "_eu"
	}
	return "model_" + modelID
}

// Catalog is a loaded, validated catalog. It is safe for concurrent use and never mutated.
type Catalog struct {
	Providers []Provider `yaml:"providers"`
	Models    []Model    `yaml:"models"`
	Defaults  struct {
		Limits *Limits `yaml:"limits"`
	} `yaml:"defaults"`

	providers map[string]*Provider
	models    map[string]*Model // by id and alias
}

// Load reads and validates the catalog at path. Provider credentials are read from the
// environment through getenv (os.Getenv when nil).
func Load(path string, getenv func(string) string) (*Catalog, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	return Parse(path, raw, getenv)
}

// Parse validates a catalog held in memory; name is used in error messages. All problems are
// reported at once.
func Parse(name string, raw []byte, getenv func(string) string) (*Catalog, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var c Catalog
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := c.index(getenv); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &c, nil
}

func (c *Catalog) index(getenv func(string) string) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	c.providers = make(map[string]*Provider, len(c.Providers))
	for i := range c.Providers {
		p := &c.Providers[i]
		where := fmt.Sprintf("providers[%d] (%s)", i, p.Name)
		if p.Name == "" {
			bad("%s: name is required", where)
		}
		if _, dup := c.providers[p.Name]; dup {
			bad("%s: duplicate provider name", where)
		}
		c.providers[p.Name] = p
		switch p.Kind {
		case KindOpenAI, KindAnthropic, KindGemini, KindOpenAICompatible:
		default:
			bad("%s: kind %q is not one of openai, anthropic, gemini, openai-compatible", where, p.Kind)
		}
		switch p.Region {
		case "":
			p.Region = RegionGlobal
		case RegionGlobal, RegionEU:
		default:
			bad("%s: region %q is not global or eu", where, p.Region)
		}
		u, err := parseBaseURL(p.BaseURL)
		if err != nil {
			bad("%s: base_url: %v", where, err)
		}
		p.url = u
		if p.APIKeyEnv != "" {
			p.apiKey = getenv(p.APIKeyEnv)
		}
	}

	c.models = make(map[string]*Model, 2*len(c.Models))
	claim := func(name string, m *Model, where string) {
		if strings.HasPrefix(name, EUPrefix) {
			bad("%s: %q: ids and aliases must not start with %q (the prefix is added per request)", where, name, EUPrefix)
		}
		if prev, dup := c.models[name]; dup {
			bad("%s: %q is already used by model %s", where, name, prev.ID)
			return
		}
		c.models[name] = m
	}
	for i := range c.Models {
		m := &c.Models[i]
		where := fmt.Sprintf("models[%d] (%s)", i, m.ID)
		if m.ID == "" {
			bad("%s: id is required", where)
		}
		claim(m.ID, m, where)
		for _, a := range m.Aliases {
			claim(a, m, where)
		}
		switch m.Lifecycle {
		case "":
			m.Lifecycle = LifecycleAvailable
		case LifecycleAvailable, LifecyclePreview, LifecycleDeprecated, LifecycleSunset, LifecycleUnavailable:
		default:
			bad("%s: lifecycle %q is not one of AVAILABLE, PREVIEW, DEPRECATED, SUNSET, UNAVAILABLE", where, m.Lifecycle)
		}
		if len(m.Endpoints) == 0 {
			m.Endpoints = []string{EndpointChatCompletions}
		}
		for _, e := range m.Endpoints {
			switch e {
			case EndpointChatCompletions, EndpointMessages, EndpointGemini:
			default:
				bad("%s: endpoint %q is unknown", where, e)
			}
		}
		if m.MaxOutputTokens <= 0 {
			bad("%s: max_output_tokens must be positive", where)
		}
		if len(m.Backends) == 0 {
			bad("%s: at least one backend is required", where)
		}
		for j := range m.Backends {
			b := &m.Backends[j]
			p, ok := c.providers[b.Provider]
			if !ok {
				bad("%s: backends[%d]: unknown provider %q", where, j, b.Provider)
				continue
			}
			b.provider = p
			if b.UpstreamModel == "" {
				b.UpstreamModel = m.ID
			}
			if b.Weight == 0 {
				b.Weight = 1
			}
		}
		prices, err := billing.ParsePrices(m.Pricing)
		if err != nil {
			bad("%s: pricing: %v", where, err)
		}
		m.prices = prices
	}
	for i := range c.Models {
		m := &c.Models[i]
		for _, f := range m.Fallbacks {
			if fm, ok := c.models[f]; !ok || fm.ID != f {
				bad("models[%d] (%s): fallback %q is not a model id", i, m.ID, f)
			}
		}
	}
	return errors.Join(errs...)
}

// Lookup finds a model by id or alias, without the eu/ prefix.
func (c *Catalog) Lookup(name string) (*Model, bool) {
	m := c.models[name]
	return m, m != nil
}

// Provider finds a provider by name.
func (c *Catalog) Provider(name string) (*Provider, bool) {
	p := c.providers[name]
	return p, p != nil
}

// LimitsFor returns the default quotas for model: its own, else the catalog's defaults.
func (c *Catalog) LimitsFor(m *Model) Limits {
	if m.Limits != nil {
		return *m.Limits
	}
	if c.Defaults.Limits != nil {
		return *c.Defaults.Limits
	}
	return Limits{}
}

// Route is a resolved request target: the canonical model, the region asked for, and the
// backends that may serve it in priority order.
type Route struct {
	Model    *Model
	Region   string
	Cluster  string
	Backends []*Backend
}

// Resolution errors, distinguished so the caller can pick the client-facing code.
var (
	ErrUnknownModel = errors.New("unknown model")
	ErrNotAvailable = errors.New("model not available")
)

// Resolve turns a requested model name (id, alias, optionally eu/-prefixed) into a Route. It does
// not check lifecycle or endpoint support; callers decide how to refuse those.
func (c *Catalog) Resolve(requested string) (Route, error) {
	name, region := requested, RegionGlobal
	if rest, ok := strings.CutPrefix(requested, EUPrefix); ok {
		name, region = rest, RegionEU
	}
	m, ok := c.Lookup(name)
	if !ok {
		return Route{}, fmt.Errorf("%w: %q", ErrUnknownModel, requested)
	}
	backends := m.BackendsIn(region)
	if len(backends) == 0 {
		return Route{}, fmt.Errorf("%w: %q has no %s backend", ErrNotAvailable, requested, region)
	}
	return Route{Model: m, Region: region, Cluster: ClusterName(m.ID, region), Backends: backends}, nil
}

// ListedIDs returns every model id a client may request, plain and eu/-prefixed where EU
// backends exist, sorted. Models that are SUNSET or UNAVAILABLE are left out.
func (c *Catalog) ListedIDs() []ListedModel {
	var out []ListedModel
	for i := range c.Models {
		m := &c.Models[i]
		if m.Lifecycle == LifecycleSunset || m.Lifecycle == LifecycleUnavailable {
			continue
		}
		if len(m.BackendsIn(RegionGlobal)) > 0 {
			out = append(out, ListedModel{ID: m.ID, Model: m})
		}
		if len(m.BackendsIn(RegionEU)) > 0 {
			out = append(out, ListedModel{ID: EUPrefix + m.ID, Model: m})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ListedModel is one entry of a model listing.
type ListedModel struct {
	ID    string
	Model *Model
}

// SetPrices replaces the model's parsed prices; for building models in tests.
func (m *Model) SetPrices(p billing.Prices) { m.prices = p }
