package openai

import (
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/extproc/params"
)

func TestGoverned(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name string
		body string
		want []params.Use
	}{
		{"plain", `{"model":"m",` + msgs + `}`, nil},
		{"identifiers are not governed", `{"model":"m","user":"u1","safety_identifier":"s","prompt_cache_key":"k",` + msgs + `}`, nil},
		{"harmless values", `{"model":"m","service_tier":"default","store":false,"metadata":{},"modalities":["text"],"prompt_cache_retention":"in_memory",` + msgs + `}`, nil},
		{"nulls", `{"model":"m","service_tier":null,"store":null,"prediction":null,"background":null,` + msgs + `}`, nil},
		{"priority tier", `{"model":"m","service_tier":"priority",` + msgs + `}`, []params.Use{u(params.ServiceTier, "service_tier")}},
		{"flex tier", `{"model":"m","service_tier":"flex",` + msgs + `}`, []params.Use{u(params.ServiceTier, "service_tier")}},
		{"auto tier", `{"model":"m","service_tier":"auto",` + msgs + `}`, []params.Use{u(params.ServiceTier, "service_tier")}},
		{"store", `{"model":"m","store":true,` + msgs + `}`, []params.Use{u(params.Store, "store")}},
		{"metadata", `{"model":"m","metadata":{"team":"a"},` + msgs + `}`, []params.Use{u(params.Metadata, "metadata")}},
		{"prediction", `{"model":"m","prediction":{"type":"content","content":"x"},` + msgs + `}`, []params.Use{u(params.Prediction, "prediction")}},
		{"web search", `{"model":"m","web_search_options":{},` + msgs + `}`, []params.Use{u(params.WebSearch, "web_search_options")}},
		{"audio output", `{"model":"m","modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"},` + msgs + `}`,
			[]params.Use{u(params.OutputModalities, "audio"), u(params.OutputModalities, "modalities")}},
		{"extended cache retention", `{"model":"m","prompt_cache_retention":"24h",` + msgs + `}`, []params.Use{u(params.PromptCacheRetention, "prompt_cache_retention")}},
		{"stored file", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"read"},{"type":"file","file":{"file_id":"file-abc"}}]}]}`,
			[]params.Use{u(params.Files, "messages[0].content[1].file.file_id")}},
		{"harmless extras", `{"model":"m","seed":1,"logprobs":true,"top_logprobs":2,"reasoning_effort":"low","verbosity":"low","parallel_tool_calls":false,"frequency_penalty":0.5,` + msgs + `}`, nil},
		{"unknown fields", `{"model":"m","repetition_penalty":1.1,"background":true,` + msgs + `}`,
			[]params.Use{u("field:background", "background"), u("field:repetition_penalty", "repetition_penalty")}},
		{"inline file", `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,AA=="}}]}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Governed(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func u(name, param string) params.Use { return params.Use{Name: name, Param: param} }
