package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tollgate/tollgate/ratelimit/limiter"
)

// Store applies a batch of limit requests atomically, in order, in one round
// trip. *limiter.Limiter is the Redis implementation.
type Store interface {
	Apply(ctx context.Context, reqs []limiter.Request) ([]limiter.Result, error)
}

// Server implements Envoy's RateLimitService. It is safe for concurrent use.
// Register it with rlsv3.RegisterRateLimitServiceServer.
type Server struct {
	rlsv3.UnimplementedRateLimitServiceServer

	store    Store
	limits   Limits
	ids      IDs // nil: not checked
	log      *slog.Logger
	failOpen bool
	timeout  time.Duration
	prefix   string

	// Both are throttled: an outage or a misconfigured Envoy would otherwise
	// log once per request.
	storeErrLog      sometimes
	badDescriptorLog sometimes
	refusedLog       sometimes
}

// NewServer returns a Server deciding with store and limits. From cfg it uses
// FailOpen, RedisTimeout and KeyPrefix (defaults applied as in Config). A nil
// log discards.
func NewServer(cfg Config, store Store, limits Limits, log *slog.Logger) *Server {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		store:            store,
		limits:           limits,
		ids:              cfg.IDs,
		log:              log,
		failOpen:         cfg.FailOpen,
		timeout:          cfg.RedisTimeout,
		prefix:           cfg.KeyPrefix,
		storeErrLog:      sometimes{every: 10 * time.Second},
		badDescriptorLog: sometimes{every: time.Minute},
		refusedLog:       sometimes{every: 10 * time.Second},
	}
}

// MaxHitsAddend is the largest hits_addend accepted, Envoy's own bound for a formatted one
// (source/extensions/filters/common/ratelimit_config/ratelimit_config.cc MAX_HITS_ADDEND): a
// legitimate Envoy never sends more.
const MaxHitsAddend = 1_000_000_000

// limited is a descriptor that has a limit, and where its status goes.
type limited struct {
	index int
	desc  Descriptor
	limit Limit
}

// ShouldRateLimit decides every descriptor of req in one Redis round trip.
//
// Calls a legitimate Envoy never makes with Tollgate's bootstrap are refused as a whole with a
// gRPC error, which Envoy turns into its failure mode (status_on_error with
// failure_mode_deny): InvalidArgument for a refund (is_negative_hits) or a hits_addend above
// MaxHitsAddend, PermissionDenied for a descriptor whose org, or key of that org, Tollgate
// never issued (Config.IDs). Nothing is consumed for a refused call.
func (s *Server) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	descs := req.GetDescriptors()
	if len(descs) == 0 {
		return nil, status.Error(codes.InvalidArgument, "ratelimit: request has no descriptors")
	}
	if req.GetHitsAddend() > MaxHitsAddend {
		return nil, s.refuse(ctx, codes.InvalidArgument, "hits_addend above 1e9")
	}
	resp := &rlsv3.RateLimitResponse{
		OverallCode: rlsv3.RateLimitResponse_OK,
		Statuses:    make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(descs)),
	}
	checks := make([]limited, 0, len(descs))
	reqs := make([]limiter.Request, 0, len(descs))
	// One deadline for the decision's store work: an id lookup on a cache miss and the Redis
	// round trip. It is shorter than Envoy's, so that even a fail-open answer arrives before
	// Envoy gives up on us.
	dctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var checked idPair // the last scope found issued: a call's descriptors share one org and key
	for i, rd := range descs {
		if rd.GetIsNegativeHits() {
			return nil, s.refuse(ctx, codes.InvalidArgument, "is_negative_hits (a refund)")
		}
		if h := rd.GetHitsAddend(); h != nil && h.GetValue() > MaxHitsAddend {
			return nil, s.refuse(ctx, codes.InvalidArgument, "descriptor hits_addend above 1e9")
		}
		resp.Statuses[i] = &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
		d, err := parseDescriptor(req.GetDomain(), rd.GetEntries())
		if err != nil {
			// Answering OK keeps traffic flowing, like envoyproxy/ratelimit
			// for descriptors it has no rule for, but it means a
			// configuration mistake, so say so.
			if ok, dropped := s.badDescriptorLog.allow(); ok {
				s.log.WarnContext(ctx, "ratelimit: descriptor not in Tollgate's shape, not limited",
					"error", err, "descriptor", i, "suppressed", dropped)
			}
			continue
		}
		if p := (idPair{d.Org, d.Key}); s.ids != nil && p != checked {
			issued, err := s.ids.Issued(dctx, d.Org, d.Key)
			if err != nil {
				return s.storeFailed(ctx, resp, err)
			}
			if !issued {
				return nil, s.refuse(ctx, codes.PermissionDenied, "org or key not issued by Tollgate")
			}
			checked = p
		}
		lim, ok := s.limits.Limit(ctx, d)
		if !ok || lim.PerUnit == 0 || lim.Unit <= 0 {
			continue
		}
		if lim.Name == "" {
			lim.Name = d.String()
		}
		hits, mode := hitsAndMode(rd, req.GetHitsAddend(), d.Quota)
		checks = append(checks, limited{index: i, desc: d, limit: lim})
		reqs = append(reqs, limiter.Request{Key: d.redisKey(s.prefix), Limit: lim.PerUnit, Period: lim.Unit, Hits: hits, Mode: mode})
	}
	if len(reqs) == 0 {
		return resp, nil
	}

	results, err := s.store.Apply(dctx, reqs)
	if err == nil && len(results) != len(reqs) {
		err = fmt.Errorf("store returned %d results for %d requests", len(results), len(reqs))
	}
	if err != nil {
		return s.storeFailed(ctx, resp, err)
	}

	for j, c := range checks {
		r := results[j]
		st := resp.Statuses[c.index]
		st.CurrentLimit = &rlsv3.RateLimitResponse_RateLimit{
			Name:            c.limit.Name,
			RequestsPerUnit: clamp32(c.limit.PerUnit),
			Unit:            protoUnit(c.limit.Unit),
		}
		st.LimitRemaining = clamp32(r.Remaining)
		st.DurationUntilReset = durationpb.New(r.Reset)
		if !r.Allowed {
			st.Code = rlsv3.RateLimitResponse_OVER_LIMIT
			resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
		}
	}
	addHeaders(resp, checks, results)
	return resp, nil
}

// refuse logs (throttled) and returns the error for a call no legitimate Envoy makes. The
// descriptor values are not logged: they are whatever the caller chose to send.
func (s *Server) refuse(ctx context.Context, code codes.Code, why string) error {
	if ok, dropped := s.refusedLog.allow(); ok {
		s.log.WarnContext(ctx, "ratelimit: call refused", "reason", why, "code", code.String(), "suppressed", dropped)
	}
	return status.Error(code, "ratelimit: refused: "+why)
}

// storeFailed answers when Redis (or the id lookup in Postgres) could not decide in time: OK without
// limits when failing open, Unavailable otherwise, which Envoy turns into
// status_on_error when its failure_mode_deny is set.
func (s *Server) storeFailed(ctx context.Context, resp *rlsv3.RateLimitResponse, err error) (*rlsv3.RateLimitResponse, error) {
	if ctx.Err() != nil {
		// Envoy gave up first; nobody reads this answer.
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if ok, dropped := s.storeErrLog.allow(); ok {
		s.log.ErrorContext(ctx, "ratelimit: redis unavailable",
			"error", err, "fail_open", s.failOpen, "suppressed", dropped)
	}
	if s.failOpen {
		return resp, nil
	}
	return nil, status.Error(codes.Unavailable, "ratelimit: rate-limit store unavailable")
}

// hitsAndMode reads how much a descriptor consumes. The descriptor's
// hits_addend overrides the request's, whose 0 means 1. Requests are admitted
// only if they fit; tokens are metered after the response (Record), and a
// zero hits_addend, sent on the request path, only checks.
func hitsAndMode(rd *ratelimitv3.RateLimitDescriptor, requestHits uint32, q Quota) (uint64, limiter.Mode) {
	hits := uint64(max(requestHits, 1))
	if h := rd.GetHitsAddend(); h != nil {
		hits = h.GetValue()
	}
	switch {
	case hits == 0:
		return 0, limiter.Check
	case q.Tokens():
		return hits, limiter.Record
	default:
		return hits, limiter.Admit
	}
}

func protoUnit(d time.Duration) rlsv3.RateLimitResponse_RateLimit_Unit {
	switch d {
	case time.Second:
		return rlsv3.RateLimitResponse_RateLimit_SECOND
	case time.Minute:
		return rlsv3.RateLimitResponse_RateLimit_MINUTE
	case time.Hour:
		return rlsv3.RateLimitResponse_RateLimit_HOUR
	case 24 * time.Hour:
		return rlsv3.RateLimitResponse_RateLimit_DAY
	case 7 * 24 * time.Hour:
		return rlsv3.RateLimitResponse_RateLimit_WEEK
	}
	return rlsv3.RateLimitResponse_RateLimit_UNKNOWN
}

func clamp32(v uint64) uint32 { return uint32(min(v, math.MaxUint32)) }
