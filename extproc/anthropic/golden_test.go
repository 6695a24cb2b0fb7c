package anthropic_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite golden files")

// archive is a txtar file (golang.org/x/tools/txtar): a comment, then "-- name --" sections. Inputs are written by hand
// from Anthropic's and OpenAI's published examples; the other sections are golden output,
// rewritten with -update.
type archive struct {
	path    string
	comment string
	names   []string
	files   map[string][]byte
}

func readArchive(t *testing.T, path string) *archive {
	t.Helper()
	ar, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a := &archive{path: path, comment: string(ar.Comment), files: map[string][]byte{}}
	for _, f := range ar.Files {
		a.names = append(a.names, f.Name)
		a.files[f.Name] = f.Data
	}
	return a
}

func (a *archive) input(t *testing.T, name string) []byte {
	t.Helper()
	b, ok := a.files[name]
	if !ok {
		t.Fatalf("%s: no section %q", a.path, name)
	}
	return b
}

// check compares got (JSON, indented for review) with section name, or stores it with -update.
func (a *archive) check(t *testing.T, name string, got []byte) {
	t.Helper()
	got = indentJSON(t, got)
	if *update {
		if _, ok := a.files[name]; !ok {
			a.names = append(a.names, name)
		}
		a.files[name] = got
		return
	}
	want, ok := a.files[name]
	if !ok {
		t.Fatalf("%s: no golden section %q (run with -update)", a.path, name)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %s differs:\ngot:\n%s\nwant:\n%s", a.path, name, got, want)
	}
}

func (a *archive) save(t *testing.T) {
	t.Helper()
	if !*update {
		return
	}
	ar := &txtar.Archive{Comment: []byte(a.comment)}
	for _, n := range a.names {
		ar.Files = append(ar.Files, txtar.File{Name: n, Data: a.files[n]})
	}
	if err := os.WriteFile(a.path, txtar.Format(ar), 0o644); err != nil {
		t.Fatal(err)
	}
}

func indentJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func archives(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.txtar"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures in testdata/%s: %v", dir, err)
	}
	return paths
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenFile compares got with a whole golden file, or writes it with -update.
func goldenFile(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\ngot:\n%s", path, got)
	}
}
