package peerauth_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/peerauth"
	"github.com/tollgate/tollgate/peerauth/peerauthtest"
)

var secret = []byte(strings.Repeat("s3cr3t-", 6))

// recorder is a health service that records the identity each handler saw.
type recorder struct {
	healthpb.UnimplementedHealthServer
	mu  sync.Mutex
	ids []peerauth.Identity
}

func (r *recorder) note(ctx context.Context) {
	id, ok := peerauth.FromContext(ctx)
	if !ok {
		id = "none"
	}
	r.mu.Lock()
	r.ids = append(r.ids, id)
	r.mu.Unlock()
}

func (r *recorder) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	r.note(ctx)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (r *recorder) Watch(_ *healthpb.HealthCheckRequest, ss grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	r.note(ss.Context())
	return ss.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
}

func (r *recorder) last() peerauth.Identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == 0 {
		return ""
	}
	return r.ids[len(r.ids)-1]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve runs a guarded health server on addr and returns a raw client to it.
func serve(t *testing.T, addr string, g *peerauth.Guard) (healthpb.HealthClient, *recorder) {
	t.Helper()
	lis, err := peerauth.Listen(t.Context(), addr, g, "--peer-secret-file")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(g.ServerOptions()...)
	rec := &recorder{}
	healthpb.RegisterHealthServer(gs, rec)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	target := lis.Addr().String()
	if lis.Addr().Network() == "unix" {
		target = "unix:" + target
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn), rec
}

func TestSecretCheckedOnEveryCall(t *testing.T) {
	var logs syncBuffer
	g := peerauth.New(secret, slog.New(slog.NewTextHandler(&logs, nil)))
	client, rec := serve(t, "127.0.0.1:0", g)
	tests := []struct {
		name string
		md   metadata.MD
		want codes.Code
	}{
		{"no secret", nil, codes.Unauthenticated},
		{"wrong secret", metadata.Pairs(peerauth.MetadataKey, "nope"), codes.Unauthenticated},
		{"secret with a suffix", metadata.Pairs(peerauth.MetadataKey, string(secret)+"x"), codes.Unauthenticated},
		{"secret twice", metadata.Pairs(peerauth.MetadataKey, string(secret), peerauth.MetadataKey, string(secret)), codes.Unauthenticated},
		{"secret under another name", metadata.Pairs("authorization", string(secret)), codes.Unauthenticated},
		{"the secret", metadata.Pairs(peerauth.MetadataKey, string(secret)), codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := metadata.NewOutgoingContext(t.Context(), tt.md)
			_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
			if got := status.Code(err); got != tt.want {
				t.Errorf("unary: %v, want %v", err, tt.want)
			}
			if tt.want == codes.OK && rec.last() != peerauth.Secret {
				t.Errorf("unary identity %q, want %q", rec.last(), peerauth.Secret)
			}
			ws, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = ws.Recv()
			}
			if got := status.Code(err); got != tt.want {
				t.Errorf("stream: %v, want %v", err, tt.want)
			}
			if tt.want == codes.OK && rec.last() != peerauth.Secret {
				t.Errorf("stream identity %q, want %q", rec.last(), peerauth.Secret)
			}
		})
	}
	out := logs.String()
	if !strings.Contains(out, "refused gRPC caller") || !strings.Contains(out, "peer=127.0.0.1:") {
		t.Errorf("a refusal must be logged with the peer address:\n%s", out)
	}
	if strings.Contains(out, string(secret)) {
		t.Errorf("the secret reached the log:\n%s", out)
	}
}

func TestLocalWithoutSecret(t *testing.T) {
	g := peerauth.New(nil, nil)
	for _, addr := range []string{"127.0.0.1:0", "unix:" + filepath.Join(t.TempDir(), "svc.sock")} {
		client, rec := serve(t, addr, g)
		if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if rec.last() != peerauth.Local {
			t.Errorf("%s: identity %q, want %q", addr, rec.last(), peerauth.Local)
		}
	}
}

func TestListenRefusesExposedWithoutSecret(t *testing.T) {
	tests := []struct {
		addr    string
		secret  bool
		exposed bool
	}{
		{"0.0.0.0:0", false, true},
		{":0", false, true},
		{"[::]:0", false, true},
		{"127.0.0.1:0", false, false},
		{"localhost:0", false, false},
		{"0.0.0.0:0", true, false},
	}
	for _, tt := range tests {
		err := peerauth.CheckAddr(tt.addr, tt.secret, "--peer-secret-file")
		if got := errors.Is(err, peerauth.ErrExposed); got != tt.exposed {
			t.Errorf("CheckAddr(%q, secret %v) = %v, want exposed %v", tt.addr, tt.secret, err, tt.exposed)
		}
		if tt.exposed && !strings.Contains(err.Error(), "--peer-secret-file") {
			t.Errorf("the refusal must name the flag to set: %v", err)
		}
	}
	if _, err := peerauth.Listen(t.Context(), "0.0.0.0:0", peerauth.New(nil, nil), "--peer-secret-file"); !errors.Is(err, peerauth.ErrExposed) {
		t.Errorf("Listen on every interface without a secret: %v", err)
	}
}

func TestUnixSocketReplacesStaleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	// A crashed run leaves the file behind (Go removes it on Close, so unlink is disabled).
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	g := peerauth.New(nil, nil)
	client, _ := serve(t, "unix:"+path, g)
	if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != peerauth.SocketMode {
		t.Errorf("socket mode %v (%v), want %o", fi.Mode().Perm(), err, peerauth.SocketMode)
	}
	// A socket someone serves on is not taken over.
	if _, err := peerauth.Listen(t.Context(), "unix:"+path, g, "--peer-secret-file"); err == nil {
		t.Error("Listen replaced a live socket")
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := peerauth.LoadSecret(write("ok", string(secret)+"\n"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Errorf("LoadSecret = %q, %v; want the file without its newline", got, err)
	}
	for name, content := range map[string]string{"short": "abc\n", "space": strings.Repeat("a b", 20), "control": strings.Repeat("a\x01", 20), "formatter": strings.Repeat("%a", 20)} {
		if _, err := peerauth.LoadSecret(write(name, content)); err == nil {
			t.Errorf("%s secret accepted", name)
		}
	}
	if _, err := peerauth.LoadSecret(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

// tlsClient dials addr over TLS trusting pki's CA, presenting the given client certificate
// (none when cert is empty).
func tlsClient(t *testing.T, addr string, pki *peerauthtest.PKI, cert, key string) healthpb.HealthClient {
	t.Helper()
	pem, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// TestMutualTLS: with WithTLS only clients presenting a certificate from the client CA get
// through, the identity is the certificate's subject, and a secret, when also configured, is
// still required.
func TestMutualTLS(t *testing.T) {
	pki := peerauthtest.New(t)
	files := peerauth.TLSFiles{Cert: pki.ServerCert, Key: pki.ServerKey, ClientCA: pki.CA}
	for _, withSecret := range []bool{false, true} {
		var s []byte
		if withSecret {
			s = secret
		}
		g := peerauth.New(s, nil)
		if err := g.WithTLS(files); err != nil {
			t.Fatal(err)
		}
		if err := peerauth.CheckAddr("0.0.0.0:1", g.Authenticates(), "x"); err != nil {
			t.Errorf("mutual TLS must allow a listener beyond loopback: %v", err)
		}
		lis, err := peerauth.Listen(t.Context(), "127.0.0.1:0", g, "--peer-secret-file")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer(g.ServerOptions()...)
		rec := &recorder{}
		healthpb.RegisterHealthServer(gs, rec)
		go func() { _ = gs.Serve(lis) }()
		t.Cleanup(gs.Stop)
		addr := lis.Addr().String()
		ctx := t.Context()
		if withSecret {
			ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(peerauth.MetadataKey, string(secret)))
		}

		for name, c := range map[string]healthpb.HealthClient{
			"no client certificate": tlsClient(t, addr, pki, "", ""),
			"a stranger's":          tlsClient(t, addr, pki, pki.OtherClientCert, pki.OtherClientKey),
		} {
			if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
				t.Errorf("secret %v, %s: accepted", withSecret, name)
			}
		}
		good := tlsClient(t, addr, pki, pki.ClientCert, pki.ClientKey)
		if _, err := good.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("secret %v, Envoy's certificate: %v", withSecret, err)
		}
		if want := peerauth.Identity("cert:CN=" + peerauthtest.ClientName); rec.last() != want {
			t.Errorf("identity %q, want %q", rec.last(), want)
		}
		if withSecret {
			if _, err := good.Check(t.Context(), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Errorf("certificate without the secret: %v, want Unauthenticated", err)
			}
		}
	}
	if err := peerauth.New(nil, nil).WithTLS(peerauth.TLSFiles{Cert: pki.ServerCert}); err == nil {
		t.Error("WithTLS accepted a certificate without key and client CA")
	}
}

func TestName(t *testing.T) {
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"no identity", context.Background(), ""},
		{"local over a unix socket", peer.NewContext(peerauth.NewContext(context.Background(), peerauth.Local), &peer.Peer{Addr: &net.UnixAddr{Name: "@", Net: "unix"}}), "local"},
		{"secret from a host", peer.NewContext(peerauth.NewContext(context.Background(), peerauth.Secret), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 41000}}), "secret@10.1.2.3"},
		{"same host, another connection", peer.NewContext(peerauth.NewContext(context.Background(), peerauth.Secret), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 41001}}), "secret@10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := peerauth.Name(tt.ctx); got != tt.want {
				t.Errorf("Name = %q, want %q", got, tt.want)
			}
		})
	}
}
