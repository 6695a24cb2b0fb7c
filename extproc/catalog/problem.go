package catalog

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a catalog file, located so an operator can go straight to it.
// Parse returns every error-level Problem joined with errors.Join; Catalog.Warnings returns the
// rest.
type Problem struct {
	File string
	// Line is 1-based; it points at the offending value, or at the enclosing mapping when a
	// required key is missing. 0 when the position is unknown.
	Line int
	// Field is the path of the offending value, such as models[2].fallbacks[0].
	Field   string
	Message string
}

// Error formats the problem as path:line: field: problem, the shape editors and CI annotate.
func (p Problem) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Field, p.Message)
}

// path addresses a node of the catalog document: string segments are mapping keys, int
// segments sequence indexes. It doubles as the Field of a Problem.
type path []any

func (p path) key(k string) path { return append(p[:len(p):len(p)], k) }
func (p path) idx(i int) path    { return append(p[:len(p):len(p)], i) }

func (p path) String() string {
	var b strings.Builder
	for _, s := range p {
		switch s := s.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(s) + "]")
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		}
	}
	if b.Len() == 0 {
		return "(document)"
	}
	return b.String()
}

// problems collects what validation finds. Errors and warnings are kept apart because only
// errors refuse a catalog; a missing credential must not stop a reload of everything else.
type problems struct {
	file     string
	root     *yaml.Node // the document's top-level node; nil when it did not parse
	errs     []Problem
	warnings []Problem
}

func (ps *problems) errorf(at path, format string, args ...any) {
	ps.errs = append(ps.errs, ps.problem(at, format, args...))
}

func (ps *problems) warnf(at path, format string, args ...any) {
	ps.warnings = append(ps.warnings, ps.problem(at, format, args...))
}

// errorAt records an error whose line is already known (a key node, a YAML syntax error).
func (ps *problems) errorAt(line int, at path, format string, args ...any) {
	ps.errs = append(ps.errs, Problem{File: ps.file, Line: line, Field: at.String(), Message: fmt.Sprintf(format, args...)})
}

func (ps *problems) problem(at path, format string, args ...any) Problem {
	return Problem{File: ps.file, Line: ps.line(at), Field: at.String(), Message: fmt.Sprintf(format, args...)}
}

// line finds the line of the node at p, or of the deepest node on the way when the rest is
// absent (a required key that was left out points at its mapping).
func (ps *problems) line(p path) int {
	n := ps.root
	if n == nil {
		return 0
	}
	for _, seg := range p {
		next := child(n, seg)
		if next == nil {
			break
		}
		n = next
	}
	return n.Line
}

// child returns the value under key (string) or index (int) of n, following aliases.
func child(n *yaml.Node, seg any) *yaml.Node {
	n = deref(n)
	switch s := seg.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == s {
				return n.Content[i+1]
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && s < len(n.Content) {
			return n.Content[s]
		}
	}
	return nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// sorted returns ps in document order, so the report reads top to bottom; problems on one line
// keep the order validation found them in.
func sorted(ps []Problem) []Problem {
	out := append([]Problem(nil), ps...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}
