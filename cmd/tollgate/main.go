// Command tollgate is the Tollgate AI gateway: its Envoy external processor, rate-limit service,
// operator commands, Envoy configuration renderer and a one-machine development stack.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
