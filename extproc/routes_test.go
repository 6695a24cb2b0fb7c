package extproc

import "testing"

func TestClassifyCountTokens(t *testing.T) {
	tests := []struct {
		path  string
		kind  routeKind
		proto protocol
		model string
	}{
		{"/v1/messages/count_tokens", routeCountTokens, protoAnthropic, ""},
		{"/v1/messages/count_tokens?beta=true", routeCountTokens, protoAnthropic, ""},
		{"/v1beta/models/gemini-2.5-pro:countTokens", routeCountTokens, protoGemini, "gemini-2.5-pro"},
		{"/v1/models/eu%2Fgemini-2.5-pro:countTokens", routeCountTokens, protoGemini, "eu/gemini-2.5-pro"},
		{"/v1beta/models/models/m:countTokens?key=x", routeCountTokens, protoGemini, "m"},
		// Not a count: model paths with a colon, which a POST gets 404 not_found for.
		{"/v1beta/models/:countTokens", routeModel, protoGemini, ":countTokens"},
		{"/v1beta/models/m:countTokens:generateContent", routeModel, protoGemini, "m:countTokens:generateContent"},
		{"/v1/messages/count_tokens/x", routeUnknown, protoOpenAI, ""},
		// An unknown Gemini method is a model path with a colon, refused as not_found.
		{"/v1beta/models/m:embedContent", routeModel, protoGemini, "m:embedContent"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			ep := classify(tt.path)
			if ep.kind != tt.kind || (tt.kind != routeUnknown && (ep.proto != tt.proto || ep.modelID != tt.model)) {
				t.Errorf("classify = %+v, want kind %d proto %s model %q", ep, tt.kind, tt.proto, tt.model)
			}
		})
	}
}
