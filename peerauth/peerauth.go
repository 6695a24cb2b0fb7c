// Package peerauth is the trust boundary around Tollgate's gRPC sidecars (extproc and
// ratelimit): only Envoy may talk to them, because an ext_proc peer receives provider
// credentials and other customers' prompts, and a rate-limit peer can spend or refund anyone's
// quota.
//
// Three shapes are accepted:
//
//   - Local: the service listens on a Unix socket or a loopback address, so only processes on
//     the same host (or in the same network namespace) can connect. No secret is needed;
//     Listen refuses any other address unless a secret is configured.
//   - Secret: a shared secret, read from a file, that Envoy sends on every gRPC stream as the
//     GrpcService's initial_metadata entry MetadataKey (api/envoy/config/core/v3/
//     grpc_service.proto, GrpcService.initial_metadata). The interceptors from ServerOptions
//     check it on every stream and unary call, in constant time, and refuse a missing or wrong
//     value with Unauthenticated. Once a secret is configured it is required on every
//     listener, loopback included.
//   - Mutual TLS: the service presents its certificate and requires a client certificate
//     signed by the configured CA (the certificate of Envoy's cluster, UpstreamTlsContext
//     tls_certificates). The identity is the client certificate's subject. It combines with
//     the secret, which is then still checked.
//
// The identity of the authenticated peer is in the handler's context (FromContext), so that a
// service can tie later streams to the peer that opened a request.
package peerauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// MetadataKey is the gRPC metadata entry (an HTTP/2 header of the gRPC request) that carries
// the shared secret. It is not an x-tollgate-* name: those are request headers of the HTTP
// traffic Envoy proxies, and this one exists only between Envoy and the sidecars.
const MetadataKey = "tollgate-peer-secret"

// MinSecretBytes is the shortest secret LoadSecret accepts: 128 bits if it is random hex or
// base64 of at least this length.
const MinSecretBytes = 32

// Identity says how a peer was authenticated.
type Identity string

const (
	// Local is a peer of a Unix socket or loopback listener with no secret configured: the
	// operating system's reachability is the authentication.
	Local Identity = "local"
	// Secret is a peer that presented the shared secret (over a connection without client
	// certificates).
	Secret Identity = "secret"
)

// certIdentity is the identity of a peer authenticated by its client certificate: its
// subject, e.g. "CN=envoy".
func certIdentity(subject string) Identity { return Identity("cert:" + subject) }

type identityKey struct{}

// FromContext returns the identity the interceptors established for the stream or call whose
// context ctx is, and false outside such a handler.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// Name names the authenticated peer of ctx's stream for binding one stream to another: its
// identity and, over TCP, the host it connects from (Envoy opens several connections, one per
// worker, from one host). Two Envoys that share a secret on different hosts are different peers;
// a stream the interceptors did not see has the empty identity.
func Name(ctx context.Context) string {
	id, _ := FromContext(ctx)
	name := string(id)
	if p, ok := peer.FromContext(ctx); ok {
		if tcp, ok := p.Addr.(*net.TCPAddr); ok {
			name += "@" + tcp.IP.String()
		}
	}
	return name
}

// NewContext returns ctx carrying id; services use it in tests that call handlers directly.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// LoadSecret reads the shared secret from path: the file's content without surrounding
// whitespace (a trailing newline from `echo` or `openssl rand -hex 32 >` is not part of it).
// The secret must be at least MinSecretBytes long and made of letters, digits and
// "-._~+/=" (hex or base64): it travels as a gRPC metadata value, and Envoy evaluates
// initial_metadata values as header formatters, where '%' starts a command.
func LoadSecret(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read peer secret: %w", err)
	}
	s := bytes.TrimSpace(raw)
	if len(s) < MinSecretBytes {
		return nil, fmt.Errorf("peer secret in %s: %d bytes, want at least %d (e.g. openssl rand -hex 32)", path, len(s), MinSecretBytes)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/=", c) >= 0) {
			return nil, fmt.Errorf("peer secret in %s: only letters, digits and -._~+/= are allowed (e.g. openssl rand -hex 32)", path)
		}
	}
	return s, nil
}

// Guard checks callers. The zero value is not usable; use New.
type Guard struct {
	digest [sha256.Size]byte // of the secret; zero when there is none
	secret bool
	tls    *tls.Config // nil: cleartext
	log    *slog.Logger
	// refusals is throttled: a hostile client must not be able to flood the log.
	nextLog    atomic.Int64
	suppressed atomic.Int64
}

// New returns a Guard requiring secret on every stream and call, or, with an empty secret,
// accepting every caller as Local (Listen then only allows Unix sockets and loopback). A nil
// log discards.
func New(secret []byte, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Guard{log: log}
	if len(secret) > 0 {
		g.secret = true
		g.digest = sha256.Sum256(secret)
	}
	return g
}

// TLSFiles are the PEM files of a sidecar's mutual TLS: its own certificate and key, and the
// CA that signed the client certificate Envoy presents. All three or none.
type TLSFiles struct {
	Cert, Key, ClientCA string
}

// Set reports whether any file is named.
func (f TLSFiles) Set() bool { return f.Cert != "" || f.Key != "" || f.ClientCA != "" }

// WithTLS makes the guard serve TLS with f's certificate and require a client certificate
// signed by f.ClientCA on every connection.
func (g *Guard) WithTLS(f TLSFiles) error {
	if f.Cert == "" || f.Key == "" || f.ClientCA == "" {
		return errors.New("mutual TLS needs a certificate, its key and the client CA (--tls-cert, --tls-key, --client-ca)")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	pem, err := os.ReadFile(f.ClientCA)
	if err != nil {
		return fmt.Errorf("read client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("client CA %s: no PEM certificates", f.ClientCA)
	}
	g.tls = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	return nil
}

// RequiresSecret reports whether callers must present the secret.
func (g *Guard) RequiresSecret() bool { return g.secret }

// Authenticates reports whether callers are authenticated (secret or client certificate),
// which a listener beyond loopback requires.
func (g *Guard) Authenticates() bool { return g.secret || g.tls != nil }

// ServerOptions are the grpc.NewServer options that make every stream and unary call go
// through the guard (and, with WithTLS, every connection through mutual TLS).
func (g *Guard) ServerOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(g.unary),
		grpc.ChainStreamInterceptor(g.stream),
	}
	if g.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(g.tls)))
	}
	return opts
}

var errUnauthenticated = status.Error(codes.Unauthenticated, "tollgate: caller not authenticated")

// check authenticates the caller of ctx. Comparing SHA-256 digests keeps the comparison
// constant-time whatever the presented value's length.
func (g *Guard) check(ctx context.Context, method string) (Identity, error) {
	id := Local
	if g.tls != nil {
		// The handshake already required a verified client certificate; this only reads it.
		p, _ := peer.FromContext(ctx)
		ti, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
			g.refused(ctx, method, "no verified client certificate")
			return "", errUnauthenticated
		}
		id = certIdentity(ti.State.VerifiedChains[0][0].Subject.String())
	}
	if !g.secret {
		return id, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(MetadataKey)
	if len(vals) == 1 {
		d := sha256.Sum256([]byte(vals[0]))
		if subtle.ConstantTimeCompare(d[:], g.digest[:]) == 1 {
			if id == Local {
				id = Secret
			}
			return id, nil
		}
	}
	reason := "wrong secret"
	if len(vals) == 0 {
		reason = "no secret"
	}
	g.refused(ctx, method, reason)
	return "", errUnauthenticated
}

func (g *Guard) refused(ctx context.Context, method, reason string) {
	now := time.Now().UnixNano()
	next := g.nextLog.Load()
	if now < next || !g.nextLog.CompareAndSwap(next, now+int64(time.Second)) {
		g.suppressed.Add(1)
		return
	}
	addr := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	g.log.WarnContext(ctx, "peerauth: refused gRPC caller", "peer", addr, "method", method,
		"reason", reason, "suppressed", g.suppressed.Swap(0))
}

func (g *Guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	id, err := g.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(NewContext(ctx, id), req)
}

func (g *Guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	id, err := g.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &identifiedStream{ServerStream: ss, ctx: NewContext(ss.Context(), id)})
}

// identifiedStream is ss with the peer's identity in its context.
type identifiedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identifiedStream) Context() context.Context { return s.ctx }

// UnixPrefix starts an address that names a Unix socket path ("unix:/run/tollgate/extproc.sock"),
// as grpc-go's and Envoy's own address syntax do.
const UnixPrefix = "unix:"

// SocketMode is the permission of a Unix socket Listen creates: connecting needs write
// permission, so only the service's user and group (Envoy's, when they share one) can.
const SocketMode = 0o660

// Listen opens the service's listener at addr: "unix:/path" for a Unix socket (mode SocketMode;
// a stale socket file left by a crashed run is replaced, one a live process listens on is not)
// or host:port for TCP. A TCP address that is not a loopback IP or "localhost" needs the guard to
// require a secret; otherwise Listen refuses with an error naming secretFlag, the option that
// sets one. An empty host (":50051") means every interface and is refused likewise.
func Listen(ctx context.Context, addr string, g *Guard, secretFlag string) (net.Listener, error) {
	var lc net.ListenConfig
	if path, ok := strings.CutPrefix(addr, UnixPrefix); ok {
		if path == "" {
			return nil, fmt.Errorf("listen %q: empty socket path", addr)
		}
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			d := net.Dialer{Timeout: time.Second}
			if c, err := d.DialContext(ctx, "unix", path); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen %s: another process is serving on this socket", addr)
			}
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("listen %s: remove stale socket: %w", addr, err)
			}
		}
		lis, err := lc.Listen(ctx, "unix", path)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		if err := os.Chmod(path, SocketMode); err != nil {
			lis.Close()
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		return lis, nil
	}
	if err := CheckAddr(addr, g.Authenticates(), secretFlag); err != nil {
		return nil, err
	}
	lis, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return lis, nil
}

// ErrExposed is wrapped by CheckAddr's refusal of a non-loopback listener without a secret.
var ErrExposed = errors.New("listener reachable beyond this host without caller authentication")

// CheckAddr validates a listen address without opening it: "unix:/path", or host:port whose
// host is a loopback IP or "localhost" unless callers are authenticated (a secret or mutual
// TLS).
func CheckAddr(addr string, authenticated bool, secretFlag string) error {
	if path, ok := strings.CutPrefix(addr, UnixPrefix); ok {
		if path == "" {
			return fmt.Errorf("listen %q: empty socket path", addr)
		}
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen %q: want host:port or unix:/path: %w", addr, err)
	}
	if authenticated || IsLoopback(host) {
		return nil
	}
	return fmt.Errorf("listen %s: %w: only Envoy may call this service, so listen on 127.0.0.1, [::1] or a unix:/path socket, or set %s so every caller must present the shared secret", addr, ErrExposed, secretFlag)
}

// IsLoopback reports whether host (an IP or "localhost") is a loopback address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
