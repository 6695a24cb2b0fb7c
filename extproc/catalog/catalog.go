// Package catalog holds the operator's model catalog: providers, models, prices and limits,
// loaded from one YAML file (docs/design.md section 5) and queried on every request.
//
// A Catalog is immutable once loaded; reloading builds a new one and swaps a pointer, so readers
// never need a lock. Loading validates everything and reports every problem at once as a
// Problem (file:line: field: message); load.go decodes and checks the shape, validate.go the
// meaning, fallback.go computes the fallback chains (Chain), resolve.go turns a requested name
// into a Route.
package catalog

import (
	"github.com/tollgate/tollgate/envoy/contract"
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

// Tiers of a model (seed 000: base-tier models cannot stand in when credits are exhausted).
const (
	TierPremium = "premium"
	TierBase    = "base"
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
	model    *Model
}

// ProviderRef returns the resolved provider of the backend.
func (b *Backend) ProviderRef() *Provider { return b.provider }

// ModelRef returns the model the backend belongs to. In a fallback chain it is the model that
// actually serves the request when this backend is reached, so its id and prices apply.
func (b *Backend) ModelRef() *Model { return b.model }

// Limits are default quotas per organisation for a model.
type Limits struct {
	RPM uint64 `yaml:"rpm"`
	TPM uint64 `yaml:"tpm"`
	TPD uint64 `yaml:"tpd"`
}

// Model is one canonical model id with its aliases, backends, prices and limits.
type Model struct {
	ID              string   `yaml:"id"`
	Aliases         []string `yaml:"aliases"`
	OwnedBy         string   `yaml:"owned_by"`
	Lifecycle       string   `yaml:"lifecycle"`
	Tier            string   `yaml:"tier"`
	Endpoints       []string `yaml:"endpoints"`
	MaxOutputTokens int64    `yaml:"max_output_tokens"`
	// PartInputTokens bounds the input tokens of one non-text part; unset kinds take the
	// defaults of PartTokens.
	PartInputTokens *PartTokens       `yaml:"part_input_tokens"`
	Backends        []Backend         `yaml:"backends"`
	Pricing         map[string]string `yaml:"pricing"`
	Fallbacks       []string          `yaml:"fallbacks"`
	Limits          *Limits           `yaml:"limits"`
	Replacement     string            `yaml:"replacement"`
	Sunset          string            `yaml:"sunset"`
	// AllowedParams lists the governed request parameters (package params: service_tier,
	// store, web_search, "anthropic-beta:context-1m-2025-08-07", …) that clients may use with
	// this model. Any other governed parameter is refused with 400 invalid_params.
	AllowedParams []string `yaml:"allowed_params"`

	prices billing.Prices
}

// Kinds of non-text content part.
const (
	PartImage    = "image"
	PartDocument = "document"
	PartAudio    = "audio"
)

// Default worst-case input tokens of one non-text part. An image: OpenAI's patch-based models
// charge at most 1536 patches × 1.62 ≈ 2,490 tokens, Anthropic about 1,600 (1.15 megapixels /
// 750), Gemini at most 1,120 per image at its highest media resolution. A document or an audio
// part may fill a whole 200K-token context window, the largest most models read at once; lower
// these for models whose providers cap parts lower, so holds tie up less credit.
const (
	DefaultImageTokens    = 2_500
	DefaultDocumentTokens = 200_000
	DefaultAudioTokens    = 200_000
)

// maxPartTokens keeps a part's bound far from overflowing the hold's arithmetic.
const maxPartTokens = 10_000_000

// PartTokens are worst-case input tokens of one part of each kind; zero means the default.
type PartTokens struct {
	Image    int64 `yaml:"image"`
	Document int64 `yaml:"document"`
	Audio    int64 `yaml:"audio"`
}

// PartTokens returns the worst-case input tokens of one part of kind (PartImage, PartDocument,
// PartAudio) on this model: its catalog value, else the default.
func (m *Model) PartTokens(kind string) int64 {
	var v, def int64
	switch kind {
	case PartImage:
		def = DefaultImageTokens
		if m.PartInputTokens != nil {
			v = m.PartInputTokens.Image
		}
	case PartDocument:
		def = DefaultDocumentTokens
		if m.PartInputTokens != nil {
			v = m.PartInputTokens.Document
		}
	case PartAudio:
		def = DefaultAudioTokens
		if m.PartInputTokens != nil {
			v = m.PartInputTokens.Audio
		}
	}
	if v > 0 {
		return v
	}
	return def
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
		if p := m.Backends[i].provider; p != nil && p.Region == region {
			out = append(out, &m.Backends[i])
		}
	}
	return out
}

// ClusterName is the Envoy cluster serving model in region (contract.ModelCluster).
func ClusterName(modelID, region string) string {
	return contract.ModelCluster(modelID, region == RegionEU)
}

// Catalog is a loaded, validated catalog. It is safe for concurrent use and never mutated.
type Catalog struct {
	Providers []Provider `yaml:"providers"`
	Models    []Model    `yaml:"models"`
	Defaults  struct {
		Limits *Limits `yaml:"limits"`
		// ManagementRPM is each management key's request limit per minute on the management
		// API (0: DefaultManagementRPM).
		ManagementRPM uint64 `yaml:"management_rpm"`
	} `yaml:"defaults"`

	providers map[string]*Provider
	models    map[string]*Model // by id and alias
	chains    map[chainKey][]*Backend
	warnings  []Problem
}

// Warnings returns what Parse found questionable but servable (an unset credential variable, a
// fallback that can never be used), in document order. The slice is the caller's.
func (c *Catalog) Warnings() []Problem { return append([]Problem(nil), c.warnings...) }

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

// DefaultManagementRPM is the management API's per-key request limit per minute when the
// catalog sets none: ample for dashboards and scripts, short of a scrape of every request log.
const DefaultManagementRPM = 120

// ManagementRPM returns each management key's request limit per minute on the management API.
func (c *Catalog) ManagementRPM() uint64 {
	if c.Defaults.ManagementRPM > 0 {
		return c.Defaults.ManagementRPM
	}
	return DefaultManagementRPM
}

// SetPrices replaces the model's parsed prices; for building models in tests.
func (m *Model) SetPrices(p billing.Prices) { m.prices = p }

// Key names the backend in Envoy's endpoint metadata (filter_metadata.tollgate.backend,
// contract.BackendName), so the per-attempt upstream filter can tell which backend an attempt
// reached.
func (b *Backend) Key() string { return contract.BackendName(b.Provider, b.UpstreamModel) }
