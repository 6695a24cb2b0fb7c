package anthropic

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/params"
)

func TestGoverned(t *testing.T) {
	const base = `"model":"m","max_tokens":10`
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name string
		body string
		want []params.Use
	}{
		{"plain", `{` + base + `,` + msgs + `}`, nil},
		{"standard_only tier", `{` + base + `,"service_tier":"standard_only",` + msgs + `}`, nil},
		{"auto tier", `{` + base + `,"service_tier":"auto",` + msgs + `}`, []params.Use{u(params.ServiceTier, "service_tier")}},
		{"metadata", `{` + base + `,"metadata":{"user_id":"u"},` + msgs + `}`, []params.Use{u(params.Metadata, "metadata")}},
		{"mcp servers", `{` + base + `,"mcp_servers":[{"type":"url","url":"https://mcp.example.com/sse","name":"x"}],` + msgs + `}`, []params.Use{u(params.MCPServers, "mcp_servers")}},
		{"container", `{` + base + `,"container":"container_011CP",` + msgs + `}`, []params.Use{u(params.Container, "container")}},
		{"client tools", `{` + base + `,"tools":[{"name":"f","input_schema":{"type":"object"}},{"type":"bash_20250124","name":"bash"},{"type":"text_editor_20250728","name":"str_replace_based_edit_tool"},{"type":"computer_20250124","name":"computer","display_width_px":1,"display_height_px":1}],` + msgs + `}`, nil},
		{"server tools", `{` + base + `,"tools":[{"name":"f","input_schema":{"type":"object"}},{"type":"web_search_20250305","name":"web_search"},{"type":"code_execution_20250825","name":"code_execution"},{"type":"web_fetch_20250910","name":"web_fetch"},{"type":"tool_search_tool_regex_20251119","name":"tool_search"}],` + msgs + `}`,
			[]params.Use{u(params.WebSearch, "tools[1]"), u(params.CodeExecution, "tools[2]"), u(params.WebFetch, "tools[3]"), u(params.ServerTools, "tools[4]")}},
		{"file source", `{` + base + `,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"file","file_id":"file_011"}},{"type":"text","text":"sum up"}]}]}`,
			[]params.Use{u(params.Files, "messages[0].content[0].source")}},
		{"file in a tool result", `{` + base + `,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"image","source":{"type":"file","file_id":"file_012"}}]}]}]}`,
			[]params.Use{u(params.Files, "messages[2].content[0].content[0].source")}},
		{"harmless extras", `{` + base + `,"system":"s","temperature":0.5,"thinking":{"type":"disabled"},"cache_control":{"type":"ephemeral"},"context_management":{},"output_config":{"effort":"low"},` + msgs + `}`, nil},
		{"priced-above-catalog fields", `{` + base + `,"speed":"fast","inference_geo":"us","fallbacks":[{"model":"claude-x"}],` + msgs + `}`,
			[]params.Use{u(params.ProviderFallbacks, "fallbacks"), u(params.InferenceGeo, "inference_geo"), u(params.Speed, "speed")}},
		{"unknown field", `{` + base + `,"diagnostics":{},` + msgs + `}`, []params.Use{u("field:diagnostics", "diagnostics")}},
		{"base64 image", `{` + base + `,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}}]}]}`, nil},
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

func TestAllowedBetas(t *testing.T) {
	allowed := params.Allowed{"anthropic-beta:context-1m-2025-08-07"}
	tests := []struct {
		name, header string
		want         string
		refused      bool
	}{
		{"empty", "", "", false},
		{"harmless", "interleaved-thinking-2025-05-14", "interleaved-thinking-2025-05-14", false},
		{"harmless list, spaces and repeats", " prompt-caching-2024-07-31 ,fine-grained-tool-streaming-2025-05-14,prompt-caching-2024-07-31,", "prompt-caching-2024-07-31,fine-grained-tool-streaming-2025-05-14", false},
		{"allowed long context", "context-1m-2025-08-07,token-efficient-tools-2025-02-19", "context-1m-2025-08-07,token-efficient-tools-2025-02-19", false},
		{"mcp client", "mcp-client-2025-04-04", "", true},
		{"one bad value among good", "interleaved-thinking-2025-05-14,files-api-2025-04-14", "", true},
		{"code execution", "code-execution-2025-08-25", "", true},
		{"unknown", "claude-code-20250219", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := allowedBetas(tt.header, allowed)
			if (err != nil) != tt.refused {
				t.Fatalf("err = %v, refused %v", err, tt.refused)
			}
			if err != nil {
				if err.Status != 400 || err.Code != "invalid_params" || err.Param != "anthropic-beta" {
					t.Errorf("refusal = %+v", err)
				}
				return
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := allowedBetas("context-1m-2025-08-07", nil); err == nil {
		t.Error("context-1m passes a model that does not allow it")
	}
}

// allowedBetas is what the gateway does with a header for one model: the governed values
// checked against allowed, the values forwarded joined.
func allowedBetas(header string, allowed params.Allowed) (string, *apierror.Error) {
	uses, values := Betas(header)
	if err := params.Check(uses, allowed, "claude"); err != nil {
		return "", err
	}
	return strings.Join(values, ","), nil
}

func u(name, param string) params.Use { return params.Use{Name: name, Param: param} }
