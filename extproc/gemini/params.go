package gemini

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/tollgate/tollgate/extproc/params"
)

// Governed lists the parameters of r that change the operator's bill or data handling
// (package params): cachedContent, labels, provider-run tools (Google Search, code execution,
// URL context, Google Maps, file search, and any tool kind not known here), non-text response
// modalities and speech output, fileData references (Files API and Cloud Storage URIs name
// files in the operator's project), and any top-level field this package does not know
// (params.Field; safetySettings is known and harmless).
func (r *Request) Governed() []params.Use {
	var uses []params.Use
	for _, name := range slices.Sorted(maps.Keys(r.Extra)) {
		switch name {
		case "safetySettings":
		case "cachedContent":
			uses = append(uses, params.Use{Name: params.CachedContent, Param: name})
		case "labels":
			uses = append(uses, params.Use{Name: params.Labels, Param: name})
		default:
			uses = append(uses, params.Field(name))
		}
	}
	for i, t := range r.Tools {
		kinds := make([]string, 0, len(t.Extra))
		for k := range t.Extra {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds) // map order would make the named parameter vary between requests
		for _, k := range kinds {
			if name := toolName(k); name != "" {
				uses = append(uses, params.Use{Name: name, Param: fmt.Sprintf("tools[%d].%s", i, k)})
			}
		}
	}
	if g := r.GenerationConfig; g != nil {
		if raw, ok := g.Extra["responseModalities"]; ok {
			var mods []string
			if json.Unmarshal(raw, &mods) != nil || !textOnly(mods) {
				uses = append(uses, params.Use{Name: params.OutputModalities, Param: "generationConfig.responseModalities"})
			}
		}
		if _, ok := g.Extra["speechConfig"]; ok {
			uses = append(uses, params.Use{Name: params.OutputModalities, Param: "generationConfig.speechConfig"})
		}
	}
	for i := range r.Contents {
		for j, p := range r.Contents[i].Parts {
			if p.FileData != nil {
				uses = append(uses, params.Use{Name: params.Files, Param: fmt.Sprintf("contents[%d].parts[%d].fileData", i, j)})
			}
		}
	}
	return uses
}

// toolName names the governed capability of a tool kind (a key of a Tool besides
// functionDeclarations), or "" for computerUse, whose actions the client carries out.
func toolName(kind string) string {
	switch kind {
	case "computerUse":
		return ""
	case "googleSearch", "googleSearchRetrieval", "enterpriseWebSearch":
		return params.WebSearch
	case "codeExecution":
		return params.CodeExecution
	case "urlContext":
		return params.WebFetch
	case "googleMaps":
		return params.GoogleMaps
	case "fileSearch", "retrieval":
		return params.Files
	}
	return params.ServerTools
}

func textOnly(mods []string) bool {
	for _, m := range mods {
		if m != "TEXT" && m != "text" {
			return false
		}
	}
	return true
}
