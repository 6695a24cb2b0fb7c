package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestEveryCommandIsListed guards the dispatch table: each subcommand the README and docs/design.md
// name must run (here: answer -h) rather than be unknown.
func TestEveryCommandIsListed(t *testing.T) {
	for _, name := range []string{"extproc", "ratelimit", "migrate", "envoy-config", "standin", "mockprovider", "dev",
		"org", "key", "credits", "limits", "ledger", "peer-secret"} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(context.Background(), []string{name, "-h"}, &out, &errOut)
			if strings.Contains(errOut.String(), "unknown command") {
				t.Fatalf("%s is not a command", name)
			}
			if code != 0 && code != 2 {
				t.Errorf("%s -h exited %d: %s", name, code, errOut.String())
			}
		})
	}
}
