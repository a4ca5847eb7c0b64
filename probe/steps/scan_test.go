package steps_test

// Whole-scan tests: the registry's real steps run through engine.New and Run, against loopback fakes or a scripted
// dialer that sends nothing. The engine's scheduler has its own tests with fake steps in probe/engine; these prove
// the same budgets, panics, stops and aborts hold with the steps a scan really runs.

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

// newEngine returns an engine for plan with the tests' default options filled in.
func newEngine(t *testing.T, plan *engine.Plan, opts engine.Options) (*engine.Engine, engine.Options) {
	t.Helper()
	opts = probetest.Options(opts)
	e, err := engine.New(plan, opts)
	probetest.Must(t, err)
	return e, opts
}

// include parses target expressions of the benchmark range, for a scripted dialer.
func include(t *testing.T, expr string) *targets.Set {
	set := &targets.Set{}
	probetest.Must(t, (&targets.Parser{}).Include(context.Background(), set, expr))
	return set
}

// withHostStart returns a plan of a step that calls start(h) as each host begins, as the old scanner's beforeHost
// did, and the TCP connect steps for ports. The step holds no socket (a Start step) and comes first in the plan, so
// it runs when the host is admitted, before the per-host cap lets any connect start.
func withHostStart(t *testing.T, ports []int, start func(h *engine.Host)) *engine.Plan {
	s := engine.Step{Name: "host start", Start: func(_ context.Context, _ *engine.Env, h *engine.Host, done func(engine.Result)) {
		start(h)
		done(nil)
	}}
	p, err := engine.NewPlan(append([]engine.Step{s}, tcp.Steps(ports, 0, 0)...), nil)
	probetest.Must(t, err)
	return p
}

// TestSilentHostIsUnreachable: a host where every probe met silence is unreachable as a whole, not "all filtered".
func TestSilentHostIsUnreachable(t *testing.T) {
	cfg := steps.Config{Ports: []int{probetest.SilentPort(t), probetest.SilentPort(t)}}
	h := probetest.Scan(t, cfg, engine.Options{Retries: 0}, "127.0.0.1", "tcp")
	if h.Status != engine.HostUnreachable || !h.Unreachable() {
		t.Fatalf("status %q, want unreachable", h.Status)
	}
	g := catalog.Grade(catalog.Profile{ID: "p", Requirements: []catalog.Requirement{{
		ID: "r", Severity: catalog.Required, Match: catalog.MatchAll,
		Checks: []catalog.Check{{Kind: "tcp", Port: h.Ports()[0].Port, Pass: []string{"open"}}},
	}}}, h)
	if g.Grade != catalog.GradeUnreachable {
		t.Errorf("grade %q, want unreachable", g.Grade)
	}
}

func TestSchedulerBoundsSocketsAndPerHost(t *testing.T) {
	d := &probetest.ScriptedDialer{Hold: 5 * time.Millisecond, Script: func(int, string) error { return nil }}
	plan := probetest.Plan(t, steps.Config{Ports: []int{53, 135, 139, 445, 8080, 8081}}, "tcp")
	e, opts := newEngine(t, plan, engine.Options{Sockets: 7, PerHost: 2, Dialer: d})
	var n int
	e.Run(context.Background(), probetest.SafeTargets(t, plan, opts, include(t, "198.18.0.0/26").All()), func(h *engine.Host) {
		n++
		if len(h.Ports()) != 6 || h.Status != engine.HostUp {
			t.Errorf("%s: %d ports, status %s", h.Addr, len(h.Ports()), h.Status)
		}
	})
	if n != 64 {
		t.Errorf("emitted %d hosts, want 64", n)
	}
	if p := d.Peak(); p > 7 || p < 4 {
		t.Errorf("peak sockets in flight %d, want at most the budget 7 (and the budget used)", p)
	}
	if p := d.PeakHost(); p > 2 {
		t.Errorf("peak probes to one host %d, want at most 2", p)
	}
}

func TestWorkerPanicBecomesInternal(t *testing.T) {
	d := &probetest.ScriptedDialer{Script: func(int, string) error { return nil }}
	plan := withHostStart(t, []int{445}, func(h *engine.Host) {
		if h.Addr.String() == "198.18.0.11" {
			panic("injected fault")
		}
	})
	e, opts := newEngine(t, plan, engine.Options{Dialer: d})
	got := map[string]*engine.Host{}
	stats := e.Run(context.Background(), probetest.SafeTargets(t, plan, opts, include(t, "198.18.0.10-12").All()), func(h *engine.Host) { got[h.Addr.String()] = h })
	if len(got) != 3 || stats.Internal != 1 {
		t.Fatalf("got %d hosts, %d internal; want 3 and 1", len(got), stats.Internal)
	}
	bad := got["198.18.0.11"]
	if bad.Status != engine.HostInternal || bad.Error != "panic: host start: injected fault" || !strings.Contains(bad.Stack, "TestWorkerPanicBecomesInternal") {
		t.Errorf("panicking host: status %q error %q", bad.Status, bad.Error)
	}
	if p, _ := bad.Port(445); p.State != status.Open {
		t.Errorf("panicking host: tcp 445 %+v, want the connect's result kept", p)
	}
	for _, a := range []string{"198.18.0.10", "198.18.0.12"} {
		if got[a].Status != engine.HostUp {
			t.Errorf("%s: status %q, want up: the scan must go on after a panic", a, got[a].Status)
		}
	}
}

func TestStopKeepsFinishedHosts(t *testing.T) {
	d := &probetest.ScriptedDialer{Hold: 20 * time.Millisecond, Script: func(int, string) error { return nil }}
	var stopped atomic.Bool
	var startedAfterStop atomic.Int64
	plan := withHostStart(t, []int{445}, func(*engine.Host) {
		if stopped.Load() {
			startedAfterStop.Add(1)
		}
	})
	// Four hosts in flight, as the old scanner's host limit gave for 4 sockets and 1 probe per host.
	e, opts := newEngine(t, plan, engine.Options{Sockets: 4, PerHost: 1, HostsInFlight: 4, Dialer: d})
	var n int
	stats := e.Run(context.Background(), probetest.SafeTargets(t, plan, opts, include(t, "198.18.16.0/20").All()), func(h *engine.Host) {
		n++
		if n == 10 {
			stopped.Store(true)
			e.Stop()
		}
	})
	// Hosts admitted before the scheduler saw Stop may still start: at most the hosts in flight (4) and the one
	// being admitted. Nothing new is fed.
	if !stats.Stopped || n < 10 || n > 100 || startedAfterStop.Load() > 4+1 {
		t.Errorf("stopped=%v after %d hosts, %d started after Stop; want a prompt stop", stats.Stopped, n, startedAfterStop.Load())
	}
	if int64(n) != stats.Hosts {
		t.Errorf("emitted %d, stats say %d: every started host must be emitted", n, stats.Hosts)
	}
}

// TestAbortEndsProbesInFlight: cancelling the context (a second Ctrl-C) ends probes at once, without waiting for their
// timeouts, and the host is still emitted, its ports marked as cancelled rather than given a state.
func TestAbortEndsProbesInFlight(t *testing.T) {
	d := &probetest.ScriptedDialer{Hold: time.Minute, Script: func(int, string) error { return nil }}
	plan := probetest.Plan(t, steps.Config{Ports: []int{445}}, "tcp")
	e, opts := newEngine(t, plan, engine.Options{Timeout: 10 * time.Second, Dialer: d})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	var hosts []*engine.Host
	one := func(yield func(targets.Target) bool) { yield(targets.Target{Addr: probetest.Loopback}) }
	e.Run(ctx, probetest.SafeTargets(t, plan, opts, one), func(h *engine.Host) { hosts = append(hosts, h) })
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("abort took %s, want about 100ms", took)
	}
	if len(hosts) != 1 {
		t.Fatalf("got %d hosts, want one", len(hosts))
	}
	if p, _ := hosts[0].Port(445); p.State != status.Error || p.Evidence != "tcp 445: scan cancelled" || !hosts[0].Aborted {
		t.Fatalf("got %+v (aborted %v), want the host with its port cancelled", p, hosts[0].Aborted)
	}
}

// TestRunLeavesNoWorkers: the step workers end with the run; a scan leaves no goroutine behind.
func TestRunLeavesNoWorkers(t *testing.T) {
	d := &probetest.ScriptedDialer{Hold: time.Millisecond, Script: func(int, string) error { return nil }}
	plan := probetest.Plan(t, steps.Config{Ports: []int{135, 139, 445}}, "tcp")
	opts := probetest.Options(engine.Options{Sockets: 128, PerHost: 3, Dialer: d})
	run := func(n int) engine.Stats {
		e, err := engine.New(plan, opts)
		probetest.Must(t, err)
		return e.Run(context.Background(), probetest.SafeTargets(t, plan, opts, probetest.ScriptedTargets(n)), func(*engine.Host) {})
	}
	run(10) // warm up what starts once per process
	before := probetest.SettledGoroutines(0)
	if stats := run(500); stats.Hosts != 500 {
		t.Fatalf("%d hosts", stats.Hosts)
	}
	if n := probetest.SettledGoroutines(before); n > before {
		t.Errorf("%d goroutines after the run, %d before: the workers did not end", n, before)
	}
}

// TestRateCapsNewConnections: with --rate 200, 100 connects take about half a second, not the millisecond they
// would take unpaced.
func TestRateCapsNewConnections(t *testing.T) {
	d := &probetest.ScriptedDialer{Script: func(int, string) error { return nil }}
	plan := probetest.Plan(t, steps.Config{Ports: []int{445}}, "tcp")
	e, opts := newEngine(t, plan, engine.Options{Sockets: 64, Rate: 200, Dialer: d})
	start := time.Now()
	stats := e.Run(context.Background(), probetest.SafeTargets(t, plan, opts, probetest.ScriptedTargets(100)), func(*engine.Host) {})
	took := time.Since(start)
	if stats.Hosts != 100 {
		t.Fatalf("%d hosts", stats.Hosts)
	}
	// 100 connects at 200/s with a burst of 4: at least (100-4)/200 s.
	if took < 450*time.Millisecond {
		t.Errorf("100 connects at --rate 200 took %s, want at least 0.45 s", took)
	}
	if took > 5*time.Second {
		t.Errorf("100 connects at --rate 200 took %s: the pacing is far too slow", took)
	}
}

// TestLocalFailureIsNotSilence: when this machine cannot send datagrams at all, node status is an error (a skip in
// the grades), never "open|filtered", and the host is not called unreachable on the strength of it. The failure is
// injected in the mux's pacing, before anything is sent.
func TestLocalFailureIsNotSilence(t *testing.T) {
	port := probetest.ClosedUDPPort(t)
	cfg := steps.Config{NetBIOS: nbt.Config{NodeStatusPort: uint16(port), SessionPort: 139}}
	opts := engine.Options{UDPTimeout: 50 * time.Millisecond, Sockets: 8}
	opts.Datagram.Pace = func(context.Context) error { return os.NewSyscallError("socket", syscall.EINVAL) }
	h := probetest.Scan(t, cfg, opts, "127.0.0.1", "nbstat")
	ns, ok := nbt.NodeStatusOf(h)
	want := "nbstat 137: not sent, this machine ran out of resources: datagram: pace 127.0.0.1:" + strconv.Itoa(port) + ": socket: invalid argument"
	if !ok || ns.State != status.Error || ns.Evidence != want || ns.Attempts != 0 {
		t.Fatalf("node status %+v, want an error blaming this machine: %q", ns, want)
	}
	if o := h.Observe(catalog.Check{Kind: "nbstat", Port: 137}); o.Skipped != want || o.State != "" {
		t.Errorf("a local failure graded as a state: %+v", o)
	}
	if h.Status == engine.HostUnreachable {
		t.Error("a host this machine could not probe is called unreachable")
	}
}

// TestNetBIOSSkippedOnIPv6: NetBIOS runs over IPv4 only; an IPv6 host says so instead of reporting silence.
func TestNetBIOSSkippedOnIPv6(t *testing.T) {
	closed := probetest.ClosedPort(t)
	cfg := steps.Config{Ports: []int{closed}, NetBIOS: nbt.Config{NodeStatusPort: uint16(probetest.ClosedUDPPort(t)), SessionPort: uint16(closed)}}
	h := probetest.Scan(t, cfg, engine.Options{UDPTimeout: time.Second}, "::1", "tcp", "nbstat", "nbss")
	if ns, ok := nbt.NodeStatusOf(h); ok {
		t.Errorf("node status asked over IPv6: %+v", ns)
	}
	if s, ok := nbt.SessionOf(h); ok {
		t.Errorf("session requested over IPv6: %+v", s)
	}
	for _, c := range []catalog.Check{{Kind: "nbstat", Port: 137}, {Kind: "nbss", Port: closed}} {
		if o := h.Observe(c); o.Skipped != "NetBIOS runs over IPv4 only" || o.State != "" {
			t.Errorf("%s observation %+v", c.Kind, o)
		}
	}
}
