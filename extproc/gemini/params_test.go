package gemini

import (
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/extproc/params"
)

func TestGoverned(t *testing.T) {
	const contents = `"contents":[{"role":"user","parts":[{"text":"hi"}]}]`
	tests := []struct {
		name string
		body string
		want []params.Use
	}{
		{"plain", `{` + contents + `}`, nil},
		{"safety settings are not governed", `{` + contents + `,"safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}]}`, nil},
		{"cached content", `{` + contents + `,"cachedContent":"cachedContents/abc"}`, []params.Use{u(params.CachedContent, "cachedContent")}},
		{"cached content, snake case", `{` + contents + `,"cached_content":"cachedContents/abc"}`, []params.Use{u(params.CachedContent, "cachedContent")}},
		{"unknown field", `{` + contents + `,"serviceTier":"priority"}`, []params.Use{u("field:serviceTier", "serviceTier")}},
		{"snake-case tool", `{` + contents + `,"tools":[{"google_search":{}}]}`, []params.Use{u(params.WebSearch, "tools[0].googleSearch")}},
		{"labels", `{` + contents + `,"labels":{"team":"a"}}`, []params.Use{u(params.Labels, "labels")}},
		{"function tools", `{` + contents + `,"tools":[{"functionDeclarations":[{"name":"f"}]}]}`, nil},
		{"provider tools", `{` + contents + `,"tools":[{"googleSearch":{}},{"codeExecution":{},"urlContext":{}},{"googleMaps":{}},{"fileSearch":{}},{"computerUse":{}},{"somethingNew":{}}]}`,
			[]params.Use{u(params.WebSearch, "tools[0].googleSearch"), u(params.CodeExecution, "tools[1].codeExecution"), u(params.WebFetch, "tools[1].urlContext"),
				u(params.GoogleMaps, "tools[2].googleMaps"), u(params.Files, "tools[3].fileSearch"), u(params.ServerTools, "tools[5].somethingNew")}},
		{"text modality", `{` + contents + `,"generationConfig":{"responseModalities":["TEXT"]}}`, nil},
		{"image output", `{` + contents + `,"generationConfig":{"responseModalities":["TEXT","IMAGE"]}}`, []params.Use{u(params.OutputModalities, "generationConfig.responseModalities")}},
		{"speech", `{` + contents + `,"generationConfig":{"speechConfig":{"voiceConfig":{}}}}`, []params.Use{u(params.OutputModalities, "generationConfig.speechConfig")}},
		{"stored file", `{"contents":[{"role":"user","parts":[{"fileData":{"mimeType":"application/pdf","fileUri":"https://generativelanguage.googleapis.com/v1beta/files/abc"}},{"text":"sum up"}]}]}`,
			[]params.Use{u(params.Files, "contents[0].parts[0].fileData")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRequest([]byte(tt.body), "m", false)
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
