package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/tollgate/tollgate/extproc/params"
)

// Governed lists the parameters of r that change the operator's bill or data handling
// (package params): service_tier other than "default", store other than false, metadata,
// prediction, web_search_options, audio output, extended prompt-cache retention, file_id
// references to files stored in the operator's account, and any top-level field this package
// does not know (params.Field). Null counts as absent everywhere.
//
// Only a request parsed from an OpenAI client carries these: the other protocols' converters
// never put them in Extra.
func (r *ChatRequest) Governed() []params.Use {
	var uses []params.Use
	field := func(name string, harmless ...string) {
		raw, ok := r.Extra[name]
		if !ok || isNull(raw) {
			return
		}
		v := string(bytes.TrimSpace(raw))
		for _, h := range harmless {
			if v == h {
				return
			}
		}
		uses = append(uses, params.Use{Name: governedName[name], Param: name})
	}
	field("service_tier", `"default"`)
	field("store", `false`)
	field("metadata", `{}`)
	field("prediction")
	field("web_search_options")
	field("audio")
	field("modalities", `["text"]`)
	field("prompt_cache_retention", `"in_memory"`)
	for _, name := range sortedKeys(r.Extra) {
		if _, governed := governedName[name]; !governed && !harmlessFields[name] && !isNull(r.Extra[name]) {
			uses = append(uses, params.Field(name))
		}
	}
	for i := range r.Messages {
		m := &r.Messages[i]
		if len(m.Content) == 0 || m.Content[0] != '[' {
			continue
		}
		var parts []struct {
			Type string `json:"type"`
			File *struct {
				FileID string `json:"file_id"`
			} `json:"file"`
		}
		if json.Unmarshal(m.Content, &parts) != nil {
			continue
		}
		for j, p := range parts {
			if p.File != nil && p.File.FileID != "" {
				uses = append(uses, params.Use{Name: params.Files, Param: fmt.Sprintf("messages[%d].content[%d].file.file_id", i, j)})
			}
		}
	}
	return uses
}

// governedName maps an OpenAI field to its allowed_params name.
var governedName = map[string]string{
	"service_tier":           params.ServiceTier,
	"store":                  params.Store,
	"metadata":               params.Metadata,
	"prediction":             params.Prediction,
	"web_search_options":     params.WebSearch,
	"audio":                  params.OutputModalities,
	"modalities":             params.OutputModalities,
	"prompt_cache_retention": params.PromptCacheRetention,
}

// harmlessFields are the top-level fields, besides those ParseRequest consumes, that change
// neither the bill beyond the catalog's prices nor data handling: sampling, output shape, and
// end-user identifiers (which help a provider attribute abuse to one end user, not the
// operator's whole account).
var harmlessFields = map[string]bool{
	"parallel_tool_calls": true, "frequency_penalty": true, "presence_penalty": true, "logit_bias": true,
	"logprobs": true, "top_logprobs": true, "seed": true, "user": true, "safety_identifier": true,
	"prompt_cache_key": true, "reasoning_effort": true, "verbosity": true, "functions": true, "function_call": true,
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
