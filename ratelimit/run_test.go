package ratelimit_test

import (
	"context"
	"net"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/peerauth"
	"github.com/tollgate/tollgate/ratelimit"
	"github.com/tollgate/tollgate/ratelimit/internal/redistest"
)

func TestRunServesUntilCancelled(t *testing.T) {
	rdb := redistest.Client(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close() // Run binds it again

	cfg := ratelimit.Config{Addr: addr, RedisURL: redistest.URL(), KeyPrefix: redistest.Prefix(t, rdb), RedisTimeout: time.Second}
	limits := staticLimits(t, ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{{Org: "acme"}: {RPM: 1}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ratelimit.Run(ctx, cfg, limits, discard()) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = redistest.Eventually(10*time.Second, func() error {
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	})
	if err != nil {
		t.Fatalf("health: %v", err)
	}
	client := rlsv3.NewRateLimitServiceClient(conn)
	for i, want := range []rlsv3.RateLimitResponse_Code{ok, over} {
		resp, err := client.ShouldRateLimit(ctx, request(descriptor("rpm", "acme", "", "")))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetOverallCode() != want {
			t.Errorf("call %d: %v, want %v", i, resp.GetOverallCode(), want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ratelimit.Config
		wantErr bool
	}{
		{name: "defaults", cfg: ratelimit.Config{}},
		{name: "all set", cfg: ratelimit.Config{Addr: "127.0.0.1:50052", RedisURL: "redis://localhost:6379/1", RedisTimeout: 10 * time.Millisecond, KeyPrefix: "x:"}},
		{name: "bad addr", cfg: ratelimit.Config{Addr: "50052"}, wantErr: true},
		{name: "bad url", cfg: ratelimit.Config{RedisURL: "http://x"}, wantErr: true},
		{name: "negative timeout", cfg: ratelimit.Config{RedisTimeout: -time.Millisecond}, wantErr: true},
		{name: "brace in prefix", cfg: ratelimit.Config{KeyPrefix: "{x}:"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// TestRunRequiresPeerSecret: with a peer secret the service answers only callers presenting
// it, health checks included, and may then listen beyond loopback.
func TestRunRequiresPeerSecret(t *testing.T) {
	rdb := redistest.Client(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	secret := "0123456789abcdef0123456789abcdef"
	cfg := ratelimit.Config{Addr: addr, RedisURL: redistest.URL(), KeyPrefix: redistest.Prefix(t, rdb), RedisTimeout: time.Second, PeerSecret: []byte(secret)}
	if err := (ratelimit.Config{Addr: "0.0.0.0:50052", PeerSecret: []byte(secret)}).Validate(); err != nil {
		t.Errorf("a secret must allow a listener beyond loopback: %v", err)
	}
	if err := (ratelimit.Config{Addr: "0.0.0.0:50052"}).Validate(); err == nil {
		t.Error("a listener beyond loopback without a secret validated")
	}
	limits := staticLimits(t, ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{{Org: "acme"}: {RPM: 10}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ratelimit.Run(ctx, cfg, limits, discard()) }()
	t.Cleanup(func() { cancel(); <-done })

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	good := metadata.NewOutgoingContext(ctx, metadata.Pairs(peerauth.MetadataKey, secret))
	err = redistest.Eventually(10*time.Second, func() error {
		_, err := healthpb.NewHealthClient(conn).Check(good, &healthpb.HealthCheckRequest{})
		return err
	})
	if err != nil {
		t.Fatalf("health with the secret: %v", err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("health without the secret: %v, want Unauthenticated", err)
	}
	client := rlsv3.NewRateLimitServiceClient(conn)
	if _, err := client.ShouldRateLimit(ctx, request(descriptor("rpm", "acme", "", ""))); status.Code(err) != codes.Unauthenticated {
		t.Errorf("decision without the secret: %v, want Unauthenticated", err)
	}
	if _, err := client.ShouldRateLimit(good, request(descriptor("rpm", "acme", "", ""))); err != nil {
		t.Errorf("decision with the secret: %v", err)
	}
}
