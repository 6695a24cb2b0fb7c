package ratelimit

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tollgate/tollgate/extproc/ledger"
	"github.com/tollgate/tollgate/extproc/ledger/ledgertest"
)

func TestOverridesLive(t *testing.T) {
	store, pool := ledgertest.NewStore(t)
	ctx := t.Context()
	org, err := store.CreateOrg(ctx, ledger.OrgOptions{Name: "o"})
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := store.CreateKey(ctx, org, ledger.KeyStandard, "k")
	if err != nil {
		t.Fatal(err)
	}
	o := NewOverrides(pool)
	limits, err := NewStaticLimits(LimitTable{})
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]Rates{"m": {RPM: 60, TPM: 1000}}
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- o.Watch(watchCtx, limits, LimitTable{Defaults: defaults}, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { stop(); <-done })

	limitOf := func(d Descriptor) uint64 {
		l, _ := limits.Limit(ctx, d)
		return l.PerUnit
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen before the deadline", what)
			}
			<-tick.C
		}
	}
	orgModel := Descriptor{Quota: RequestsPerMinute, Org: org, Model: "m"}
	waitFor("catalog default", func() bool { return limitOf(orgModel) == 60 })

	rpm, tpm := uint64(5), uint64(300)
	if err := o.Set(ctx, Scope{Org: org, Model: "m"}, &rpm, nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor("org+model override", func() bool { return limitOf(orgModel) == 5 })
	if got := limitOf(Descriptor{Quota: TokensPerMinute, Org: org, Model: "m"}); got != 1000 {
		t.Errorf("an unset override column keeps the default: tpm = %d", got)
	}

	keyTPM := Descriptor{Quota: TokensPerMinute, Org: org, Key: key}
	if err := o.Set(ctx, Scope{Org: org, Key: key}, nil, &tpm, nil); err != nil {
		t.Fatal(err)
	}
	waitFor("key override", func() bool { return limitOf(keyTPM) == 300 })
	// A second Set on the same scope updates it rather than adding a row.
	rpm2 := uint64(7)
	if err := o.Set(ctx, Scope{Org: org, Key: key}, &rpm2, nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor("merged key override", func() bool {
		return limitOf(Descriptor{Quota: RequestsPerMinute, Org: org, Key: key}) == 7 && limitOf(keyTPM) == 300
	})
	all, err := o.Load(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("Load = %v, %v; want two scopes", all, err)
	}
}
