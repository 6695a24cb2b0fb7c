package extproc

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"

	"github.com/tollgate/tollgate/extproc/billing"
	"github.com/tollgate/tollgate/extproc/catalog"
)

var update = flag.Bool("update", false, "rewrite the golden sections of testdata/pairs")

// TestPairs drives every client protocol against every provider kind from one directory per pair,
// testdata/pairs/<client>_<provider>/, each case a txtar archive: the client's request and the
// provider's answer (JSON or an SSE stream) are inputs; the request the provider is sent, the
// answer the client gets and the usage read from it are golden sections, rewritten with -update.
// Every stream is also fed split at every byte boundary, as Envoy may deliver it, and must give
// the same bytes and the same usage as when fed whole.
func TestPairs(t *testing.T) {
	cat, err := catalog.Load("testdata/pairs/catalog.yaml", func(string) string { return "sk-test" })
	if err != nil {
		t.Fatal(err)
	}
	route, err := cat.Resolve("m")
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := filepath.Glob("testdata/pairs/*_*")
	if err != nil || len(dirs) != 9 {
		t.Fatalf("want the nine client × provider pairs, got %d (%v)", len(dirs), err)
	}
	for _, dir := range dirs {
		client, provider, _ := strings.Cut(filepath.Base(dir), "_")
		var backend *catalog.Backend
		for _, b := range route.Chain {
			if b.ProviderRef().Kind == provider {
				backend = b
			}
		}
		if backend == nil {
			t.Fatalf("%s: the catalog has no %s backend for m", dir, provider)
		}
		cases, _ := filepath.Glob(filepath.Join(dir, "*.txtar"))
		for _, path := range cases {
			t.Run(strings.TrimSuffix(strings.TrimPrefix(path, "testdata/pairs/"), ".txtar"), func(t *testing.T) {
				g := readGolden(t, path)
				stream := strings.HasSuffix(path, "_stream.txtar")
				req, perr := parseClient(pairEndpoint(t, client, stream), g.input(t, "request.json"), nil)
				if perr != nil {
					t.Fatalf("parse the client's request: %v", perr)
				}
				upPath, upBody, err := upstreamRequest(req, backend, backend.ModelRef())
				if err != nil {
					t.Fatalf("build the provider's request: %v", err)
				}
				g.check(t, "upstream.json", append([]byte(upPath+"\n"), indentJSON(t, upBody)...))

				proto := providerFor(backend)
				if !stream {
					out, u, finish, err := translateResponse(req, proto, g.input(t, "provider.json"), "m")
					if err != nil {
						t.Fatalf("translate the provider's answer: %v", err)
					}
					g.check(t, "client.json", stableTime(indentJSON(t, out)))
					g.check(t, "usage.json", usageJSON(t, u, true, finish))
					g.save(t)
					return
				}
				sse := g.input(t, "provider.sse")
				whole := feedStream(t, req, proto, sse)
				g.check(t, "client.sse", whole.out)
				g.check(t, "usage.json", usageJSON(t, whole.usage, whole.final, whole.finish))
				g.save(t)
				for i := 1; i < len(sse); i++ {
					if got := feedStream(t, req, proto, sse[:i], sse[i:]); !bytes.Equal(got.out, whole.out) || got.usage != whole.usage || got.final != whole.final || got.finish != whole.finish {
						t.Fatalf("split at byte %d: the client gets\n%s\n%+v; fed whole:\n%s\n%+v", i, got.out, got, whole.out, whole)
					}
				}
			})
		}
	}
}

// fed is what a client receives from a stream, and the usage read from it.
type fed struct {
	out          []byte
	usage        billing.Usage
	seen, final  bool
	finish       string
	contentBytes int64
}

// feedStream feeds the provider's stream in the given chunks, the last marked as the end.
func feedStream(t *testing.T, req *clientRequest, provider providerCodec, chunks ...[]byte) fed {
	t.Helper()
	p := newStreamProcessor(req, provider, "m")
	var f fed
	for i, c := range chunks {
		b, err := p.Feed(c, i == len(chunks)-1)
		if err != nil {
			t.Fatalf("feed: %v", err)
		}
		f.out = append(f.out, b...)
	}
	f.out = stableTime(f.out)
	f.usage, f.seen, f.final = p.Usage()
	f.finish, f.contentBytes = p.FinishReason(), p.ContentBytes()
	return f
}

// pairEndpoint is the endpoint a client of protocol name calls; Gemini's path decides streaming.
func pairEndpoint(t *testing.T, name string, stream bool) endpoint {
	t.Helper()
	path := map[string]string{"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "gemini": "/v1beta/models/m:generateContent"}[name]
	if name == "gemini" && stream {
		path = "/v1beta/models/m:streamGenerateContent?alt=sse"
	}
	ep := classify(path)
	if ep.kind == routeUnknown {
		t.Fatalf("no endpoint for client %q", name)
	}
	return ep
}

// nowCreated matches a "created" time the translation took from the clock (within a day of now),
// not from the provider's answer.
var nowCreated = regexp.MustCompile(`"created": ?(\d{10})\b`)

// stableTime replaces clock-derived "created" times with NOW so that goldens do not change.
func stableTime(b []byte) []byte {
	now := time.Now().Unix()
	return nowCreated.ReplaceAllFunc(b, func(m []byte) []byte {
		v, _ := strconv.ParseInt(string(nowCreated.FindSubmatch(m)[1]), 10, 64)
		if v > now-86400 && v < now+86400 {
			return []byte(`"created":"NOW"`)
		}
		return m
	})
}

func usageJSON(t *testing.T, u billing.Usage, final bool, finish string) []byte {
	t.Helper()
	b, err := json.MarshalIndent(struct {
		Usage        billing.Usage
		Final        bool
		FinishReason string
	}{u, final, finish}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func indentJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return append(out.Bytes(), '\n')
}

// golden is one txtar case: hand-written inputs and golden outputs.
type golden struct {
	path    string
	archive *txtar.Archive
	changed bool
}

func readGolden(t *testing.T, path string) *golden {
	t.Helper()
	a, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return &golden{path: path, archive: a}
}

func (g *golden) input(t *testing.T, name string) []byte {
	t.Helper()
	for _, f := range g.archive.Files {
		if f.Name == name {
			return f.Data
		}
	}
	t.Fatalf("%s: no section %q", g.path, name)
	return nil
}

// check compares got with the golden section name, or records it with -update.
func (g *golden) check(t *testing.T, name string, got []byte) {
	t.Helper()
	for i, f := range g.archive.Files {
		if f.Name != name {
			continue
		}
		if *update {
			g.archive.Files[i].Data, g.changed = got, true
		} else if !bytes.Equal(f.Data, got) {
			t.Errorf("%s: section %s differs\n got: %s\nwant: %s", g.path, name, got, f.Data)
		}
		return
	}
	if !*update {
		t.Errorf("%s: no golden section %s (run with -update)", g.path, name)
		return
	}
	g.archive.Files = append(g.archive.Files, txtar.File{Name: name, Data: got})
	g.changed = true
}

func (g *golden) save(t *testing.T) {
	t.Helper()
	if !g.changed {
		return
	}
	if err := os.WriteFile(g.path, txtar.Format(g.archive), 0o644); err != nil {
		t.Fatal(fmt.Errorf("update %s: %w", g.path, err))
	}
}
