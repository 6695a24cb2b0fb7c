package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/peerauth"
)

func TestPeerSecretFileIsMadeOnceAndPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.secret")
	var contents []string
	for range 2 {
		var out, errOut bytes.Buffer
		if code := Run(context.Background(), []string{"peer-secret", "-o", path}, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		contents = append(contents, string(b))
	}
	if contents[0] != contents[1] {
		t.Error("a second run replaced the secret")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := peerauth.LoadSecret(path); err != nil {
		t.Errorf("the secret does not load: %v", err)
	}
}

// TestExposedSidecarRefusesToStart: extproc and ratelimit on every interface without a peer
// secret stop at once, naming the flag to set.
func TestExposedSidecarRefusesToStart(t *testing.T) {
	for _, args := range [][]string{
		{"extproc", "--addr", "0.0.0.0:50051"},
		{"ratelimit", "--addr", ":50052"},
	} {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), args, &out, &errOut)
		if code == 0 || !strings.Contains(errOut.String(), "--peer-secret-file") {
			t.Errorf("%v: exit %d, %q; want a refusal naming --peer-secret-file", args, code, errOut.String())
		}
	}
}
