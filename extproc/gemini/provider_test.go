package gemini

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/openai"
)

func TestProviderResponseGolden(t *testing.T) {
	for _, path := range fixtures(t, "provider") {
		t.Run(fixtureName(path), func(t *testing.T) {
			a := readArchive(t, path)
			body := a.sections["response.json"]
			c, bu, err := DecodeResponse(body, "canonical-model")
			if err != nil {
				t.Fatal(err)
			}
			c.Created = 0
			golden(t, path, a, "pivot.json", mustJSON(t, c))
			golden(t, path, a, "billing.json", mustJSON(t, bu))

			out, bu2, finish, err := RewriteResponse(body, "canonical-model")
			if err != nil {
				t.Fatal(err)
			}
			if bu2 != bu || finish != c.Choices[0].FinishReason {
				t.Errorf("RewriteResponse usage %+v finish %q; DecodeResponse %+v %q", bu2, finish, bu, c.Choices[0].FinishReason)
			}
			golden(t, path, a, "rewritten.json", indent(t, out))
		})
	}
}

// TestUsageMapping pins the arithmetic: Gemini's prompt count includes cached tokens and its
// candidates count excludes thoughts; billing's counts are disjoint.
func TestUsageMapping(t *testing.T) {
	tests := []struct {
		name    string
		meta    UsageMetadata
		pivot   openai.Usage
		billing billing.Usage
	}{
		{
			name:    "plain",
			meta:    UsageMetadata{PromptTokenCount: 10, CandidatesTokenCount: 5, TotalTokenCount: 15},
			pivot:   openai.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15},
			billing: billing.Usage{InputTokens: 10, OutputTokens: 5},
		},
		{
			name: "cached and thoughts",
			meta: UsageMetadata{PromptTokenCount: 1200, CandidatesTokenCount: 10, TotalTokenCount: 1250, CachedContentTokenCount: 1000, ThoughtsTokenCount: 40},
			pivot: openai.Usage{PromptTokens: 1200, CompletionTokens: 50, TotalTokens: 1250,
				PromptTokensDetails:     &openai.PromptTokensDetails{CachedTokens: 1000},
				CompletionTokensDetails: &openai.CompletionTokensDetails{ReasoningTokens: 40}},
			billing: billing.Usage{InputTokens: 200, CacheReadTokens: 1000, OutputTokens: 10, ReasoningTokens: 40},
		},
		{
			name:    "tool use prompt",
			meta:    UsageMetadata{PromptTokenCount: 10, CandidatesTokenCount: 5, ToolUsePromptTokenCount: 100, TotalTokenCount: 115},
			pivot:   openai.Usage{PromptTokens: 110, CompletionTokens: 5, TotalTokens: 115},
			billing: billing.Usage{InputTokens: 110, OutputTokens: 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, b := usages(tt.meta)
			if fmt.Sprint(mustJSON(t, u)) != fmt.Sprint(mustJSON(t, tt.pivot)) || b != tt.billing {
				t.Errorf("got %+v / %+v; want %+v / %+v", u, b, tt.pivot, tt.billing)
			}
			// And back: what a Gemini client is shown for the pivot usage.
			m := usageMetadata(u)
			if m.PromptTokenCount != u.PromptTokens || m.CachedContentTokenCount != tt.meta.CachedContentTokenCount ||
				m.ThoughtsTokenCount != tt.meta.ThoughtsTokenCount || m.CandidatesTokenCount != tt.meta.CandidatesTokenCount {
				t.Errorf("usageMetadata(%+v) = %+v", u, m)
			}
		})
	}
}

func TestBuildRequestGolden(t *testing.T) {
	for _, path := range fixtures(t, "fromopenai") {
		t.Run(fixtureName(path), func(t *testing.T) {
			a := readArchive(t, path)
			r, err := openai.ParseChatRequest(a.sections["openai.json"])
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
			r, err := openai.ParseChatRequest([]byte(tt.body))
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

func TestDecodeResponseMalformed(t *testing.T) {
	for _, body := range []string{``, `{`, `[]`, `{"candidates":"x"}`} {
		if _, _, err := DecodeResponse([]byte(body), "m"); err == nil {
			t.Errorf("DecodeResponse(%q): no error", body)
		}
	}
	_, _, err := DecodeResponse([]byte(`{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}`), "m")
	var e *apierror.Error
	if !errors.As(err, &e) || e.Status != 429 || e.Code != apierror.CodeRateLimit {
		t.Errorf("error body: %v", err)
	}
	if _, _, _, err := RewriteResponse([]byte(`null`), "m"); err == nil {
		t.Error("RewriteResponse(null): no error")
	}
}
