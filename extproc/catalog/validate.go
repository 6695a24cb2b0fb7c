package catalog

import (
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/params"
)

// validate resolves references, applies defaults and records every problem in ps. It runs on a
// freshly decoded catalog only; a catalog that passed is never modified again.
func (c *Catalog) validate(ps *problems, getenv func(string) string) {
	c.validateProviders(ps, getenv)
	c.validateModels(ps)
	c.validateReferences(ps)
}

func (c *Catalog) validateProviders(ps *problems, getenv func(string) string) {
	c.providers = make(map[string]*Provider, len(c.Providers))
	for i := range c.Providers {
		p := &c.Providers[i]
		at := path{"providers"}.idx(i)
		switch first, dup := c.providers[p.Name]; {
		case p.Name == "":
			ps.errorf(at.key("name"), "is required")
		case dup:
			ps.errorf(at.key("name"), "provider %q is already defined at line %d", p.Name, ps.line(providerPath(c, first).key("name")))
		default:
			c.providers[p.Name] = p
		}
		switch p.Kind {
		case KindOpenAI, KindAnthropic, KindGemini, KindOpenAICompatible:
		default:
			ps.errorf(at.key("kind"), "%q is not one of openai, anthropic, gemini, openai-compatible", p.Kind)
		}
		switch p.Region {
		case "":
			p.Region = RegionGlobal
		case RegionGlobal, RegionEU:
		default:
			ps.errorf(at.key("region"), "%q is not global or eu", p.Region)
		}
		if p.BaseURL == "" {
			ps.errorf(at.key("base_url"), "is required")
		} else if u, err := parseBaseURL(p.BaseURL); err != nil {
			ps.errorf(at.key("base_url"), "%v", err)
		} else {
			p.url = u
		}
		if p.APIKeyEnv != "" {
			p.apiKey = getenv(p.APIKeyEnv)
			if p.apiKey == "" {
				// A warning, not an error: the file is right, the environment is not (yet), and
				// refusing would take every other provider down with this one.
				ps.warnf(at.key("api_key_env"), "%s is not set; requests to provider %s will carry no credential", p.APIKeyEnv, p.Name)
			}
		}
	}
}

func providerPath(c *Catalog, p *Provider) path {
	for i := range c.Providers {
		if &c.Providers[i] == p {
			return path{"providers"}.idx(i)
		}
	}
	return path{"providers"}
}

func (c *Catalog) validateModels(ps *problems) {
	c.models = make(map[string]*Model, 2*len(c.Models))
	claimedAt := make(map[string]path, 2*len(c.Models))
	claim := func(name string, m *Model, at path) {
		switch prev, dup := c.models[name]; {
		case name == "":
			ps.errorf(at, "is required")
		case strings.HasPrefix(name, EUPrefix):
			ps.errorf(at, "%q must not start with %q: the prefix is added per request for EU routing", name, EUPrefix)
		case dup:
			ps.errorf(at, "%q is already used by model %s at line %d", name, prev.ID, ps.line(claimedAt[name]))
		default:
			c.models[name] = m
			claimedAt[name] = at
		}
	}
	for i := range c.Models {
		m := &c.Models[i]
		at := path{"models"}.idx(i)
		claim(m.ID, m, at.key("id"))
		for j, a := range m.Aliases {
			claim(a, m, at.key("aliases").idx(j))
		}
		switch m.Lifecycle {
		case "":
			m.Lifecycle = LifecycleAvailable
		case LifecycleAvailable, LifecyclePreview, LifecycleDeprecated, LifecycleSunset, LifecycleUnavailable:
		default:
			ps.errorf(at.key("lifecycle"), "%q is not one of AVAILABLE, PREVIEW, DEPRECATED, SUNSET, UNAVAILABLE", m.Lifecycle)
		}
		switch m.Tier {
		case "", TierPremium, TierBase:
		default:
			ps.errorf(at.key("tier"), "%q is not premium or base", m.Tier)
		}
		if len(m.Endpoints) == 0 {
			m.Endpoints = []string{EndpointChatCompletions}
		}
		for j, e := range m.Endpoints {
			switch e {
			case EndpointChatCompletions, EndpointMessages, EndpointGemini:
			default:
				ps.errorf(at.key("endpoints").idx(j), "%q is not one of chat_completions, messages, gemini", e)
			}
		}
		if m.MaxOutputTokens <= 0 {
			ps.errorf(at.key("max_output_tokens"), "must be positive")
		}
		if pt := m.PartInputTokens; pt != nil {
			for _, f := range []struct {
				key string
				v   int64
			}{{PartImage, pt.Image}, {PartDocument, pt.Document}, {PartAudio, pt.Audio}} {
				if f.v < 0 || f.v > maxPartTokens {
					ps.errorf(at.key("part_input_tokens").key(f.key), "must be between 0 (the default) and %d", maxPartTokens)
				}
			}
		}
		if m.Sunset != "" && !isDate(m.Sunset) {
			ps.errorf(at.key("sunset"), "%q is not a date (2006-01-02) or an RFC 3339 time", m.Sunset)
		}
		c.validateBackends(ps, m, at)
		validatePricing(ps, m, at.key("pricing"))
		for j, name := range m.AllowedParams {
			if !params.Known(name) {
				ps.errorf(at.key("allowed_params").idx(j), "%q is not a governed parameter (known: %s)", name, strings.Join(params.Names(), ", "))
			}
		}
	}
}

func isDate(s string) bool {
	_, err1 := time.Parse(time.DateOnly, s)
	_, err2 := time.Parse(time.RFC3339, s)
	return err1 == nil || err2 == nil
}

func (c *Catalog) validateBackends(ps *problems, m *Model, at path) {
	if len(m.Backends) == 0 {
		ps.errorf(at.key("backends"), "at least one backend is required")
	}
	type ident struct{ provider, upstream string }
	seen := make(map[ident]int, len(m.Backends))
	for j := range m.Backends {
		b := &m.Backends[j]
		bat := at.key("backends").idx(j)
		b.model = m
		if b.UpstreamModel == "" {
			b.UpstreamModel = m.ID
		}
		if b.Weight == 0 {
			b.Weight = 1
		}
		if b.Provider == "" {
			ps.errorf(bat.key("provider"), "is required")
			continue
		}
		p, ok := c.providers[b.Provider]
		if !ok {
			ps.errorf(bat.key("provider"), "unknown provider %q", b.Provider)
			continue
		}
		b.provider = p
		id := ident{b.Provider, b.UpstreamModel}
		if first, dup := seen[id]; dup {
			ps.errorf(bat, "repeats backends[%d] (provider %s, upstream_model %s)", first, b.Provider, b.UpstreamModel)
		}
		seen[id] = j
	}
}

// validatePricing parses each price on its own so a bad one is reported at its own line.
func validatePricing(ps *problems, m *Model, at path) {
	items := make([]string, 0, len(m.Pricing))
	for k := range m.Pricing {
		items = append(items, k)
	}
	slices.Sort(items)
	ok := true
	for _, item := range items {
		if _, err := billing.ParsePrices(map[string]string{item: m.Pricing[item]}); err != nil {
			ps.errorf(at.key(item), "%s", strings.TrimPrefix(err.Error(), item+": "))
			ok = false
		}
	}
	if ok {
		m.prices, _ = billing.ParsePrices(m.Pricing)
	}
}

// validateReferences checks what models say about other models: fallbacks and replacements.
// It runs after every id and alias is claimed, so order in the file does not matter.
func (c *Catalog) validateReferences(ps *problems) {
	index := make(map[*Model]int, len(c.Models))
	for i := range c.Models {
		index[&c.Models[i]] = i
	}
	edges := make([][]edge, len(c.Models))
	for i := range c.Models {
		m := &c.Models[i]
		at := path{"models"}.idx(i)
		listed := make(map[*Model]int, len(m.Fallbacks))
		for j, f := range m.Fallbacks {
			fat := at.key("fallbacks").idx(j)
			target, ok := c.models[f]
			first, dup := listed[target]
			switch {
			case strings.HasPrefix(f, EUPrefix):
				ps.errorf(fat, "%q: a fallback is followed in the region of the request; name it without %q", f, EUPrefix)
			case !ok:
				ps.errorf(fat, "%q is not a model", f)
			case target.ID != f:
				ps.errorf(fat, "%q is an alias; name the model id %s", f, target.ID)
			case target == m:
				ps.errorf(fat, "model %s falls back to itself", m.ID)
			case dup:
				ps.errorf(fat, "%q is already listed as fallbacks[%d]", f, first)
			default:
				listed[target] = j
				edges[i] = append(edges[i], edge{to: index[target], at: fat})
			}
		}
		c.validateReplacement(ps, m, at.key("replacement"))
	}
	for _, cyc := range findCycles(edges) {
		ids := make([]string, len(cyc.models))
		for k, mi := range cyc.models {
			ids[k] = c.Models[mi].ID
		}
		ps.errorf(cyc.closing.at, "fallback cycle %s", strings.Join(ids, " -> "))
	}
	if len(ps.errs) == 0 {
		// Only a sound catalog's references are worth a warning.
		c.warnSkippedFallbacks(ps)
	}
}

func (c *Catalog) validateReplacement(ps *problems, m *Model, at path) {
	r := m.Replacement
	if r == "" {
		return
	}
	name, eu := strings.CutPrefix(r, EUPrefix)
	target, ok := c.models[name]
	switch {
	case !ok:
		ps.errorf(at, "%q is not a model", r)
	case target == m:
		ps.errorf(at, "model %s cannot replace itself", m.ID)
	case eu && len(target.BackendsIn(RegionEU)) == 0:
		// Clients are told to use this name; an eu/ id without an EU backend would be refused.
		ps.errorf(at, "%q names an EU model, but %s has no eu backend", r, target.ID)
	case target.Lifecycle == LifecycleSunset || target.Lifecycle == LifecycleUnavailable:
		ps.warnf(at, "%q is itself %s", r, target.Lifecycle)
	}
}

// warnSkippedFallbacks points out fallbacks that are switched off: harmless (the chain skips
// their backends) but almost certainly not what the operator meant. A fallback with no backend
// in some region is not reported: skipping it there is the EU rule working as intended.
func (c *Catalog) warnSkippedFallbacks(ps *problems) {
	for i := range c.Models {
		for j, f := range c.Models[i].Fallbacks {
			if fm := c.models[f]; !servesAsFallback(fm) {
				ps.warnf(path{"models"}.idx(i).key("fallbacks").idx(j), "%s is %s; its backends are skipped", f, fm.Lifecycle)
			}
		}
	}
}
