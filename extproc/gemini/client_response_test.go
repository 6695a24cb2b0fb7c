package gemini

import (
	"encoding/json"
	"testing"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/openai"
)

func TestErrorBody(t *testing.T) {
	tests := []struct {
		name   string
		err    *apierror.Error
		status string
	}{
		{"invalid", apierror.InvalidParam("contents", "Parameter contents is required"), "INVALID_ARGUMENT"},
		{"auth", apierror.New(401, apierror.CodeAuthInvalid, "bad key"), "UNAUTHENTICATED"},
		{"credit", apierror.New(402, apierror.CodeInsufficientQuota, "no credit"), "FAILED_PRECONDITION"},
		{"disabled", apierror.New(403, apierror.CodeGatewayDisabled, "off"), "PERMISSION_DENIED"},
		{"model", apierror.New(404, apierror.CodeInvalidModel, "no such model"), "NOT_FOUND"},
		{"too large", apierror.New(413, apierror.CodeRequestTooLarge, "big"), "INVALID_ARGUMENT"},
		{"rate", apierror.New(429, apierror.CodeRateLimit, "slow down"), "RESOURCE_EXHAUSTED"},
		{"internal", apierror.New(500, apierror.CodeInternal, "oops"), "INTERNAL"},
		{"provider", apierror.New(502, apierror.CodeProviderError, "upstream"), "UNAVAILABLE"},
		{"unavailable", apierror.New(503, apierror.CodeServiceUnavailable, "none"), "UNAVAILABLE"},
		{"timeout", apierror.New(504, apierror.CodeProviderTimeout, "slow"), "DEADLINE_EXCEEDED"},
		{"provider timeout", apierror.New(524, apierror.CodeProviderTimeout, "slow"), "DEADLINE_EXCEEDED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
					Status  string `json:"status"`
					Details []struct {
						Type     string            `json:"@type"`
						Reason   string            `json:"reason"`
						Metadata map[string]string `json:"metadata"`
					} `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal(ErrorBody(tt.err), &got); err != nil {
				t.Fatal(err)
			}
			e := got.Error
			if e.Code != tt.err.Status || e.Status != tt.status || e.Message != tt.err.Message {
				t.Errorf("got %+v, want code %d status %s", e, tt.err.Status, tt.status)
			}
			if len(e.Details) != 1 || e.Details[0].Type != "type.googleapis.com/google.rpc.ErrorInfo" || e.Details[0].Metadata["param"] != tt.err.Param {
				t.Errorf("details %+v", e.Details)
			}
		})
	}
	frame := string(StreamError([]byte("x"), apierror.New(502, apierror.CodeProviderError, "m")))
	if want := "xdata: " + string(ErrorBody(apierror.New(502, apierror.CodeProviderError, "m"))) + "\n\n"; frame != want {
		t.Errorf("StreamError = %q, want %q", frame, want)
	}
}

func TestEncodeResponseGolden(t *testing.T) {
	for _, path := range fixtures(t, "response") {
		t.Run(fixtureName(path), func(t *testing.T) {
			a := readArchive(t, path)
			var c openai.ChatCompletion
			if err := json.Unmarshal(a.sections["completion.json"], &c); err != nil {
				t.Fatal(err)
			}
			golden(t, path, a, "gemini.json", indent(t, EncodeResponse(&c, "canonical-model", true)))
		})
	}
}

// TestModelList checks the Gemini model list and model shapes: the "models/" name, the base id
// without the eu/ prefix, the lifecycle as version, and generation methods only for models
// offered through the Gemini endpoint.
func TestModelList(t *testing.T) {
	models := []openai.Model{
		{ID: "eu/gemini-2.5-pro", OwnedBy: "google", SupportedEndpointTypes: []string{"chat_completions", "gemini"}, Lifecycle: "GA", MaxOutputTokens: 65536},
		{ID: "gpt-5.4", OwnedBy: "openai", SupportedEndpointTypes: []string{"chat_completions"}, Lifecycle: "Preview", MaxOutputTokens: 128000},
	}
	pro := `{"name":"models/eu/gemini-2.5-pro","baseModelId":"gemini-2.5-pro","version":"ga","displayName":"eu/gemini-2.5-pro","outputTokenLimit":65536,"supportedGenerationMethods":["generateContent","streamGenerateContent"]}`
	gpt := `{"name":"models/gpt-5.4","baseModelId":"gpt-5.4","version":"preview","displayName":"gpt-5.4","outputTokenLimit":128000,"supportedGenerationMethods":[]}`
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"list", ModelList(models), `{"models":[` + pro + `,` + gpt + `]}`},
		{"empty list", ModelList(nil), `{"models":[]}`},
		{"object", ModelObject(models[1]), gpt},
	}
	for _, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, tt.got, tt.want)
		}
	}
}
