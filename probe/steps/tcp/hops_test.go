package tcp_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
)

// TestHopsOnLoopback traces a silent loopback port of a host that refuses another: loopback has no router, so the
// first SYN (TTL 1) already reaches the silent listener's queue and nothing answers: dropped at the first hop.
// A host with no silent port, or one that answered no TCP port, is not traced.
func TestHopsOnLoopback(t *testing.T) {
	closed, silent := probetest.ClosedPort(t), probetest.SilentPort(t)
	h := probetest.Scan(t, steps.Config{Ports: []int{closed, silent}, MaxHops: 3}, engine.Options{Retries: 1}, "127.0.0.1", "tcp", "hops")
	paths, ok := tcp.PathsOf(h)
	if !ok || len(paths) != 1 {
		t.Fatalf("paths %+v (%v), want one", paths, ok)
	}
	p := paths[0]
	if p.Port != silent || p.Outcome != "dropped" || p.DroppedAfter != 0 || !strings.HasPrefix(p.Evidence, fmt.Sprintf("tcp %d: dropped at the first hop", silent)) {
		t.Errorf("path %+v", p)
	}
	// --hops 0: no trace.
	h = probetest.Scan(t, steps.Config{Ports: []int{closed, silent}}, engine.Options{Retries: 1}, "127.0.0.1", "tcp")
	if _, ok := tcp.PathsOf(h); ok {
		t.Error("traced with MaxHops 0")
	}
	// Nothing answered: no trace.
	h = probetest.Scan(t, steps.Config{Ports: []int{silent}, MaxHops: 3}, engine.Options{Retries: 0}, "127.0.0.1", "tcp", "hops")
	if why, skipped := h.Skipped(tcp.HopsStepName); !skipped || !strings.Contains(why, "answered no TCP port") {
		t.Errorf("a host that answered nothing: skipped %v (%q)", skipped, why)
	}
}
