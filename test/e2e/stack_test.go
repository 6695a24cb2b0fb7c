package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// stack is one running gateway: its own Postgres schema, mock provider, extproc and stand-in.
type stack struct {
	BaseURL string
	APIKey  string
	OrgID   string
	// ExtprocAddr and RatelimitAddr are the sidecars' gRPC addresses and PeerSecret the secret
	// they require; all empty against an external stack.
	ExtprocAddr, RatelimitAddr, PeerSecret string
	DB                                     *pgxpool.Pool
	dbURL                                  string
	bin                                    string
	dir                                    string
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// tollgateBinary builds cmd/tollgate once per test binary.
func tollgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tollgate-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tollgate")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/tollgate").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func databaseURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/tollgate_test?sslmode=disable"
}

func redisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// freeAddr returns a loopback address with a port free at the time of the call.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// catalogTemplate is the e2e catalog; {{MOCK}} is replaced by the mock provider's address and DEAD
// by an address nothing listens on.
const catalogTemplate = `
providers:
  - {name: mock, kind: openai, base_url: "http://{{MOCK}}", api_key_env: MOCK_API_KEY}
  - {name: mock-eu, kind: openai-compatible, base_url: "http://{{MOCK}}", region: eu, api_key_env: MOCK_API_KEY}
  - {name: dead, kind: openai, base_url: "http://{{DEAD}}", api_key_env: MOCK_API_KEY}
  - {name: mock-anthropic, kind: anthropic, base_url: "http://{{MOCK}}", api_key_env: MOCK_API_KEY}
  - {name: mock-gemini, kind: gemini, base_url: "http://{{MOCK}}", api_key_env: MOCK_API_KEY}
models:
  - id: mock-gpt
    aliases: [gpt-4o-mini]
    owned_by: tollgate
    endpoints: [chat_completions, messages, gemini]
    max_output_tokens: 4096
    backends:
      - {provider: mock, upstream_model: mock-1}
      - {provider: mock-eu, upstream_model: mock-1}
    pricing: {prompt: "0.15", completion: "0.60"}
  - id: mock-claude
    owned_by: anthropic
    endpoints: [chat_completions, messages, gemini]
    max_output_tokens: 4096
    backends: [{provider: mock-anthropic, upstream_model: claude-mock}]
    pricing: {prompt: "3.00", completion: "15.00", input_cache_read: "0.30"}
  - id: mock-gemini
    owned_by: google
    endpoints: [chat_completions, messages, gemini]
    max_output_tokens: 4096
    backends: [{provider: mock-gemini, upstream_model: gemini-mock}]
    pricing: {prompt: "1.25", completion: "10.00"}
  - {id: mock-503, owned_by: tollgate, max_output_tokens: 100, backends: [{provider: mock, upstream_model: mock-error-503}]}
  - {id: mock-429, owned_by: tollgate, max_output_tokens: 100, backends: [{provider: mock, upstream_model: mock-error-429}]}
  - {id: mock-malformed, owned_by: tollgate, max_output_tokens: 100, backends: [{provider: mock, upstream_model: mock-malformed}]}
  - {id: mock-broken-stream, owned_by: tollgate, max_output_tokens: 100, backends: [{provider: mock, upstream_model: mock-broken-stream}], pricing: {prompt: "1.00", completion: "1.00"}}
  - {id: mock-cut-stream, owned_by: tollgate, endpoints: [chat_completions, messages, gemini], max_output_tokens: 100, backends: [{provider: mock, upstream_model: mock-cut-stream}], pricing: {prompt: "1.00", completion: "1.00"}}
  - {id: mock-cut-stream-claude, owned_by: anthropic, endpoints: [chat_completions, messages, gemini], max_output_tokens: 100, backends: [{provider: mock-anthropic, upstream_model: mock-cut-stream}], pricing: {prompt: "1.00", completion: "1.00"}}
  - {id: mock-cut-stream-gemini, owned_by: google, endpoints: [chat_completions, messages, gemini], max_output_tokens: 100, backends: [{provider: mock-gemini, upstream_model: mock-cut-stream}], pricing: {prompt: "1.00", completion: "1.00"}}
  - {id: mock-dead, owned_by: tollgate, max_output_tokens: 100, backends: [{provider: dead}]}
  - {id: mock-retired, owned_by: tollgate, lifecycle: SUNSET, replacement: mock-gpt, max_output_tokens: 100, backends: [{provider: mock}]}
  - {id: mock-flaky, owned_by: tollgate, max_output_tokens: 100, backends: [{provider: mock, upstream_model: mock-flaky}], pricing: {prompt: "1.00", completion: "1.00"}}
  - {id: mock-bill-max, owned_by: tollgate, max_output_tokens: 38, backends: [{provider: mock, upstream_model: mock-bill-max}], pricing: {prompt: "0.15", completion: "0.60"}}
  - {id: mock-bill-max-claude, owned_by: anthropic, endpoints: [chat_completions, messages], max_output_tokens: 38, backends: [{provider: mock-anthropic, upstream_model: mock-bill-max}], pricing: {prompt: "0.15", completion: "0.60"}}
  - {id: mock-bill-max-gemini, owned_by: google, endpoints: [chat_completions, gemini], max_output_tokens: 38, backends: [{provider: mock-gemini, upstream_model: mock-bill-max}], pricing: {prompt: "0.15", completion: "0.60"}}
  - {id: mock-primary-down, owned_by: tollgate, endpoints: [chat_completions, messages], max_output_tokens: 100, backends: [{provider: mock, upstream_model: mock-error-503}], fallbacks: [mock-claude]}
  - {id: mock-dead-first, owned_by: tollgate, max_output_tokens: 100, backends: [{provider: dead, upstream_model: x}], fallbacks: [mock-gpt]}
  - {id: mock-eu-down, owned_by: tollgate, max_output_tokens: 100, backends: [{provider: mock-eu, upstream_model: mock-error-503}, {provider: mock, upstream_model: mock-1}]}
`

const mockKey = "e2e-mock-provider-key"

// startStack starts a complete gateway for one test and stops it when the test ends.
func startStack(t *testing.T) *stack { return startStackWith(t, stackOptions{}) }

func (s *stack) env() []string {
	return append(os.Environ(), "DATABASE_URL="+s.dbURL, "MOCK_API_KEY="+mockKey, "TOLLGATE_LOG_FORMAT=text", "REDIS_URL="+redisURL())
}

// tollgate runs an operator command and returns its stdout, trimmed.
func (s *stack) tollgate(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), s.bin, args...)
	cmd.Env = s.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tollgate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// daemon starts a long-running subcommand, stops it with SIGTERM at the end of the test, and
// shows its log if the test failed.
func (s *stack) daemon(t *testing.T, args ...string) {
	t.Helper()
	logPath := filepath.Join(s.dir, args[0]+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Env = s.env()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			if len(out) > 8000 {
				out = out[len(out)-8000:]
			}
			t.Logf("--- %s log ---\n%s", args[0], out)
		}
	})
}

// waitListening polls addr until it accepts connections, with a deadline.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	poll(t, addr+" listening", 30*time.Second, func() (bool, error) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	})
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	poll(t, what, 15*time.Second, cond)
}

func poll(t *testing.T, what string, limit time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if ok {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("%s: not true after %s (last error: %v)", what, limit, err)
		case <-tick.C:
		}
	}
}
