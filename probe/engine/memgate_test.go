package engine

import (
	"runtime/debug"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/status"
)

// TestMemoryGate drives the gate with a fake reading: it shuts over the limit, stays shut until the memory is back
// under 95 % of it, reads no more often than gateInterval, counts its closings, and never shuts without a limit.
func TestMemoryGate(t *testing.T) {
	used, reads := int64(0), 0
	g := &memoryGate{limit: 1000, read: func() int64 { reads++; return used }}
	now := time.Unix(0, 0)
	step := func(u int64, want bool) {
		t.Helper()
		used = u
		now = now.Add(gateInterval)
		if got := g.shut(now); got != want {
			t.Fatalf("at %d of 1000 bytes: shut %v, want %v", u, got, want)
		}
	}
	step(900, false)
	step(1001, true)
	step(990, true) // under the limit, not yet under 95 %
	step(950, false)
	step(999, false)
	step(2000, true)
	if g.Closes != 2 {
		t.Errorf("%d closings, want 2", g.Closes)
	}
	r := reads
	used = 0
	if !g.shut(now.Add(gateInterval/2)) || reads != r {
		t.Errorf("read again within gateInterval (%d reads, %d before)", reads, r)
	}
	none := &memoryGate{read: func() int64 { return 1 << 62 }}
	if none.shut(now) {
		t.Error("a gate without a limit shut")
	}
}

// TestAdmissionWaitsOverMemoryLimit runs a scan with the runtime's soft memory limit far below what the process
// already uses: hosts are admitted one at a time (a host in flight always finishes), every one is probed, and the
// waits are counted.
func TestAdmissionWaitsOverMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(1 << 20)
	defer debug.SetMemoryLimit(prev)
	opts := testOptions()
	opts.HostsInFlight = 32
	hosts, stats := run(t, mustPlan(t, port(445, status.Open, 15*time.Millisecond)), opts, 20)
	debug.SetMemoryLimit(prev)
	if len(hosts) != 20 {
		t.Fatalf("%d hosts, want 20", len(hosts))
	}
	if stats.PeakHosts != 1 || stats.MemoryWaits == 0 {
		t.Errorf("peak hosts in flight %d, %d memory waits; want 1 and some", stats.PeakHosts, stats.MemoryWaits)
	}

	hosts, stats = run(t, mustPlan(t, port(445, status.Open, 15*time.Millisecond)), opts, 20)
	if len(hosts) != 20 || stats.PeakHosts != 20 || stats.MemoryWaits != 0 {
		t.Errorf("under the usual limit: %d hosts, peak %d, %d memory waits; want 20, 20, 0", len(hosts), stats.PeakHosts, stats.MemoryWaits)
	}
}
