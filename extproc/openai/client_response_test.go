package openai

import "testing"

// TestModelListing checks OpenAI's model object and list shapes, and that the fields other
// protocols' listings need stay out of OpenAI's.
func TestModelListing(t *testing.T) {
	m := Model{ID: "eu/gpt-5.4", Created: 1767225600, OwnedBy: "openai", SupportedEndpointTypes: []string{"chat_completions"},
		Lifecycle: "GA", MaxOutputTokens: 128000}
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"object", ModelObject(m), `{"id":"eu/gpt-5.4","object":"model","created":1767225600,"owned_by":"openai","supported_endpoint_types":["chat_completions"],"lifecycle":"GA"}`},
		{"list", ModelList([]Model{{ID: "a", OwnedBy: "o"}}), `{"object":"list","data":[{"id":"a","object":"model","created":0,"owned_by":"o"}]}`},
		{"empty list", ModelList(nil), `{"object":"list","data":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("got  %s\nwant %s", tt.got, tt.want)
			}
		})
	}
}
