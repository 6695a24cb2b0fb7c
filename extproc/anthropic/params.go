package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/extproc/params"
)

// Governed lists the parameters of r that change the operator's bill or data handling
// (package params): service_tier other than standard_only, metadata, mcp_servers, container,
// inference_geo, speed, provider-side fallbacks, any top-level field this package does not know
// (params.Field), provider-run tools, and file references.
func (r *Request) Governed() []params.Use {
	var uses []params.Use
	if raw, ok := r.fields["service_tier"]; ok && !isNull(raw) && !bytes.Equal(bytes.TrimSpace(raw), []byte(`"standard_only"`)) {
		uses = append(uses, params.Use{Name: params.ServiceTier, Param: "service_tier"})
	}
	for _, name := range slices.Sorted(maps.Keys(r.fields)) {
		raw := r.fields[name]
		switch gov, governed := governedFields[name]; {
		case name == "service_tier", harmlessFields[name], isNull(raw):
		case governed:
			uses = append(uses, params.Use{Name: gov, Param: name})
		default:
			uses = append(uses, params.Field(name))
		}
	}
	for i, t := range r.Tools {
		if name := serverTool(t.Type); name != "" {
			uses = append(uses, params.Use{Name: name, Param: fmt.Sprintf("tools[%d]", i)})
		}
	}
	for i := range r.Messages {
		for j := range r.Messages[i].Blocks {
			uses = blockUses(uses, &r.Messages[i].Blocks[j], fmt.Sprintf("messages[%d].content[%d]", i, j))
		}
	}
	return uses
}

// governedFields maps the top-level fields that change the bill or data handling to their
// allowed_params names (service_tier is judged by its value, in Governed).
var governedFields = map[string]string{
	"metadata":              params.Metadata,
	"mcp_servers":           params.MCPServers,
	"container":             params.Container,
	"inference_geo":         params.InferenceGeo,
	"speed":                 params.Speed,
	"fallbacks":             params.ProviderFallbacks,
	"fallback_credit_token": params.ProviderFallbacks,
}

// harmlessFields are the top-level fields that change neither the bill beyond the catalog's
// prices (cache writes are priced; thinking and effort are output, bounded by max_tokens) nor
// data handling.
var harmlessFields = map[string]bool{
	"model": true, "messages": true, "max_tokens": true, "system": true, "stream": true,
	"temperature": true, "top_p": true, "top_k": true, "stop_sequences": true, "tools": true,
	"tool_choice": true, "thinking": true, "cache_control": true, "context_management": true,
	"output_config": true, "output_format": true,
}

// serverTool names the governed capability of a tool type, or "" for tools the client runs
// itself (custom tools and Anthropic's client tools: bash, text editor, computer use, memory).
func serverTool(typ string) string {
	switch {
	case typ == "" || typ == "custom":
		return ""
	case strings.HasPrefix(typ, "bash_"), strings.HasPrefix(typ, "text_editor_"),
		strings.HasPrefix(typ, "computer_"), strings.HasPrefix(typ, "memory_"):
		return ""
	case strings.HasPrefix(typ, "web_search_"):
		return params.WebSearch
	case strings.HasPrefix(typ, "web_fetch_"):
		return params.WebFetch
	case strings.HasPrefix(typ, "code_execution_"):
		return params.CodeExecution
	case typ == "mcp_toolset":
		return params.MCPServers
	}
	return params.ServerTools
}

// blockUses appends the governed uses of a content block: a source or upload that names a file
// stored in the operator's account, also inside tool results.
func blockUses(uses []params.Use, b *ContentBlock, param string) []params.Use {
	switch {
	case b.Source != nil && b.Source.Type == "file":
		uses = append(uses, params.Use{Name: params.Files, Param: param + ".source"})
	case b.Type == "container_upload":
		uses = append(uses, params.Use{Name: params.Files, Param: param})
	case b.Type == blockToolResult && len(b.Content) > 0 && bytes.TrimSpace(b.Content)[0] == '[':
		var inner []ContentBlock
		if json.Unmarshal(b.Content, &inner) == nil {
			for k := range inner {
				uses = blockUses(uses, &inner[k], fmt.Sprintf("%s.content[%d]", param, k))
			}
		}
	}
	return uses
}

// harmlessBetas are the anthropic-beta values that pass without being allowed: they change
// neither what the operator pays beyond the catalog's prices (1-hour cache writes are priced as
// input_cache_write_1_h; longer output stays within max_tokens, which the hold covers) nor where
// data goes. Everything else, context-1m (long-context rates) and the betas that enable MCP,
// code execution, files, web fetch or skills among them, must be allowed per model as
// "anthropic-beta:<value>".
var harmlessBetas = map[string]bool{
	"messages-2023-12-15":                      true,
	"tools-2024-04-04":                         true,
	"tools-2024-05-16":                         true,
	"max-tokens-3-5-sonnet-2024-07-15":         true,
	"prompt-caching-2024-07-31":                true,
	"pdfs-2024-09-25":                          true,
	"token-counting-2024-11-01":                true,
	"computer-use-2024-10-22":                  true,
	"computer-use-2025-01-24":                  true,
	"computer-use-2025-11-24":                  true,
	"token-efficient-tools-2025-02-19":         true,
	"output-128k-2025-02-19":                   true,
	"extended-cache-ttl-2025-04-11":            true,
	"interleaved-thinking-2025-05-14":          true,
	"fine-grained-tool-streaming-2025-05-14":   true,
	"search-results-2025-06-09":                true,
	"context-management-2025-06-27":            true,
	"model-context-window-exceeded-2025-08-26": true,
	"structured-outputs-2025-11-13":            true,
	"effort-2025-11-24":                        true,
}

// Betas splits an anthropic-beta header (comma-separated values, possibly repeated headers
// joined with commas) into its values, trimmed and de-duplicated in the client's order, and the
// governed uses among them: every value outside the harmless set needs the model's allowed_params.
func Betas(header string) (uses []params.Use, values []string) {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimSpace(v)
		if v == "" || slices.Contains(values, v) {
			continue
		}
		values = append(values, v)
		if !harmlessBetas[v] {
			uses = append(uses, params.Use{Name: params.BetaPrefix + v, Param: "anthropic-beta"})
		}
	}
	return uses, values
}
