package connect

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMinInFlight is the least the congestion window is cut to when Config gives no MinInFlight.
const DefaultMinInFlight = 256

// windowInterval is the shortest spacing of the window's moves: the losses of one burst are one signal, not many,
// and a recovery step waits for the answers of the last. The spacing is two smoothed round trips when that is
// longer, as TCP moves once per window of data.
const windowInterval = 200 * time.Millisecond

// windowSteps is how many additive steps take the window from nothing back to the socket budget: after a halving,
// half of that many intervals without a loss give the whole budget back (about 1.6 s on a fast network).
const windowSteps = 16

// window is the connector's congestion window: how many connects may be in flight, within the socket budget. A
// connect answered only to a SYN the kernel sent again, or a loss the scan reports (Lost), halves it, at most once an
// interval and never below the floor; each interval without a loss, in which connects were answered, gives back a
// sixteenth of the budget. Silence moves nothing: a port that never answers is a firewall's doing, not congestion.
// Times are nanoseconds since the connector opened. The connector's lock guards it.
type window struct {
	cwnd, floor, ceil int
	lowest            int
	backoffs          int
	srtt              int64
	last              int64 // when the window last moved, either way
	lastCut           int64 // when a loss last cut it
}

func newWindow(ceil, floor int) window {
	floor = min(max(floor, 1), ceil)
	return window{cwnd: ceil, floor: floor, ceil: ceil, lowest: ceil}
}

// interval is the spacing of the window's moves now.
func (w *window) interval() int64 { return max(int64(windowInterval), 2*w.srtt) }

// answered moves the window on an answer (a connection or a refusal) to a SYN that was not sent again, rtt after the
// connect call, at now; it reports whether the window grew.
func (w *window) answered(rtt time.Duration, now int64) bool {
	if w.srtt == 0 {
		w.srtt = int64(rtt)
	} else {
		w.srtt += (int64(rtt) - w.srtt) / 8
	}
	if w.cwnd >= w.ceil || now-w.last < w.interval() {
		return false
	}
	w.cwnd = min(w.ceil, w.cwnd+max(1, w.ceil/windowSteps))
	w.last = now
	return true
}

// lost halves the window for a loss seen at now, unless it moved within the interval; it reports whether it did.
func (w *window) lost(now int64) bool {
	if w.backoffs > 0 && now-w.lastCut < w.interval() {
		return false
	}
	w.cwnd = max(w.floor, w.cwnd/2)
	w.lowest = min(w.lowest, w.cwnd)
	w.backoffs++
	w.last, w.lastCut = now, now
	return true
}

// windowOn moves w, which mu guards, on an attempt's result r at now, and reports whether it grew (the sender has
// room again): an answer to a SYN the kernel sent again is a loss, counted in losses; any other answer (a connection,
// a refusal) is one that grows it. The connector and the SYN prober share it.
func windowOn(mu *sync.Mutex, w *window, losses *atomic.Uint64, r Result, now int64) bool {
	switch {
	case r.Outcome == Connected && r.Retransmitted:
		lostOn(mu, w, losses, now)
	case r.Outcome == Connected || r.Outcome == Refused:
		mu.Lock()
		defer mu.Unlock()
		return w.answered(r.RTT, now)
	}
	return false
}

// lostOn counts a loss in losses and cuts w, which mu guards.
func lostOn(mu *sync.Mutex, w *window, losses *atomic.Uint64, now int64) {
	losses.Add(1)
	mu.Lock()
	w.lost(now)
	mu.Unlock()
}

// counters are the atomic counts the connector and the SYN prober keep, read without their locks.
type counters struct {
	started, pushbacks, losses atomic.Uint64
	ended                      [Canceled + 1]atomic.Uint64 // by Outcome
}

// stats fills the counts of a Stats; the caller adds what its lock guards (the window, what is in flight).
func (n *counters) stats(maxInFlight int) Stats {
	return Stats{
		Started: n.started.Load(), Connected: n.ended[Connected].Load(), Refused: n.ended[Refused].Load(),
		Unreachable: n.ended[Unreachable].Load(), TimedOut: n.ended[TimedOut].Load(), Denied: n.ended[Denied].Load(),
		Failed: n.ended[Failed].Load(), LocalErrors: n.ended[LocalError].Load(), Canceled: n.ended[Canceled].Load(),
		Pushbacks: n.pushbacks.Load(), Losses: n.losses.Load(), MaxInFlight: maxInFlight,
	}
}
