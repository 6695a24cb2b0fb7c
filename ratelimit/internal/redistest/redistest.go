// Package redistest gives rate-limit tests a real Redis: the shared one, with a
// key prefix per test, or a private redis-server they may kill and restart.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is used when REDIS_URL is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// readyTimeout bounds how long a test waits for a Redis to answer PING.
const readyTimeout = 10 * time.Second

// URL returns REDIS_URL or DefaultURL.
func URL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Client connects to the shared Redis at URL, waits until it answers, and
// closes the client when the test ends. It fails the test (never skips) when
// Redis does not come up: `make test` is expected to start it.
func Client(tb testing.TB) *redis.Client {
	tb.Helper()
	opt, err := redis.ParseURL(URL())
	if err != nil {
		tb.Fatalf("parse REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opt)
	tb.Cleanup(func() { _ = rdb.Close() })
	if err := WaitReady(rdb, readyTimeout); err != nil {
		tb.Fatalf("redis at %s: %v", opt.Addr, err)
	}
	return rdb
}

// WaitReady polls PING until it succeeds or timeout passes.
func WaitReady(rdb redis.UniversalClient, timeout time.Duration) error {
	return Eventually(timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		return rdb.Ping(ctx).Err()
	})
}

// Eventually calls f until it returns nil, returning its last error once
// timeout has passed. The pause between calls grows from 1 ms to 50 ms.
func Eventually(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %v: %w", timeout, err)
		}
		t := time.NewTimer(pause)
		<-t.C
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// Prefix returns a key prefix unique to this test run and deletes every key
// under it when the test ends, so tests sharing one Redis never see each
// other's state.
func Prefix(tb testing.TB, rdb redis.UniversalClient) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", ".", "*", "_", "?", "_", "[", "_", "]", "_", "{", "_", "}", "_").Replace(tb.Name())
	prefix := "tollgate-test:" + name + ":" + hex.EncodeToString(b[:]) + ":"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return prefix
}

// Server is a private redis-server process that a test may kill and restart
// on the same port.
type Server struct {
	tb   testing.TB
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
	exit chan error
}

// Start runs redis-server (found on PATH) on a free port, without
// persistence, and waits until it answers. It is killed when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server not on PATH: %v", err)
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir()}
	// The port is free when chosen but could be taken before redis-server
	// binds it; try a few.
	var lastErr error
	for range 3 {
		if s.port, err = freePort(); err != nil {
			tb.Fatalf("find free port: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			tb.Cleanup(s.stop)
			return s
		}
	}
	tb.Fatalf("start redis-server: %v", lastErr)
	return nil
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Kill kills the process and waits for it to exit.
func (s *Server) Kill() {
	s.tb.Helper()
	s.stop()
}

// Pause stops the process (SIGSTOP) without closing its sockets, as a hung
// or partitioned Redis looks to clients: connections open, no answers.
func (s *Server) Pause() {
	s.tb.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.tb.Fatalf("pause redis-server: %v", err)
	}
}

// Resume continues a paused process.
func (s *Server) Resume() {
	s.tb.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.tb.Fatalf("resume redis-server: %v", err)
	}
}

// Restart starts the server again on the same port, with empty memory (and
// so without any loaded scripts), and waits until it answers.
func (s *Server) Restart() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatalf("restart redis-server: %v", err)
	}
}

func (s *Server) start() error {
	s.cmd = exec.Command(s.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--save", "", "--appendonly", "no", "--dir", s.dir)
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	s.exit = make(chan error, 1)
	go func(cmd *exec.Cmd, exit chan<- error) { exit <- cmd.Wait() }(s.cmd, s.exit)

	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(readyTimeout)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		t := time.NewTimer(pause)
		select {
		case werr := <-s.exit: // e.g. the port was taken
			t.Stop()
			s.cmd = nil
			return fmt.Errorf("redis-server exited: %v", werr)
		case <-t.C:
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("redis-server not ready after %v: %w", readyTimeout, err)
		}
	}
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exit
	s.cmd = nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
