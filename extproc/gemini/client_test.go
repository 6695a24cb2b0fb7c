package gemini

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		name, path string
		model      string
		stream, ok bool
	}{
		{"generate v1beta", "/v1beta/models/gemini-2.5-flash:generateContent", "gemini-2.5-flash", false, true},
		{"stream v1beta with alt", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "gemini-2.5-flash", true, true},
		{"stream without query", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", "gemini-2.5-pro", true, true},
		{"v1", "/v1/models/gemini-2.5-pro:generateContent", "gemini-2.5-pro", false, true},
		{"slash in model", "/v1beta/models/eu/gemini-2.5-pro:generateContent", "eu/gemini-2.5-pro", false, true},
		{"escaped slash", "/v1beta/models/eu%2Fgemini-2.5-pro:streamGenerateContent?alt=sse", "eu/gemini-2.5-pro", true, true},
		{"doubled models prefix", "/v1beta/models/models%2Fgemini-2.5-flash:generateContent", "gemini-2.5-flash", false, true},
		{"unknown method", "/v1beta/models/gemini-2.5-flash:countTokens", "", false, false},
		{"no method", "/v1beta/models/gemini-2.5-flash", "", false, false},
		{"empty model", "/v1beta/models/:generateContent", "", false, false},
		{"only models prefix", "/v1beta/models/models/:generateContent", "", false, false},
		{"other version", "/v2/models/gemini:generateContent", "", false, false},
		{"tuned models", "/v1beta/tunedModels/x:generateContent", "", false, false},
		{"openai path", "/v1/chat/completions", "", false, false},
		{"bad escape", "/v1beta/models/gem%zz:generateContent", "", false, false},
		{"control char", "/v1beta/models/gem%0Aini:generateContent", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model, stream, ok := ParsePath(tt.path)
			if model != tt.model || stream != tt.stream || ok != tt.ok {
				t.Errorf("ParsePath(%q) = %q, %v, %v; want %q, %v, %v", tt.path, model, stream, ok, tt.model, tt.stream, tt.ok)
			}
		})
	}
}

// TestClientGolden parses each reference request, checks the same-protocol body (rebuilt, in
// camelCase) and the pivot (rendered as the OpenAI body an OpenAI-kind provider would get).
func TestClientGolden(t *testing.T) {
	for _, path := range fixtures(t, "client") {
		t.Run(fixtureName(path), func(t *testing.T) {
			a := readArchive(t, path)
			r, err := ParseRequest(a.sections["request.json"], "gemini-2.5-flash", true)
			if err != nil {
				t.Fatal(err)
			}
			up, err := PassthroughBody(r, "m")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, path, a, "upstream.json", indent(t, up))

			// The rebuilt body parses back to the same body: nothing is lost or renamed twice.
			again, err := ParseRequest(up, "gemini-2.5-flash", true)
			if err != nil {
				t.Fatalf("reparse: %v", err)
			}
			if up2, _ := PassthroughBody(again, "m"); string(up2) != string(up) {
				t.Errorf("PassthroughBody is not stable:\n%s\n%s", up, up2)
			}

			c, err := r.ToPivot()
			if err != nil {
				t.Fatal(err)
			}
			if c.PromptBytes() <= 0 {
				t.Errorf("PromptBytes = %d", c.PromptBytes())
			}
			pivot, err := openai.BuildRequest(c, "gpt-5.4")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, path, a, "pivot.json", indent(t, pivot))
			// The pivot must be a valid OpenAI request in its own right.
			if _, err := openai.ParseRequest(pivot); err != nil {
				t.Errorf("pivot is not a valid chat request: %v", err)
			}
		})
	}
}

func TestParseRequestErrors(t *testing.T) {
	const user = `{"role":"user","parts":[{"text":"hi"}]}`
	tests := []struct {
		name, body, param string
	}{
		{"not json", `{`, ""},
		{"not an object", `[1]`, ""},
		{"null", `null`, ""},
		{"no contents", `{}`, "contents"},
		{"empty contents", `{"contents":[]}`, "contents"},
		{"bad role", `{"contents":[{"role":"assistant","parts":[{"text":"x"}]}]}`, "contents[0].role"},
		{"function role", `{"contents":[{"role":"function","parts":[{"text":"x"}]}]}`, "contents[0].role"},
		{"no parts", `{"contents":[{"role":"user"}]}`, "contents[0].parts"},
		{"empty part", `{"contents":[{"parts":[{}]}]}`, "contents[0].parts[0]"},
		{"null part", `{"contents":[{"parts":[null]}]}`, "contents[0].parts[0]"},
		{"last from model", `{"contents":[` + user + `,{"role":"model","parts":[{"text":"x"}]}]}`, "contents"},
		{"inline without data", `{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png"}}]}]}`, "contents[0].parts[0].inlineData"},
		{"call without name", `{"contents":[{"role":"model","parts":[{"functionCall":{"args":{}}}]},` + user + `]}`, "contents[0].parts[0].functionCall.name"},
		{"args not object", `{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f","args":[1]}}]},` + user + `]}`, "contents[0].parts[0].functionCall.args"},
		{"response not object", `{"contents":[{"parts":[{"functionResponse":{"name":"f","response":"x"}}]}]}`, "contents[0].parts[0].functionResponse.response"},
		{"temperature high", `{"contents":[` + user + `],"generationConfig":{"temperature":2.5}}`, "generationConfig.temperature"},
		{"temperature negative", `{"contents":[` + user + `],"generation_config":{"temperature":-1}}`, "generationConfig.temperature"},
		{"topP high", `{"contents":[` + user + `],"generationConfig":{"topP":1.5}}`, "generationConfig.topP"},
		{"topK fraction", `{"contents":[` + user + `],"generationConfig":{"topK":1.5}}`, "generationConfig.topK"},
		{"maxOutputTokens zero", `{"contents":[` + user + `],"generationConfig":{"maxOutputTokens":0}}`, "generationConfig.maxOutputTokens"},
		{"candidateCount 2", `{"contents":[` + user + `],"generationConfig":{"candidateCount":2}}`, "generationConfig.candidateCount"},
		{"both schemas", `{"contents":[` + user + `],"generationConfig":{"responseSchema":{},"responseJsonSchema":{}}}`, "generationConfig.responseSchema"},
		{"tool without name", `{"contents":[` + user + `],"tools":[{"functionDeclarations":[{"description":"x"}]}]}`, "tools[0].functionDeclarations[0].name"},
		{"bad mode", `{"contents":[` + user + `],"toolConfig":{"functionCallingConfig":{"mode":"SOMETIMES"}}}`, "toolConfig.functionCallingConfig.mode"},
		{"too long", `{"contents":[{"parts":[{"text":"` + strings.Repeat("a", openai.MaxMessageChars+1) + `"}]}]}`, "contents[0].parts"},
		{"wrong type", `{"contents":"hello"}`, ""},
		{"field twice", `{"contents":[` + user + `],"generationConfig":{"topP":0.5,"top_p":0.6}}`, ""},
		{"system without parts", `{"contents":[` + user + `],"systemInstruction":{"parts":[]}}`, "systemInstruction.parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest([]byte(tt.body), "m", false)
			var e *apierror.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *apierror.Error", err)
			}
			if e.Status != 400 || e.Code != apierror.CodeInvalidParams || e.Param != tt.param {
				t.Errorf("got %d %s param %q (%s); want 400 invalid_params param %q", e.Status, e.Code, e.Param, e.Message, tt.param)
			}
		})
	}
}

func TestParseRequestKeepsUnknownAndDropsModel(t *testing.T) {
	body := `{"model":"models/other","contents":[{"parts":[{"text":"hi","thought_signature":"c2ln"}]}],"cached_content":"cachedContents/x","labels":{"a_b":"c"}}`
	r, err := ParseRequest([]byte(body), "gemini-2.5-flash", false)
	if err != nil {
		t.Fatal(err)
	}
	up, err := PassthroughBody(r, "m")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"contents":[{"role":"user","parts":[{"text":"hi","thoughtSignature":"c2ln"}]}],"cachedContent":"cachedContents/x","labels":{"a_b":"c"}}`
	if string(up) != want {
		t.Errorf("PassthroughBody = %s\nwant %s", up, want)
	}
}

func TestToPivotErrors(t *testing.T) {
	const user = `{"role":"user","parts":[{"text":"hi"}]}`
	tests := []struct {
		name, body, param string
	}{
		{"unanswerable response", `{"contents":[{"parts":[{"functionResponse":{"name":"f","response":{}}}]}]}`, "contents[0].parts[0].functionResponse"},
		{"pdf", `{"contents":[{"parts":[{"inlineData":{"mimeType":"application/pdf","data":"AAAA"}}]}]}`, "contents[0].parts[0].inlineData.mimeType"},
		{"files api uri", `{"contents":[{"parts":[{"fileData":{"mimeType":"image/png","fileUri":"files/abc"}}]}]}`, "contents[0].parts[0].fileData"},
		{"google search", `{"contents":[` + user + `],"tools":[{"googleSearch":{}}]}`, "tools[0]"},
		{"image from model", `{"contents":[{"role":"model","parts":[{"inlineData":{"mimeType":"image/png","data":"AAAA"}}]},` + user + `]}`, "contents[0].parts[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRequest([]byte(tt.body), "m", false)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.ToPivot()
			var e *apierror.Error
			if !errors.As(err, &e) || e.Status != 400 || e.Param != tt.param {
				t.Fatalf("err = %v (param %q), want 400 naming %q", err, paramOf(e), tt.param)
			}
		})
	}
}

func paramOf(e *apierror.Error) string {
	if e == nil {
		return ""
	}
	return e.Param
}

func TestToPivotToolChoice(t *testing.T) {
	tools := `"tools":[{"functionDeclarations":[{"name":"a"},{"name":"b"}]}]`
	tests := []struct {
		name, config, want string
		tools              int
	}{
		{"auto", `{"mode":"AUTO"}`, `"auto"`, 2},
		{"none", `{"mode":"NONE"}`, `"none"`, 2},
		{"any", `{"mode":"ANY"}`, `"required"`, 2},
		{"any one name", `{"mode":"ANY","allowedFunctionNames":["b"]}`, `{"function":{"name":"b"},"type":"function"}`, 1},
		{"any two names", `{"mode":"ANY","allowed_function_names":["a","b"]}`, `"required"`, 2},
		{"validated", `{"mode":"VALIDATED"}`, `"auto"`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"contents":[{"parts":[{"text":"hi"}]}],` + tools + `,"toolConfig":{"functionCallingConfig":` + tt.config + `}}`
			r, err := ParseRequest([]byte(body), "m", false)
			if err != nil {
				t.Fatal(err)
			}
			c, err := r.ToPivot()
			if err != nil {
				t.Fatal(err)
			}
			if string(c.ToolChoice) != tt.want || len(c.Tools) != tt.tools {
				t.Errorf("tool_choice %s with %d tools; want %s with %d", c.ToolChoice, len(c.Tools), tt.want, tt.tools)
			}
		})
	}
}
