package gemini

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/tollgate/tollgate/extproc/apierror"
)

// The Gemini API decodes requests as proto3 JSON, which accepts every field under its camelCase
// JSON name or its snake_case proto name. decodeObject and encodeObject give the wire types that
// leniency on the way in, keep the fields this package does not model (so a same-protocol request
// loses nothing), and always write camelCase on the way out. Free-form values (function
// arguments, schemas) are json.RawMessage and are never renamed.

var jsonNull = []byte("null")

func isNull(raw []byte) bool { return bytes.Equal(bytes.TrimSpace(raw), jsonNull) }

// decodeObject decodes the JSON object data into dst, a pointer to a struct type without JSON
// methods, and returns the fields dst does not declare, keyed by their camelCase names. A null
// object leaves dst untouched; null fields are treated as absent, as proto3 JSON does.
func decodeObject(data []byte, dst any) (map[string]json.RawMessage, error) {
	if isNull(data) {
		return nil, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, err
	}
	known := jsonNames(reflect.TypeOf(dst).Elem())
	clean := true
	for k, v := range fields {
		if camel(k) != k || !known[k] || isNull(v) {
			clean = false
			break
		}
	}
	if clean {
		// The common case (what the SDKs send): decode directly, no second pass.
		return nil, json.Unmarshal(data, dst)
	}
	typed := make(map[string]json.RawMessage, len(fields))
	var extra map[string]json.RawMessage
	for k, v := range fields {
		if isNull(v) {
			continue
		}
		name, into := camel(k), typed
		if !known[name] {
			if extra == nil {
				extra = map[string]json.RawMessage{}
			}
			into = extra
		}
		if _, dup := into[name]; dup {
			return nil, fmt.Errorf("field %s is given twice", name)
		}
		into[name] = v
	}
	b, err := json.Marshal(typed)
	if err != nil {
		return nil, err
	}
	return extra, json.Unmarshal(b, dst)
}

// encodeObject marshals v, a struct value without JSON methods, and appends the extra fields in
// key order, so output is deterministic.
func encodeObject(v any, extra map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := b[:len(b)-1] // drop the closing brace
	for _, k := range keys {
		if len(out) > 1 {
			out = append(out, ',')
		}
		name, _ := json.Marshal(k)
		out = append(out, name...)
		out = append(out, ':')
		var compact bytes.Buffer
		if err := json.Compact(&compact, extra[k]); err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
		out = append(out, compact.Bytes()...)
	}
	return append(out, '}'), nil
}

// jsonNames lists the JSON names of t's fields.
func jsonNames(t reflect.Type) map[string]bool {
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names[name] = true
		}
	}
	return names
}

// camel turns a proto field name (response_mime_type) into its JSON name (responseMimeType).
func camel(s string) string {
	if !strings.Contains(s, "_") || strings.HasPrefix(s, "_") {
		return s
	}
	var b strings.Builder
	up := false
	for _, r := range s {
		switch {
		case r == '_':
			up = true
		case up:
			b.WriteString(strings.ToUpper(string(r)))
			up = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// jsonProblem describes a decoding error without echoing request content back at length; the
// field-naming errors of this package's own decoder pass as they are.
func jsonProblem(err error) string {
	if strings.HasPrefix(err.Error(), "field ") {
		return err.Error()
	}
	return apierror.JSONProblem(err)
}
