package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate/tollgate/ratelimit"
)

func TestStaticLimits(t *testing.T) {
	table := ratelimit.LimitTable{
		Defaults: map[string]ratelimit.Rates{
			"gpt-4o": {RPM: 500, TPM: 30000},
		},
		Overrides: map[ratelimit.Scope]ratelimit.Rates{
			{Org: "acme"}:                  {RPM: 1000, TPD: 5000000},
			{Org: "acme", Model: "gpt-4o"}: {TPM: 60000},
			{Org: "acme", Key: "k1"}:       {RPM: 10},
		},
		ManagementRPM: 30,
	}
	limits := staticLimits(t, table)
	tests := []struct {
		name string
		d    ratelimit.Descriptor
		want ratelimit.Limit
		ok   bool
	}{
		{name: "org override", d: ratelimit.Descriptor{Quota: ratelimit.RequestsPerMinute, Org: "acme"},
			want: ratelimit.Limit{PerUnit: 1000, Unit: time.Minute, Name: "rpm org=acme"}, ok: true},
		{name: "tokens per day", d: ratelimit.Descriptor{Quota: ratelimit.TokensPerDay, Org: "acme"},
			want: ratelimit.Limit{PerUnit: 5000000, Unit: 24 * time.Hour, Name: "tpd org=acme"}, ok: true},
		{name: "unset quota in an override", d: ratelimit.Descriptor{Quota: ratelimit.TokensPerMinute, Org: "acme"}},
		{name: "key override", d: ratelimit.Descriptor{Quota: ratelimit.RequestsPerMinute, Org: "acme", Key: "k1"},
			want: ratelimit.Limit{PerUnit: 10, Unit: time.Minute, Name: "rpm org=acme key=k1"}, ok: true},
		{name: "override beats the model default", d: ratelimit.Descriptor{Quota: ratelimit.TokensPerMinute, Org: "acme", Model: "gpt-4o"},
			want: ratelimit.Limit{PerUnit: 60000, Unit: time.Minute, Name: "tpm org=acme model=gpt-4o"}, ok: true},
		{name: "model default fills what the override leaves unset", d: ratelimit.Descriptor{Quota: ratelimit.RequestsPerMinute, Org: "acme", Model: "gpt-4o"},
			want: ratelimit.Limit{PerUnit: 500, Unit: time.Minute, Name: "rpm model=gpt-4o"}, ok: true},
		{name: "model default for any org", d: ratelimit.Descriptor{Quota: ratelimit.TokensPerMinute, Org: "globex", Model: "gpt-4o"},
			want: ratelimit.Limit{PerUnit: 30000, Unit: time.Minute, Name: "tpm model=gpt-4o"}, ok: true},
		{name: "model defaults are not per key", d: ratelimit.Descriptor{Quota: ratelimit.RequestsPerMinute, Org: "globex", Key: "k9", Model: "gpt-4o"}},
		{name: "unknown model", d: ratelimit.Descriptor{Quota: ratelimit.RequestsPerMinute, Org: "globex", Model: "o3"}},
		{name: "unknown org", d: ratelimit.Descriptor{Quota: ratelimit.RequestsPerMinute, Org: "globex"}},
		{name: "management requests per key", d: ratelimit.Descriptor{Quota: ratelimit.ManagementRequestsPerMinute, Org: "globex", Key: "k9"},
			want: ratelimit.Limit{PerUnit: 30, Unit: time.Minute, Name: "mgmt_rpm per key"}, ok: true},
		{name: "management limit ignores model overrides", d: ratelimit.Descriptor{Quota: ratelimit.ManagementRequestsPerMinute, Org: "acme", Key: "k1"},
			want: ratelimit.Limit{PerUnit: 30, Unit: time.Minute, Name: "mgmt_rpm per key"}, ok: true},
		{name: "management limit needs a key", d: ratelimit.Descriptor{Quota: ratelimit.ManagementRequestsPerMinute, Org: "acme"}},
		{name: "model rpm is not the management limit", d: ratelimit.Descriptor{Quota: ratelimit.RequestsPerMinute, Org: "globex", Key: "k9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := limits.Limit(context.Background(), tt.d)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Limit(%v) = %+v, %v; want %+v, %v", tt.d, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestStaticLimitsReplace(t *testing.T) {
	d := ratelimit.Descriptor{Quota: ratelimit.RequestsPerMinute, Org: "acme"}
	limits := staticLimits(t, ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{{Org: "acme"}: {RPM: 1}}})

	if err := limits.Replace(ratelimit.LimitTable{Overrides: map[ratelimit.Scope]ratelimit.Rates{{Org: "acme"}: {RPM: 2}}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := limits.Limit(context.Background(), d); got.PerUnit != 2 {
		t.Errorf("after Replace: %d per minute, want 2", got.PerUnit)
	}

	bad := ratelimit.LimitTable{
		Defaults:  map[string]ratelimit.Rates{"": {RPM: 1}},
		Overrides: map[ratelimit.Scope]ratelimit.Rates{{Key: "k1"}: {RPM: 1}},
	}
	if err := limits.Replace(bad); err == nil {
		t.Error("Replace accepted a table with an empty model and an org-less scope")
	}
	if got, _ := limits.Limit(context.Background(), d); got.PerUnit != 2 {
		t.Errorf("after a rejected Replace: %d per minute, want the previous 2", got.PerUnit)
	}
	if _, err := ratelimit.NewStaticLimits(bad); err == nil {
		t.Error("NewStaticLimits accepted an invalid table")
	}
}
