package e2e

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite config/e2e.yaml from the e2e catalog template")

// TestE2ECatalogInSync keeps config/e2e.yaml — the catalog `docker compose --profile e2e` serves,
// for running this suite against real Envoy — equal to the catalog the local stack uses, with the
// compose mock provider's address.
func TestE2ECatalogInSync(t *testing.T) {
	want := "# Generated from test/e2e's catalogTemplate by `go test ./test/e2e -run TestE2ECatalogInSync -update`.\n" +
		strings.NewReplacer("{{MOCK}}", "mock:8081", "{{DEAD}}", "127.0.0.1:9").Replace(catalogTemplate)
	const path = "../../config/e2e.yaml"
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is out of date; rerun with -update", path)
	}
}
