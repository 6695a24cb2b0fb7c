package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads and validates the catalog at path. Provider credentials are read from the
// environment through getenv (os.Getenv when nil). Errors name path, line and field.
func Load(path string, getenv func(string) string) (*Catalog, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	return Parse(path, raw, getenv)
}

// Parse validates a catalog held in memory; name stands for the file in every Problem. All
// problems are reported at once, each as a Problem joined with errors.Join, in document order.
// Warnings (a credential variable that is unset, a fallback that can never be used) do not fail
// the parse; they are available from Catalog.Warnings.
func Parse(name string, raw []byte, getenv func(string) string) (*Catalog, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	ps := &problems{file: name}
	root := ps.document(raw)
	if root == nil {
		return nil, ps.err()
	}
	ps.root = root
	// The document is decoded as a node tree first so every value keeps its line; the shape
	// check reports unknown keys and mistyped values with those lines, then the tree is decoded
	// into the structs for the semantic checks.
	ps.shape(root, reflect.TypeFor[Catalog](), nil)
	var c Catalog
	if err := root.Decode(&c); err != nil && len(ps.errs) == 0 {
		// The shape check mirrors the decoder; this is a backstop should they ever disagree.
		ps.yamlError(err, path{})
	}
	shapeErrs := len(ps.errs)
	c.validate(ps, getenv)
	ps.dropConsequences(shapeErrs)
	if len(ps.errs) > 0 {
		return nil, ps.err()
	}
	c.warnings = sorted(ps.warnings)
	c.chains = c.buildChains()
	return &c, nil
}

func (ps *problems) err() error {
	errs := make([]error, 0, len(ps.errs))
	for _, p := range sorted(ps.errs) {
		errs = append(errs, p)
	}
	return errors.Join(errs...)
}

// document parses raw into its single YAML document and returns the top-level node, or nil
// after recording why there is none.
func (ps *problems) document(raw []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			// Most likely a file caught half-written by a reload; never mistake it for "no models".
			ps.errorAt(1, nil, "the file is empty")
		} else {
			ps.yamlError(err, nil)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		ps.yamlError(err, nil)
	default:
		ps.errorAt(extra.Line, nil, "only one YAML document is allowed")
	}
	if len(doc.Content) == 0 {
		ps.errorAt(1, nil, "the file is empty")
		return nil
	}
	return doc.Content[0]
}

// yamlLine matches the position the YAML library puts in its messages.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError records an error of the YAML library, moving its "line N:" into the Problem.
func (ps *problems) yamlError(err error, at path) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, msg := range msgs {
		line := 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		ps.errorAt(line, at, "%s", strings.TrimPrefix(msg, "yaml: "))
	}
}

// shape checks node n against the Go type t it will be decoded into: mappings for structs and
// maps, sequences for slices, scalars that parse as the field's type, and no unknown or
// repeated keys. It replaces the decoder's KnownFields, which knows lines but not field paths
// and stops at the first document-level problem.
func (ps *problems) shape(n *yaml.Node, t reflect.Type, at path) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value decodes to the zero value, which validation then judges
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			ps.errorAt(n.Line, at, "want a mapping, got %s", describe(n))
			return
		}
		fields, names := yamlFields(t)
		ps.mapping(n, at, func(key string, v *yaml.Node, keyLine int) {
			ft, ok := fields[key]
			if !ok {
				ps.errorAt(keyLine, at.key(key), "unknown key (known: %s)", strings.Join(names, ", "))
				return
			}
			ps.shape(v, ft, at.key(key))
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			ps.errorAt(n.Line, at, "want a mapping, got %s", describe(n))
			return
		}
		ps.mapping(n, at, func(key string, v *yaml.Node, _ int) { ps.shape(v, t.Elem(), at.key(key)) })
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ps.errorAt(n.Line, at, "want a list, got %s", describe(n))
			return
		}
		for i, e := range n.Content {
			ps.shape(e, t.Elem(), at.idx(i))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			ps.errorAt(n.Line, at, "want a single value, got %s", describe(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			ps.errorAt(n.Line, at, "%q is not %s", n.Value, typeName(t))
		}
	}
}

// mapping calls fn for each key of n in order, reporting repeated keys (which the YAML decoder
// would also refuse, without saying which field).
func (ps *problems) mapping(n *yaml.Node, at path, fn func(key string, v *yaml.Node, keyLine int)) {
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			ps.errorAt(k.Line, at, "keys must be plain names, got %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			// "<<: *anchor" merges a mapping (or a list of them) into this one.
			for _, m := range mergeSources(v) {
				ps.mapping(m, at, fn)
			}
			continue
		}
		if first, dup := seen[k.Value]; dup {
			ps.errorAt(k.Line, at.key(k.Value), "key repeated (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		fn(k.Value, v, k.Line)
	}
}

func mergeSources(v *yaml.Node) []*yaml.Node {
	v = deref(v)
	switch v.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{v}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, e := range v.Content {
			if e = deref(e); e.Kind == yaml.MappingNode {
				out = append(out, e)
			}
		}
		return out
	}
	return nil
}

// yamlFields maps the yaml names of t's fields to their types, with the names in declaration
// order for the "known:" hint.
func yamlFields(t reflect.Type) (map[string]reflect.Type, []string) {
	fields := make(map[string]reflect.Type, t.NumField())
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		fields[name] = f.Type
		names = append(names, name)
	}
	return fields, names
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a non-negative integer up to %d", uint64(1)<<(t.Bits())-1)
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return "a " + t.String()
}

// dropConsequences removes semantic errors about a field whose shape was already reported
// (first n errors): a mistyped max_output_tokens decodes as 0 and must not also be reported as
// "must be positive".
func (ps *problems) dropConsequences(n int) {
	if n == 0 {
		return
	}
	shapeFields := make([]string, n)
	for i, p := range ps.errs[:n] {
		shapeFields[i] = p.Field
	}
	kept := ps.errs[:n]
	for _, p := range ps.errs[n:] {
		if !under(p.Field, shapeFields) {
			kept = append(kept, p)
		}
	}
	ps.errs = kept
}

func under(field string, prefixes []string) bool {
	for _, pre := range prefixes {
		if field == pre || strings.HasPrefix(field, pre+".") || strings.HasPrefix(field, pre+"[") {
			return true
		}
	}
	return false
}
