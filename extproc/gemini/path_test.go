package gemini

import "testing"

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
