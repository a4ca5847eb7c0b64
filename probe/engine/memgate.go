package engine

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// memoryGate holds back the admission of hosts while the Go runtime's memory is over its soft limit (the scan's
// budget, --memory, or GOMEMLIMIT). The bound on hosts in flight is derived from that budget with room to spare, and
// normally the collector keeps the process under the limit by working harder. When it cannot (the hosts in flight
// and the protocol exchanges are holding more than the budget allowed for, as on a slow network where every
// exchange waits), admitting more hosts would only grow the process further; once the memory is back under 95 % of
// the limit, admission goes on. It reads the runtime's metrics at most every gateInterval.
type memoryGate struct {
	limit   int64 // the soft limit when the run began; 0: none, the gate never closes
	read    func() int64
	next    time.Time
	closed  bool
	Closes  int64 // how often the gate closed
	samples []metrics.Sample
}

// gateInterval is how often the gate reads the runtime's metrics.
const gateInterval = 10 * time.Millisecond

// newMemoryGate returns a gate on the runtime's current soft memory limit.
func newMemoryGate() *memoryGate {
	g := &memoryGate{samples: []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}}
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		g.limit = l
	}
	g.read = g.runtimeMemory
	return g
}

// runtimeMemory is the memory the runtime's soft limit counts: everything it has mapped, less what it returned to
// the operating system.
func (g *memoryGate) runtimeMemory() int64 {
	metrics.Read(g.samples)
	var v [2]uint64
	for i, s := range g.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	return int64(v[0] - min(v[0], v[1]))
}

// shut reports whether admission waits: the memory read at most gateInterval ago is over the limit, or, after that,
// not yet back under 95 % of it.
func (g *memoryGate) shut(now time.Time) bool {
	if g.limit == 0 {
		return false
	}
	if now.Before(g.next) {
		return g.closed
	}
	g.next = now.Add(gateInterval)
	used := g.read()
	switch {
	case !g.closed && used > g.limit:
		g.closed = true
		g.Closes++
	case g.closed && used <= g.limit/100*95:
		g.closed = false
	}
	return g.closed
}
