package ratelimit

import (
	"testing"
	"time"
)

func TestFormatReset(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{-time.Second, "0s"},
		{time.Microsecond, "1ms"},
		{20 * time.Millisecond, "20ms"},
		{999*time.Millisecond + 1, "1s"},
		{time.Second, "1s"},
		{1500 * time.Millisecond, "1.5s"},
		{8*time.Second + 631*time.Millisecond, "8.64s"},
		{59*time.Second + 995*time.Millisecond, "1m0s"},
		{6 * time.Minute, "6m0s"},
		{6*time.Minute + time.Millisecond, "6m1s"},
		{24 * time.Hour, "24h0m0s"},
	}
	for _, tt := range tests {
		if got := formatReset(tt.d); got != tt.want {
			t.Errorf("formatReset(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestRedisKey(t *testing.T) {
	tests := []struct {
		name string
		d    Descriptor
		want string
	}{
		{name: "org", d: Descriptor{Quota: RequestsPerMinute, Org: "acme"}, want: "p:{acme}:rpm"},
		{name: "org and model", d: Descriptor{Quota: TokensPerMinute, Org: "acme", Model: "gpt-4o"}, want: "p:{acme}:tpm:m=gpt-4o"},
		{name: "full scope", d: Descriptor{Quota: TokensPerDay, Org: "acme", Key: "k1", Model: "m"}, want: "p:{acme}:tpd:k=k1:m=m"},
		// Without escaping, key "a:m=b" would collide with key "a", model "b".
		{name: "separators escaped", d: Descriptor{Quota: RequestsPerMinute, Org: "{x}", Key: "a:m=b"}, want: "p:{%7Bx%7D}:rpm:k=a%3Am=b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.redisKey("p:"); got != tt.want {
				t.Errorf("redisKey = %q, want %q", got, tt.want)
			}
		})
	}
}
