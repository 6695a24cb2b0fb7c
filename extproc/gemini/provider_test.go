package gemini

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

func TestPath(t *testing.T) {
	tests := []struct {
		name, model string
		stream      bool
		want        string
	}{
		{"generate", "gemini-2.5-flash", false, "/v1beta/models/gemini-2.5-flash:generateContent"},
		{"stream", "gemini-2.5-flash", true, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"},
		{"models prefix", "models/gemini-2.5-pro", false, "/v1beta/models/gemini-2.5-pro:generateContent"},
		{"tuned", "tunedModels/my-model", false, "/v1beta/tunedModels/my-model:generateContent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Path(tt.model, tt.stream); got != tt.want {
				t.Errorf("Path(%q, %v) = %q, want %q", tt.model, tt.stream, got, tt.want)
			}
			if model, stream, ok := ParsePath(tt.want); tt.model[0] != 't' && (!ok || stream != tt.stream) {
				t.Errorf("ParsePath(Path(…)) = %q, %v, %v", model, stream, ok)
			}
		})
	}
}

func TestBuildRequestGolden(t *testing.T) {
	for _, path := range fixtures(t, "fromopenai") {
		t.Run(fixtureName(path), func(t *testing.T) {
			a := readArchive(t, path)
			r, err := openai.ParseRequest(a.sections["openai.json"])
			if err != nil {
				t.Fatal(err)
			}
			body, err := BuildRequest(r, "m")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, path, a, "gemini.json", indent(t, body))
			// What the gateway sends Gemini must pass the gateway's own Gemini validation.
			if _, err := ParseRequest(body, "gemini-2.5-flash", false); err != nil {
				t.Errorf("BuildRequest body fails ParseRequest: %v", err)
			}
		})
	}
}

func TestBuildRequestErrors(t *testing.T) {
	tests := []struct {
		name, body, param string
	}{
		{"unknown tool_call_id", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"nope","content":"r"}]}`, "messages[1].tool_call_id"},
		{"ftp image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}`, "messages[0].content[0].image_url"},
		{"bad tool_choice", `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}`, "tool_choice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := openai.ParseRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			_, err = BuildRequest(r, "m")
			var e *apierror.Error
			if !errors.As(err, &e) || e.Status != 400 || e.Param != tt.param {
				t.Fatalf("err = %v, want 400 naming %q", err, tt.param)
			}
		})
	}
}

// TestToolRoundTrip follows a tool call through the gateway both ways: a Gemini client's
// functionCall/functionResponse history goes to an OpenAI-kind provider through the pivot, and
// the pivot history comes back to Gemini with the same calls, names and responses.
func TestToolRoundTrip(t *testing.T) {
	a := readArchive(t, "testdata/client/function_calling.txtar")
	r, err := ParseRequest(a.sections["request.json"], "gemini-2.5-flash", false)
	if err != nil {
		t.Fatal(err)
	}
	pivot, err := r.ToPivot()
	if err != nil {
		t.Fatal(err)
	}
	body, err := BuildRequest(pivot, "m")
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseRequest(body, "gemini-2.5-flash", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Contents) != 3 {
		t.Fatalf("contents = %d, want 3", len(back.Contents))
	}
	call := back.Contents[1].Parts[0].FunctionCall
	resp := back.Contents[2].Parts[0].FunctionResponse
	if call == nil || resp == nil || call.Name != "set_light_values" || resp.Name != call.Name || resp.ID != call.ID {
		t.Fatalf("call %+v response %+v", call, resp)
	}
	if string(call.Args) != `{"brightness":25,"color_temp":"warm"}` || string(resp.Response) != `{"brightness":25,"colorTemperature":"warm"}` {
		t.Errorf("args %s response %s", call.Args, resp.Response)
	}
	if back.ToolConfig == nil || back.ToolConfig.FunctionCallingConfig.Mode != ModeAny {
		t.Errorf("toolConfig = %+v", back.ToolConfig)
	}

	// And a provider's function call answer rendered for the Gemini client keeps the id the
	// client will echo.
	c, _, err := DecodeResponse(readArchive(t, "testdata/provider/function_call.txtar").sections["response.json"], "m")
	if err != nil {
		t.Fatal(err)
	}
	var g GenerateContentResponse
	if err := json.Unmarshal(EncodeResponse(c, "m", true), &g); err != nil {
		t.Fatal(err)
	}
	fc := g.Candidates[0].Content.Parts[0].FunctionCall
	if fc == nil || fc.ID != c.Choices[0].Message.ToolCalls[0].ID || g.Candidates[0].FinishReason != FinishStop {
		t.Errorf("rendered %+v from %+v", g.Candidates[0], c.Choices[0])
	}
}
