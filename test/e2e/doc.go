// Package e2e holds the end-to-end suite: the real tollgate binaries (stand-in for Envoy,
// extproc, mock provider) against real Postgres, driven by the official SDKs from npm.
package e2e
