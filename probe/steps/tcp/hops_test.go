package tcp_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
	"github.com/ofmprobe/ofmprobe/probe/targets"
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

// TestHopsTracedWhileVerifying: a silent port of a host that answers another port is traced beside its
// verification round, not after it: the hop finder collects that trace and sends nothing more (one TTL-limited
// connect in all, where the port's own connects are its first attempt and the round's three), so the hop finder's
// step takes no time of its own, where a trace after the round waits at least a hop's 100 ms (a third of the
// 300 ms timeout). The engine's step trace shows how long it took.
func TestHopsTracedWhileVerifying(t *testing.T) {
	closed, silent := probetest.ClosedPort(t), probetest.SilentPort(t)
	plan := probetest.Plan(t, steps.Config{Ports: []int{closed, silent}, MaxHops: 3}, "tcp", "hops")
	opts := probetest.Options(engine.Options{Retries: 1})
	e, err := engine.New(plan, opts)
	probetest.Must(t, err)
	one := func(yield func(targets.Target) bool) { yield(targets.Target{Addr: netip.MustParseAddr("127.0.0.1")}) }
	var steps strings.Builder
	e.SetTrace(&steps)
	var h *engine.Host
	stats := e.Run(context.Background(), probetest.SafeTargets(t, plan, opts, one), func(got *engine.Host) { h = got })
	var took time.Duration = -1
	for _, line := range strings.Split(steps.String(), "\n") {
		var start, end float64
		if f := strings.Split(line, "\t"); len(f) == 4 && f[1] == tcp.HopsStepName {
			fmt.Sscan(f[2], &start)
			fmt.Sscan(f[3], &end)
			took = time.Duration((end - start) * float64(time.Millisecond))
		}
	}
	if took < 0 || took > 50*time.Millisecond {
		t.Errorf("the hop finder's step took %s after the connects (trace:\n%s): it traced after the verification", took, steps.String())
	}
	paths, ok := tcp.PathsOf(h)
	if !ok || len(paths) != 1 || paths[0].Port != silent || paths[0].Outcome != "dropped" {
		t.Fatalf("paths %+v (%v), want the silent port dropped at the first hop", paths, ok)
	}
	if p, _ := h.Port(silent); p.Attempts != 2+tcp.VerifyTries {
		t.Errorf("silent port %+v, want its first attempt and a round of %d", p, 1+tcp.VerifyTries)
	}
	// The closed port, the silent port's 4 attempts and one trace connect.
	if c := stats.Connects.Started; c != 6 {
		t.Errorf("%d connects, want 6: the port was traced twice, or not beside its round", c)
	}
}
