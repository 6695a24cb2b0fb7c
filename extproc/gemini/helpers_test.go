package gemini

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite golden sections of testdata/*.txtar")

// archive is a txtar fixture (golang.org/x/tools/txtar): a comment (which says where the input
// comes from), then sections "-- name --". Inputs and expected outputs sit together.
type archive struct {
	comment  string
	names    []string
	sections map[string][]byte
}

func readArchive(t testing.TB, path string) *archive {
	t.Helper()
	ar, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a := &archive{comment: string(ar.Comment), sections: map[string][]byte{}}
	for _, f := range ar.Files {
		a.names = append(a.names, f.Name)
		a.sections[f.Name] = f.Data
	}
	return a
}

func (a *archive) write(t *testing.T, path string) {
	t.Helper()
	ar := &txtar.Archive{Comment: []byte(a.comment)}
	for _, n := range a.names {
		ar.Files = append(ar.Files, txtar.File{Name: n, Data: a.sections[n]})
	}
	if err := os.WriteFile(path, txtar.Format(ar), 0o644); err != nil {
		t.Fatal(err)
	}
}

// golden compares got with section name of the archive at path, or rewrites it under -update.
func golden(t *testing.T, path string, a *archive, name string, got []byte) {
	t.Helper()
	if *update {
		if _, ok := a.sections[name]; !ok {
			a.names = append(a.names, name)
		}
		a.sections[name] = got
		a.write(t, path)
		return
	}
	want, ok := a.sections[name]
	if !ok {
		t.Fatalf("%s: no section %q (run with -update)", path, name)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: section %q differs\n got: %s\nwant: %s", path, name, got, want)
	}
}

// indent pretty-prints JSON for readable golden sections.
func indent(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("indent %s: %v", b, err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return indent(t, b)
}

func fixtures(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in testdata/%s: %v", dir, err)
	}
	return files
}

func fixtureName(path string) string { return strings.TrimSuffix(filepath.Base(path), ".txtar") }
