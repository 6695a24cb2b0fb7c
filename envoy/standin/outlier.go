package standin

import (
	"errors"
	"fmt"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// Envoy's outlier detection defaults (api/envoy/config/cluster/v3/outlier_detection.proto).
const (
	defaultConsecutive5xx     = 5
	defaultOutlierInterval    = 10 * time.Second
	defaultBaseEjectionTime   = 30 * time.Second
	defaultMaxEjectionTime    = 300 * time.Second
	defaultMaxEjectionPercent = 10
)

// outlierConfig is the consecutive-5xx part of a cluster's outlier_detection, the only part
// the stand-in implements.
type outlierConfig struct {
	consecutive5xx   uint32
	interval         time.Duration
	baseEjectionTime time.Duration
	maxEjectionPct   uint32
}

func parseOutlierDetection(od *clusterv3.OutlierDetection) (*outlierConfig, error) {
	if od == nil {
		return nil, nil
	}
	var errs []error
	cfg := &outlierConfig{
		consecutive5xx:   defaultConsecutive5xx,
		interval:         defaultOutlierInterval,
		baseEjectionTime: defaultBaseEjectionTime,
		maxEjectionPct:   defaultMaxEjectionPercent,
	}
	if v := od.GetConsecutive_5Xx(); v != nil {
		cfg.consecutive5xx = v.GetValue()
	}
	if v := od.GetInterval(); v != nil {
		cfg.interval = v.AsDuration()
	}
	if v := od.GetBaseEjectionTime(); v != nil {
		cfg.baseEjectionTime = v.AsDuration()
	}
	if v := od.GetMaxEjectionPercent(); v != nil {
		cfg.maxEjectionPct = v.GetValue()
	}
	// Enforcement is a percentage chance; only "always" is implemented, to stay deterministic.
	if v := od.GetEnforcingConsecutive_5Xx(); v != nil && v.GetValue() != 100 {
		errs = append(errs, fmt.Errorf("enforcing_consecutive_5xx %d: only 100 is implemented by the stand-in", v.GetValue()))
	}
	// Success-rate ejection is enforced by default (100%); the stand-in does not compute
	// success rates, so the bootstrap must turn it off.
	if v := od.GetEnforcingSuccessRate(); v == nil || v.GetValue() != 0 {
		errs = append(errs, errors.New("enforcing_success_rate: success-rate ejection is not implemented by the stand-in; set it to 0"))
	}
	if cfg.interval <= 0 || cfg.baseEjectionTime <= 0 {
		errs = append(errs, errors.New("interval and base_ejection_time must be positive"))
	}
	return cfg, errors.Join(errs...)
}

// outlierDetector ejects a host after consecutive_5xx failures in a row, for
// base_ejection_time × times ejected (at most max(base, 300s)); ejections are lifted on the
// detector's interval ticks, never between them. Failures are 5xx responses and, with
// split_external_local_origin_errors off (the default), local-origin errors mapped to 5xx:
// connect failures (503), timeouts (504) and resets. A host is only ejected while the
// ejected share stays within max_ejection_percent, and at least one host can always be
// ejected. Safe for concurrent use. The decrement of the ejection multiplier on healthy
// intervals is not implemented.
//
// Envoy: source/common/upstream/outlier_detection_impl.cc DetectorHostMonitorImpl::
// putHttpResponseCode, putResult (local origin mapped to 5xx), DetectorImpl::onConsecutive5xx,
// ejectHost, checkHostForUneject, onIntervalTimer.
type outlierDetector struct {
	cfg   outlierConfig
	start time.Time
	total int

	mu      sync.Mutex
	hosts   map[*endpoint]*hostOutlier
	ejected int
}

type hostOutlier struct {
	consecutive5xx uint32
	ejected        bool
	ejectedAt      time.Time
	numEjections   uint32
}

func newOutlierDetector(cfg *outlierConfig, total int, now time.Time) *outlierDetector {
	if cfg == nil {
		return nil
	}
	return &outlierDetector{cfg: *cfg, start: now, total: total, hosts: map[*endpoint]*hostOutlier{}}
}

// putResult records one attempt's outcome for ep.
func (d *outlierDetector) putResult(ep *endpoint, failed bool, now time.Time) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unejectDue(now)
	h := d.host(ep)
	if !failed {
		h.consecutive5xx = 0
		return false
	}
	h.consecutive5xx++
	if h.ejected || h.consecutive5xx < d.cfg.consecutive5xx {
		return false
	}
	if d.ejected > 0 && uint32((d.ejected+1)*100/d.total) > d.cfg.maxEjectionPct {
		return false
	}
	h.ejected, h.ejectedAt = true, now
	h.numEjections++
	h.consecutive5xx = 0
	d.ejected++
	return true
}

// isEjected reports whether ep is ejected at now.
func (d *outlierDetector) isEjected(ep *endpoint, now time.Time) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unejectDue(now)
	h, ok := d.hosts[ep]
	return ok && h.ejected
}

func (d *outlierDetector) host(ep *endpoint) *hostOutlier {
	h, ok := d.hosts[ep]
	if !ok {
		h = &hostOutlier{}
		d.hosts[ep] = h
	}
	return h
}

// unejectDue lifts the ejections whose time ran out at the last interval tick before now.
func (d *outlierDetector) unejectDue(now time.Time) {
	ticks := now.Sub(d.start) / d.cfg.interval
	lastTick := d.start.Add(ticks * d.cfg.interval)
	maxEject := max(d.cfg.baseEjectionTime, defaultMaxEjectionTime)
	for _, h := range d.hosts {
		if !h.ejected {
			continue
		}
		ejectFor := min(d.cfg.baseEjectionTime*time.Duration(h.numEjections), maxEject)
		if !lastTick.Before(h.ejectedAt.Add(ejectFor)) {
			h.ejected = false
			d.ejected--
		}
	}
}
