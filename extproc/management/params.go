package management

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/extproc/apierror"
	"github.com/tollgate/tollgate/extproc/ledger"
)

// defaultRange is the time range when a request gives no from.
const defaultRange = 30 * 24 * time.Hour

// Page sizes of request-logs.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// timeRange parses from and to: RFC 3339, or YYYY-MM-DD as UTC midnight. Defaults: to = now,
// from = to - 30 days.
func timeRange(q url.Values, now time.Time) (from, to time.Time, err *apierror.Error) {
	to, err = parseTime(q, "to", now)
	if err != nil {
		return
	}
	from, err = parseTime(q, "from", to.Add(-defaultRange))
	if err != nil {
		return
	}
	if !from.Before(to) {
		err = apierror.InvalidParam("from", "from (%s) must be before to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from.UTC(), to.UTC(), err
}

func parseTime(q url.Values, name string, def time.Time) (time.Time, *apierror.Error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, apierror.InvalidParam(name, "%s must be an RFC 3339 timestamp or a YYYY-MM-DD date, not %q", name, s)
}

// oneOf checks an enumerated parameter.
func oneOf(q url.Values, name string, allowed ...string) (string, *apierror.Error) {
	v := q.Get(name)
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", apierror.InvalidParam(name, "%s must be one of %s", name, strings.Join(allowed[1:], ", "))
}

// logFilter parses request-logs' filters for org.
func logFilter(q url.Values, org string, now time.Time, paged bool) (ledger.LogFilter, *apierror.Error) {
	from, to, aerr := timeRange(q, now)
	if aerr != nil {
		return ledger.LogFilter{}, aerr
	}
	f := ledger.LogFilter{
		OrgID: org, From: from, To: to,
		KeyID: q.Get("key_id"), RequestID: q.Get("request_id"), Provider: q.Get("provider"),
		Model: q.Get("model"), FinishReason: q.Get("finish_reason"),
	}
	if f.KeyID != "" && !isUUID(f.KeyID) {
		return f, apierror.InvalidParam("key_id", "key_id must be a key id (a UUID)")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return f, apierror.InvalidParam("limit", "limit must be an integer from 1 to %d", maxLimit)
		}
		f.Limit = n
	} else if paged {
		f.Limit = defaultLimit
	}
	if s := q.Get("cursor"); s != "" {
		c, err := decodeCursor(s)
		if err != nil {
			return f, apierror.InvalidParam("cursor", "cursor is not one this API returned")
		}
		f.After = &c
	}
	return f, nil
}

// A cursor is base64url("<created_at unix µs>.<request id>"): opaque to clients, and carrying
// nothing that scopes it, since every query is already scoped to the caller's org.
func encodeCursor(c ledger.LogCursor) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%s", c.CreatedAt.UnixMicro(), c.RequestID))
}

func decodeCursor(s string) (ledger.LogCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ledger.LogCursor{}, err
	}
	us, id, ok := strings.Cut(string(raw), ".")
	micros, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || id == "" {
		return ledger.LogCursor{}, fmt.Errorf("malformed cursor")
	}
	return ledger.LogCursor{CreatedAt: time.UnixMicro(micros).UTC(), RequestID: id}, nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}
