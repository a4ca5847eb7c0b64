package engine

import (
	"sync"
	"time"
)

// RTT estimates a round trip as TCP does (RFC 6298) and nmap's ultra_scan does per host and per scan: a smoothed
// round trip (srtt) and its mean deviation (rttvar), updated from every answer that was the first try's (Karn's
// rule: an answer after a retry could belong to either try). The retransmission timeout is srtt + 4·rttvar.
//
// ofmprobe never shortens a timeout below what the user set (--timeout, --udp-timeout): a fast network costs nothing
// more than the user allowed, and a host that answers slowly is not cut off. It only lengthens it, when the answers
// show the network is slower than that, up to maxAdaptiveFactor times the setting.
type RTT struct {
	mu     sync.Mutex
	srtt   time.Duration
	rttvar time.Duration
	n      int
}

// maxAdaptiveFactor caps how far an adaptive timeout grows past the user's setting: 1.5 s becomes at most 6 s.
const maxAdaptiveFactor = 4

// Sample records one round trip.
func (r *RTT) Sample(d time.Duration) {
	if d <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		r.srtt, r.rttvar = d, d/2
	} else {
		delta := r.srtt - d
		if delta < 0 {
			delta = -delta
		}
		r.rttvar = (3*r.rttvar + delta) / 4
		r.srtt = (7*r.srtt + d) / 8
	}
	r.n++
}

// Estimate returns srtt, rttvar and the number of samples.
func (r *RTT) Estimate() (srtt, rttvar time.Duration, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.srtt, r.rttvar, r.n
}

// timeout is base, or srtt + 4·rttvar when that is longer, capped at maxAdaptiveFactor·base; ok is false without a
// sample.
func (r *RTT) timeout(base time.Duration) (time.Duration, bool) {
	est, ok := r.estimate()
	if !ok {
		return base, false
	}
	return min(max(base, est), maxAdaptiveFactor*base), true
}

// estimate is srtt + 4·rttvar; ok is false without a sample.
func (r *RTT) estimate() (time.Duration, bool) {
	srtt, rttvar, n := r.Estimate()
	return srtt + 4*rttvar, n > 0
}

// adaptiveTimeout is the timeout of one attempt to h: from the host's own answers when it has given some, else
// from the scan's, never below base.
func adaptiveTimeout(h *Host, scan *RTT, base time.Duration) time.Duration {
	if h != nil {
		if t, ok := h.rtt.timeout(base); ok {
			return t
		}
	}
	t, _ := scan.timeout(base)
	return t
}
