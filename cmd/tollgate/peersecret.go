package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"

	"github.com/tollgate/tollgate/peerauth"
)

// runPeerSecret makes the secret Envoy presents to extproc and ratelimit (package peerauth):
// 32 random bytes in hex. Without -o it prints a new one; with -o it writes one to the file
// unless the file already holds a valid secret, so an init container can run it on every
// start.
func runPeerSecret(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := newFlags("peer-secret", stderr)
	out := flags.String("o", "", "write the secret to this file (kept if it already holds one) instead of printing it")
	modeStr := flags.String("mode", "0600", "permissions of the file written with -o (octal)")
	if err := parse(flags, args); err != nil {
		return err
	}
	mode, err := strconv.ParseUint(*modeStr, 8, 32)
	if err != nil || mode&^0o777 != 0 {
		return usagef("--mode %q: want octal permissions such as 0600", *modeStr)
	}
	secret, err := newPeerSecret()
	if err != nil {
		return err
	}
	if *out == "" {
		_, err := fmt.Fprintln(stdout, secret)
		return err
	}
	if _, err := peerauth.LoadSecret(*out); err == nil {
		fmt.Fprintf(stderr, "peer-secret: %s already holds a secret; kept\n", *out)
		return os.Chmod(*out, fs.FileMode(mode))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s exists but is not a usable secret (remove it to make a new one): %w", *out, err)
	}
	return writePrivate(*out, []byte(secret+"\n"), fs.FileMode(mode))
}

func newPeerSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("peer secret: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
