package openai

import (
	"encoding/json"
)

// Model is one entry of GET /v1/models.
type Model struct {
	ID                     string   `json:"id"`
	Object                 string   `json:"object"`
	Created                int64    `json:"created"`
	OwnedBy                string   `json:"owned_by"`
	SupportedEndpointTypes []string `json:"supported_endpoint_types,omitempty"`
	Lifecycle              string   `json:"lifecycle,omitempty"`
}

// ModelList renders models as OpenAI's list object.
func ModelList(models []Model) []byte {
	for i := range models {
		models[i].Object = "model"
	}
	if models == nil {
		models = []Model{}
	}
	b, _ := json.Marshal(struct {
		Object string  `json:"object"`
		Data   []Model `json:"data"`
	}{"list", models})
	return b
}

// ModelObject renders one model.
func ModelObject(m Model) []byte {
	m.Object = "model"
	b, _ := json.Marshal(m)
	return b
}
