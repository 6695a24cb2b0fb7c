package gemini

import (
	"bytes"
	"encoding/json"
	"strings"
)

// jsonSchemaFromOpenAPI converts a Gemini Schema (https://ai.google.dev/api/caching#Schema, an
// OpenAPI 3.0 subset) into the JSON Schema the pivot's providers expect: the SDKs' upper-case
// type names ("OBJECT") become lower-case, "nullable": true becomes a "null" type alternative,
// snake_case keywords become camelCase, and Gemini-only propertyOrdering is dropped. Property
// names, enum values and examples are left alone.
func jsonSchemaFromOpenAPI(raw json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(convertSchema(v))
}

func convertSchema(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	for k, val := range m {
		switch k = camel(k); k {
		case "propertyOrdering":
		case "type":
			if s, ok := val.(string); ok {
				if s = strings.ToLower(s); s != "type_unspecified" {
					out[k] = s
				}
			} else {
				out[k] = val
			}
		case "properties":
			if props, ok := val.(map[string]any); ok {
				conv := make(map[string]any, len(props))
				for name, p := range props {
					conv[name] = convertSchema(p)
				}
				val = conv
			}
			out[k] = val
		case "items":
			out[k] = convertSchema(val)
		case "anyOf":
			if list, ok := val.([]any); ok {
				conv := make([]any, len(list))
				for i, s := range list {
					conv[i] = convertSchema(s)
				}
				val = conv
			}
			out[k] = val
		default:
			out[k] = val
		}
	}
	if nullable, _ := out["nullable"].(bool); nullable {
		if t, ok := out["type"].(string); ok {
			out["type"] = []any{t, "null"}
		}
	}
	delete(out, "nullable")
	return out
}
