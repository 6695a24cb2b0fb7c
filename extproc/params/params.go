// Package params holds the request parameters the gateway governs: body fields, tools and
// header values that change the operator's bill or how a provider handles the data, and that
// the catalog prices do not cover. Each protocol package reports which of them a request uses
// (a Use per occurrence); the gateway refuses the request unless the catalog allows every one
// of them for the model (a model's allowed_params). docs/forwarding.md is the table of what is
// governed and why.
package params

import (
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/extproc/apierror"
)

// Names of governed parameters, as an operator lists them in a model's allowed_params. Where
// protocols spell one thing differently (a web search tool, a file reference) they share one
// name; a field only one protocol has keeps that protocol's name.
const (
	// ServiceTier: OpenAI's and Anthropic's service_tier (priority and flex capacity are billed
	// at other rates than the catalog's).
	ServiceTier = "service_tier"
	// Store: OpenAI's store, which keeps the completion in the operator's account.
	Store = "store"
	// Metadata: OpenAI's metadata (stored with the completion, shown in the operator's
	// dashboard) and Anthropic's (an open object about the caller).
	Metadata = "metadata"
	// Prediction: OpenAI's predicted outputs; rejected prediction tokens are billed as output.
	Prediction = "prediction"
	// OutputModalities: audio or image output (OpenAI's audio and modalities, Gemini's
	// responseModalities and speechConfig), billed at rates the catalog has no item for.
	OutputModalities = "output_modalities"
	// PromptCacheRetention: OpenAI's extended prompt caching, which keeps prompts for up to a day.
	PromptCacheRetention = "prompt_cache_retention"
	// MCPServers: Anthropic's mcp_servers and mcp_toolset tools; the provider connects to
	// servers of the caller's choosing with the caller's tokens.
	MCPServers = "mcp_servers"
	// Container: Anthropic's container, reusing a code-execution container and its files.
	Container = "container"
	// CachedContent: Gemini's cachedContent, a cache stored (and billed by the hour) in the
	// operator's project.
	CachedContent = "cached_content"
	// Labels: Gemini's (Vertex AI's) labels, which attribute cost in the operator's billing.
	Labels = "labels"
	// WebSearch: provider-run web search (OpenAI's web_search_options, Anthropic's web_search
	// tool, Gemini's googleSearch), billed per search.
	WebSearch = "web_search"
	// WebFetch: provider-run page fetching (Anthropic's web_fetch tool, Gemini's urlContext).
	WebFetch = "web_fetch"
	// CodeExecution: provider-run code (Anthropic's code_execution tool, Gemini's
	// codeExecution), billed per container hour and able to keep files.
	CodeExecution = "code_execution"
	// GoogleMaps: Gemini's Google Maps grounding, billed per request.
	GoogleMaps = "google_maps"
	// Files: references to files stored in the operator's provider account (OpenAI file_id
	// parts, Anthropic file sources and container uploads, Gemini fileData and fileSearch):
	// one caller could read another's.
	Files = "files"
	// ServerTools: any other provider-run tool, which the gateway cannot tell the cost of.
	ServerTools = "server_tools"
	// InferenceGeo: Anthropic's inference_geo, where the request runs (data residency, and
	// priced above the catalog's rates).
	InferenceGeo = "inference_geo"
	// Speed: Anthropic's speed (fast mode, priced above the catalog's rates).
	Speed = "speed"
	// ProviderFallbacks: Anthropic's fallbacks and fallback_credit_token, the provider retrying
	// on models the catalog does not price for this request.
	ProviderFallbacks = "provider_fallbacks"
)

// BetaPrefix starts an allowed_params entry that allows one anthropic-beta header value:
// "anthropic-beta:context-1m-2025-08-07".
const BetaPrefix = "anthropic-beta:"

// FieldPrefix starts the name of a top-level request field the gateway does not know: providers
// add fields that change billing (Anthropic's speed and inference_geo came that way), so an
// unknown field is refused until the operator allows it by name, "field:repetition_penalty".
const FieldPrefix = "field:"

// Field is the Use of an unknown top-level field.
func Field(name string) Use { return Use{Name: FieldPrefix + name, Param: name} }

var known = map[string]bool{
	ServiceTier: true, Store: true, Metadata: true, Prediction: true, OutputModalities: true,
	PromptCacheRetention: true, MCPServers: true, Container: true, CachedContent: true, Labels: true,
	WebSearch: true, WebFetch: true, CodeExecution: true, GoogleMaps: true, Files: true, ServerTools: true,
	InferenceGeo: true, Speed: true, ProviderFallbacks: true,
}

// Known reports whether name may appear in a model's allowed_params.
func Known(name string) bool {
	if beta, ok := strings.CutPrefix(name, BetaPrefix); ok {
		return beta != "" && !strings.ContainsAny(beta, ", \t")
	}
	if field, ok := strings.CutPrefix(name, FieldPrefix); ok {
		return field != "" && !strings.ContainsAny(field, ", \t.:")
	}
	return known[name]
}

// Names lists the known names, for error messages.
func Names() []string {
	return []string{ServiceTier, Store, Metadata, Prediction, OutputModalities, PromptCacheRetention,
		MCPServers, Container, CachedContent, Labels, WebSearch, WebFetch, CodeExecution, GoogleMaps,
		Files, ServerTools, InferenceGeo, Speed, ProviderFallbacks, BetaPrefix + "<value>", FieldPrefix + "<name>"}
}

// Use is one governed parameter in a request: Name as allowed_params lists it, Param where the
// request has it (a field path, or a header name), as the client's error names it.
type Use struct {
	Name  string
	Param string
}

// Allowed lists what a model allows; nil allows nothing governed.
type Allowed []string

// Has reports whether name is allowed.
func (a Allowed) Has(name string) bool {
	for _, n := range a {
		if n == name {
			return true
		}
	}
	return false
}

// Check returns the 400 invalid_params for the first use that allowed does not cover, naming the
// parameter, or nil.
func Check(uses []Use, allowed Allowed, model string) *apierror.Error {
	for _, u := range uses {
		if !allowed.Has(u.Name) {
			return refused(u, model)
		}
	}
	return nil
}

func refused(u Use, model string) *apierror.Error {
	e := apierror.New(http.StatusBadRequest, apierror.CodeInvalidParams,
		"Parameter %s is not supported for model %s on this gateway (it changes billing or data handling; the operator can allow %q for the model)",
		u.Param, model, u.Name)
	e.Param = u.Param
	return e
}
