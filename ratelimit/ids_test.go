package ratelimit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
	"github.com/tollgate/tollgate/ratelimit"
	"github.com/tollgate/tollgate/ratelimit/internal/redistest"
	"github.com/tollgate/tollgate/ratelimit/limiter"
)

// TestIssuedIDs: descriptors must name an org Tollgate issued and, if they have a key, a key of
// that org; a key created after the server started works at once.
func TestIssuedIDs(t *testing.T) {
	store, pool := ledgertest.NewStore(t)
	ctx := t.Context()
	org, err := store.CreateOrg(ctx, ledger.OrgOptions{Name: "o"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := store.CreateOrg(ctx, ledger.OrgOptions{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := store.CreateKey(ctx, org, ledger.KeyStandard, "k")
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := store.CreateKey(ctx, other, ledger.KeyStandard, "k")
	if err != nil {
		t.Fatal(err)
	}

	rdb := redistest.Client(t)
	ids := ratelimit.NewIssuedIDs(pool)
	cfg := ratelimit.Config{KeyPrefix: redistest.Prefix(t, rdb), RedisTimeout: 5 * time.Second, IDs: ids}
	s := ratelimit.NewServer(cfg, limiter.New(rdb), fixedLimits{PerUnit: 100, Unit: time.Minute}, discard())

	const unknownUUID = "00000000-0000-4000-8000-000000000000"
	tests := []struct {
		name     string
		org, key string
		want     codes.Code
	}{
		{"issued org", org, "", codes.OK},
		{"issued key of the org", org, key, codes.OK},
		{"made-up org", "acme", "", codes.PermissionDenied},
		{"unknown uuid org", unknownUUID, "", codes.PermissionDenied},
		{"another org's key", org, otherKey, codes.PermissionDenied},
		{"made-up key", org, "k1", codes.PermissionDenied},
		{"an org id used as a key", org, org, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A valid descriptor first: one bad descriptor refuses the whole call.
			req := request(descriptor("rpm", org, "", ""), descriptor("rpm", tt.org, tt.key, ""))
			for range 2 { // the second answer comes from the cache
				_, err := s.ShouldRateLimit(context.Background(), req)
				if got := status.Code(err); got != tt.want {
					t.Fatalf("error %v, want %v", err, tt.want)
				}
			}
		})
	}

	// A key created now, while the server runs, works on its first use.
	_, fresh, err := store.CreateKey(ctx, other, ledger.KeyStandard, "fresh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ShouldRateLimit(context.Background(), request(descriptor("rpm", other, fresh, ""))); err != nil {
		t.Errorf("brand-new key: %v", err)
	}

	// A burst from a key nobody asked about yet: every concurrent miss gets the answer.
	_, burstKey, err := store.CreateKey(ctx, other, ledger.KeyStandard, "burst")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			_, err := s.ShouldRateLimit(context.Background(), request(descriptor("rpm", other, burstKey, "")))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent first use of a key: %v", err)
		}
	}
}
