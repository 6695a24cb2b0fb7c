package ratelimit

import (
	"errors"
	"fmt"
	"strings"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"

	"github.com/tollgate/tollgate/envoy/contract"
)

// Domain is the rate-limit domain Tollgate's Envoy configuration uses.
// Requests for any other domain are answered OK without limits.
const Domain = contract.RateLimitDomain

// Quota is the kind of limit a descriptor asks about: the value of its first
// entry.
type Quota string

// The quotas the Envoy configuration sends.
const (
	RequestsPerMinute Quota = contract.QuotaRequestsPerMinute
	TokensPerMinute   Quota = contract.QuotaTokensPerMinute
	TokensPerDay      Quota = contract.QuotaTokensPerDay
	// ManagementRequestsPerMinute counts one key's requests to the management API, apart from
	// its organisation's model quotas.
	ManagementRequestsPerMinute Quota = contract.QuotaManagementRequestsPerMinute
)

// Unit is the window the quota counts over: a minute or a day; zero for an
// unknown quota.
func (q Quota) Unit() time.Duration {
	switch q {
	case RequestsPerMinute, TokensPerMinute, ManagementRequestsPerMinute:
		return time.Minute
	case TokensPerDay:
		return 24 * time.Hour
	}
	return 0
}

// Tokens reports whether the quota counts tokens rather than requests.
// Tokens are metered after the fact, requests admitted up front.
func (q Quota) Tokens() bool { return q == TokensPerMinute || q == TokensPerDay }

// Descriptor is one Envoy rate-limit descriptor in Tollgate's shape: a quota
// and a scope. Org is always set; Key and Model are empty when the scope does
// not include them, so {Org, Model} is an organisation's limit on one model
// across all its keys.
type Descriptor struct {
	Quota Quota
	Org   string
	Key   string
	Model string
}

// String describes the descriptor, e.g. "rpm org=acme key=k1".
func (d Descriptor) String() string {
	var b strings.Builder
	b.WriteString(string(d.Quota))
	b.WriteString(" org=")
	b.WriteString(d.Org)
	if d.Key != "" {
		b.WriteString(" key=")
		b.WriteString(d.Key)
	}
	if d.Model != "" {
		b.WriteString(" model=")
		b.WriteString(d.Model)
	}
	return b.String()
}

var errDomain = errors.New("unknown domain")

// parseDescriptor reads the entries Envoy sends, strictly in the contract's
// order: quota, org, then optionally key, then optionally model.
func parseDescriptor(domain string, entries []*ratelimitv3.RateLimitDescriptor_Entry) (Descriptor, error) {
	var d Descriptor
	if domain != Domain {
		return d, fmt.Errorf("%w %q", errDomain, domain)
	}
	if len(entries) < 2 || len(entries) > 4 {
		return d, fmt.Errorf("%d entries, want 2 to 4", len(entries))
	}
	if e := entries[0]; e.GetKey() != contract.DescriptorQuota || e.GetValue() == "" {
		return d, fmt.Errorf("first entry %q, want quota", e.GetKey())
	}
	d.Quota = Quota(entries[0].GetValue())
	if d.Quota.Unit() == 0 {
		return d, fmt.Errorf("unknown quota %q", d.Quota)
	}
	if e := entries[1]; e.GetKey() != contract.DescriptorOrg || e.GetValue() == "" {
		return d, fmt.Errorf("second entry %q, want a non-empty org", e.GetKey())
	}
	d.Org = entries[1].GetValue()
	for _, e := range entries[2:] {
		switch {
		case e.GetValue() == "":
			return d, fmt.Errorf("empty %q entry", e.GetKey())
		case e.GetKey() == contract.DescriptorKey && d.Key == "" && d.Model == "":
			d.Key = e.GetValue()
		case e.GetKey() == contract.DescriptorModel && d.Model == "":
			d.Model = e.GetValue()
		default:
			return d, fmt.Errorf("unexpected entry %q", e.GetKey())
		}
	}
	return d, nil
}

// keyEscaper keeps IDs containing the separator or braces from colliding
// with other scopes or changing the Redis Cluster hash tag.
var keyEscaper = strings.NewReplacer("%", "%25", ":", "%3A", "{", "%7B", "}", "%7D")

func escapeKey(s string) string {
	if !strings.ContainsAny(s, "%:{}") {
		return s
	}
	return keyEscaper.Replace(s)
}

// redisKey names the descriptor's state, e.g. "tollgate:rl:{acme}:rpm:k=k1".
// The org is the hash tag: all descriptors of one request belong to one org,
// so they share a Redis Cluster slot and fit in one script call.
func (d Descriptor) redisKey(prefix string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(d.Org) + len(d.Key) + len(d.Model) + 16)
	b.WriteString(prefix)
	b.WriteByte('{')
	b.WriteString(escapeKey(d.Org))
	b.WriteString("}:")
	b.WriteString(string(d.Quota))
	if d.Key != "" {
		b.WriteString(":k=")
		b.WriteString(escapeKey(d.Key))
	}
	if d.Model != "" {
		b.WriteString(":m=")
		b.WriteString(escapeKey(d.Model))
	}
	return b.String()
}
