package engine

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

func testOptions() Options {
	return Options{Timeout: time.Second, UDPTimeout: time.Second, Sockets: 64, PerHost: 8, HostsInFlight: 64}
}

func addrs(n int) func(yield func(targets.Target) bool) {
	return func(yield func(targets.Target) bool) {
		a := netip.MustParseAddr("198.18.0.0")
		for range n {
			if !yield(targets.Target{Addr: a}) {
				return
			}
			a = a.Next()
		}
	}
}

func mustPlan(t *testing.T, steps ...Step) *Plan {
	t.Helper()
	p, err := NewPlan(steps, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, p *Plan, opts Options, n int) ([]*Host, Stats) {
	t.Helper()
	e, err := New(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []*Host
	stats := e.Run(context.Background(), addrs(n), func(h *Host) { hosts = append(hosts, h) })
	return hosts, stats
}

// port is a fake TCP step whose result is the given state.
func port(n int, st status.State, hold time.Duration) Step {
	return Step{
		Name: fmt.Sprintf("tcp %d", n), Key: "tcp", Answers: []string{"tcp"},
		Run: func(ctx context.Context, _ *Env, _ *Host) Result {
			select {
			case <-time.After(hold):
			case <-ctx.Done():
				return PortResult{Port: n, Protocol: "tcp", State: status.Error, Evidence: "cancelled"}
			}
			return PortResult{Port: n, Protocol: "tcp", State: st}
		},
		Internal: func(why string) Result {
			return PortResult{Port: n, Protocol: "tcp", State: status.Error, Evidence: why}
		},
		Observe: func(h *Host, c catalog.Check) catalog.Observation {
			p, _ := h.Port(c.Port)
			return catalog.Observation{State: string(p.State)}
		},
	}
}

func TestPlanOrdersDependenciesFirst(t *testing.T) {
	noop := func(context.Context, *Env, *Host) Result { return nil }
	p := mustPlan(t,
		Step{Name: "share", Requires: []string{"smb"}, Run: noop},
		Step{Name: "smb", Requires: []string{"tcp 445"}, After: []string{"nbstat"}, Run: noop},
		Step{Name: "tcp 445", Run: noop},
		Step{Name: "tcp 139", Run: noop},
	)
	if got, want := p.Steps(), []string{"tcp 445", "smb", "share", "tcp 139"}; !slices.Equal(got, want) {
		t.Errorf("plan order %v, want %v (an After step not in the plan is ignored)", got, want)
	}
	for _, tc := range []struct {
		steps []Step
		want  string
	}{
		{[]Step{{Name: "a", Requires: []string{"b"}, Run: noop}}, "step a requires b, which is not in the plan"},
		{[]Step{{Name: "a", Requires: []string{"b"}, Run: noop}, {Name: "b", After: []string{"a"}, Run: noop}}, "cycle"},
		{[]Step{{Name: "a", Run: noop}, {Name: "a", Run: noop}}, "registered twice"},
		{[]Step{{Name: "a"}}, "exactly one of Run and Start"},
	} {
		if _, err := NewPlan(tc.steps, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewPlan: error %v, want one containing %q", err, tc.want)
		}
	}
}

// TestDependenciesAreRespected runs a dependent step only after its dependency and only when its When holds, and
// records the reason when it does not.
func TestDependenciesAreRespected(t *testing.T) {
	var order sync.Map
	var seq atomic.Int64
	mark := func(name string) { order.Store(name, seq.Add(1)) }
	p := mustPlan(t,
		port(445, status.Open, 5*time.Millisecond),
		port(139, status.Closed, 0),
		Step{Name: "smb", Requires: []string{"tcp 445"}, When: PortOpen(445),
			Run: func(_ context.Context, _ *Env, h *Host) Result {
				if _, ok := h.Port(445); !ok {
					t.Error("smb ran before tcp 445 was decided")
				}
				mark("smb")
				return "smb done"
			}},
		Step{Name: "nbss", Requires: []string{"tcp 139"}, When: PortOpen(139),
			Run: func(context.Context, *Env, *Host) Result { t.Error("nbss ran with 139 closed"); return nil }},
		Step{Name: "share", Requires: []string{"smb"}, When: func(h *Host) (bool, string) {
			r, ok := h.Result("smb")
			return ok && r == "smb done", "no smb"
		}, Run: func(context.Context, *Env, *Host) Result { mark("share"); return "mounted" }},
	)
	hosts, _ := run(t, p, testOptions(), 20)
	if len(hosts) != 20 {
		t.Fatalf("%d hosts emitted, want 20", len(hosts))
	}
	for _, h := range hosts {
		if r, _ := h.Result("share"); r != "mounted" {
			t.Errorf("%s: share result %v", h.Addr, r)
		}
		if why, ok := h.Skipped("nbss"); !ok || why != "tcp 139 is closed" {
			t.Errorf("%s: nbss skipped %v with %q, want the closed port as the reason", h.Addr, ok, why)
		}
		if h.Status != HostUp || len(h.Ports()) != 2 {
			t.Errorf("%s: status %s, ports %v", h.Addr, h.Status, h.Ports())
		}
	}
}

// TestBudgetsHold checks the socket budget, the per-host cap and the hosts-in-flight bound under load.
func TestBudgetsHold(t *testing.T) {
	var inFlight, peak atomic.Int64
	perHost := sync.Map{}
	var perHostPeak atomic.Int64
	step := func(n int) Step {
		return Step{Name: fmt.Sprintf("tcp %d", n), Run: func(_ context.Context, _ *Env, h *Host) Result {
			c := inFlight.Add(1)
			for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
			}
			v, _ := perHost.LoadOrStore(h.Addr, new(atomic.Int64))
			hc := v.(*atomic.Int64).Add(1)
			for p := perHostPeak.Load(); hc > p && !perHostPeak.CompareAndSwap(p, hc); p = perHostPeak.Load() {
			}
			time.Sleep(2 * time.Millisecond)
			v.(*atomic.Int64).Add(-1)
			inFlight.Add(-1)
			return PortResult{Port: n, Protocol: "tcp", State: status.Open}
		}}
	}
	var steps []Step
	for i := range 6 {
		steps = append(steps, step(1000+i))
	}
	opts := testOptions()
	opts.Sockets, opts.PerHost, opts.HostsInFlight = 16, 2, 10
	hosts, stats := run(t, mustPlan(t, steps...), opts, 200)
	if len(hosts) != 200 {
		t.Fatalf("%d hosts, want 200", len(hosts))
	}
	if p := peak.Load(); p > 16 {
		t.Errorf("%d steps held sockets at once, budget 16", p)
	}
	if p := perHostPeak.Load(); p > 2 {
		t.Errorf("%d steps in flight to one host, cap 2", p)
	}
	if stats.PeakHosts > 10 || stats.PeakHosts < 2 {
		t.Errorf("peak hosts in flight %d, bound 10", stats.PeakHosts)
	}
}

// TestStartStepsHoldNoGoroutine runs hosts whose only step waits on a timer, as a UDP query waits for silence: the
// goroutines in flight must not grow with the hosts waiting.
func TestStartStepsHoldNoGoroutine(t *testing.T) {
	var waiting sync.WaitGroup
	release := make(chan struct{})
	var mu sync.Mutex
	var dones []func(Result)
	p := mustPlan(t, Step{Name: "nbstat", Start: func(_ context.Context, _ *Env, h *Host, done func(Result)) {
		mu.Lock()
		dones = append(dones, done)
		mu.Unlock()
		waiting.Done()
	}})
	opts := testOptions()
	opts.HostsInFlight = 5000
	e, _ := New(p, opts)
	waiting.Add(5000)
	before := runtime.NumGoroutine()
	var emitted atomic.Int64
	finished := make(chan Stats)
	go func() { finished <- e.Run(context.Background(), addrs(5000), func(*Host) { emitted.Add(1) }) }()
	waiting.Wait()
	if g := runtime.NumGoroutine() - before; g > 20 {
		t.Errorf("%d goroutines for 5000 hosts waiting on datagrams", g)
	}
	close(release)
	mu.Lock()
	for _, d := range dones {
		d(PortResult{Port: 137, Protocol: "udp", State: status.OpenFiltered})
	}
	mu.Unlock()
	stats := <-finished
	if emitted.Load() != 5000 || stats.PeakHosts != 5000 {
		t.Errorf("emitted %d, peak %d; want 5000 and 5000", emitted.Load(), stats.PeakHosts)
	}
}

// TestPanicBecomesInternal keeps the host's other facts when one step panics, and the scan goes on.
func TestPanicBecomesInternal(t *testing.T) {
	p := mustPlan(t,
		port(445, status.Open, 0),
		Step{Name: "tcp 139", Run: func(context.Context, *Env, *Host) Result { panic("injected fault") },
			Internal: func(why string) Result {
				return PortResult{Port: 139, Protocol: "tcp", State: status.Error, Evidence: why}
			}},
		Step{Name: "nbstat", Start: func(context.Context, *Env, *Host, func(Result)) { panic("start fault") }},
	)
	hosts, stats := run(t, p, testOptions(), 3)
	if len(hosts) != 3 || stats.Internal != 3 {
		t.Fatalf("%d hosts, %d internal; want 3 and 3", len(hosts), stats.Internal)
	}
	for _, h := range hosts {
		if h.Status != HostInternal || !strings.Contains(h.Error, "injected fault") && !strings.Contains(h.Error, "start fault") || h.Stack == "" {
			t.Errorf("%s: status %s, error %q", h.Addr, h.Status, h.Error)
		}
		if p, _ := h.Port(445); p.State != status.Open {
			t.Errorf("%s: tcp 445 %q, want the fact found before the panic kept", h.Addr, p.State)
		}
		if p, _ := h.Port(139); p.State != status.Error || p.Evidence != "internal error in this step" {
			t.Errorf("%s: tcp 139 %+v, want the step's internal result", h.Addr, p)
		}
	}
}

// TestStopKeepsFinishedHosts stops a run part-way: the hosts started are emitted whole, no new ones start.
func TestStopKeepsFinishedHosts(t *testing.T) {
	p := mustPlan(t, port(445, status.Open, 20*time.Millisecond))
	opts := testOptions()
	opts.HostsInFlight = 4
	e, _ := New(p, opts)
	var n atomic.Int64
	stats := e.Run(context.Background(), addrs(1000), func(h *Host) {
		if n.Add(1) == 4 {
			e.Stop()
		}
		if pr, _ := h.Port(445); pr.State != status.Open {
			t.Errorf("%s emitted unfinished: %+v", h.Addr, pr)
		}
	})
	if !stats.Stopped || stats.Hosts >= 1000 || stats.Hosts < 4 {
		t.Errorf("stats %+v: want stopped with the hosts in flight emitted", stats)
	}
}

// TestAbortEndsStepsInFlight cancels a run whose steps would wait a minute: it ends at once, every host emitted and
// marked aborted, and no worker is left behind.
func TestAbortEndsStepsInFlight(t *testing.T) {
	before := runtime.NumGoroutine()
	p := mustPlan(t, port(445, status.Open, time.Minute))
	e, _ := New(p, testOptions())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	var hosts []*Host
	e.Run(ctx, addrs(10), func(h *Host) { hosts = append(hosts, h) })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("abort took %s", d)
	}
	if len(hosts) != 10 {
		t.Fatalf("%d hosts emitted, want 10", len(hosts))
	}
	for _, h := range hosts {
		if !h.Aborted {
			t.Errorf("%s not marked aborted", h.Addr)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before+2 {
		t.Errorf("%d goroutines after the run, %d before", g, before)
	}
}

// TestUnreachableHost: a host whose every answer is silence is unreachable; one refusal makes it up.
func TestUnreachableHost(t *testing.T) {
	hosts, _ := run(t, mustPlan(t, port(445, status.Filtered, 0), port(139, status.Unreachable, 0)), testOptions(), 1)
	if hosts[0].Status != HostUnreachable {
		t.Errorf("status %s, want unreachable", hosts[0].Status)
	}
	hosts, _ = run(t, mustPlan(t, port(445, status.Filtered, 0), port(139, status.Closed, 0)), testOptions(), 1)
	if hosts[0].Status != HostUp {
		t.Errorf("status %s, want up", hosts[0].Status)
	}
}

// TestObserveNamesStepsLeftOut: a check whose step is not in the plan says why.
func TestObserveNamesStepsLeftOut(t *testing.T) {
	p, err := NewPlan([]Step{port(445, status.Open, 0)}, map[string]catalog.Observation{"smb": {Skipped: "not selected by --steps"}})
	if err != nil {
		t.Fatal(err)
	}
	hosts, _ := run(t, p, testOptions(), 1)
	if o := hosts[0].Observe(catalog.Check{Kind: "smb", Port: 445}); o.Skipped != "not selected by --steps" {
		t.Errorf("smb observation %+v", o)
	}
	if o := hosts[0].Observe(catalog.Check{Kind: "tcp", Port: 445}); o.State != "open" {
		t.Errorf("tcp observation %+v", o)
	}
}

// TestHostWhoseProbesAllFailedLocally: a host of which no probe learned anything (every one failed on this machine)
// is neither up nor unreachable.
func TestHostWhoseProbesAllFailedLocally(t *testing.T) {
	hosts, _ := run(t, mustPlan(t, port(445, status.Error, 0), port(139, status.Error, 0)), testOptions(), 1)
	if h := hosts[0]; h.Status != HostError || h.Error == "" {
		t.Errorf("status %q (%q), want %q with the reason", h.Status, h.Error, HostError)
	}
	hosts, _ = run(t, mustPlan(t, port(445, status.Error, 0), port(139, status.Closed, 0)), testOptions(), 1)
	if hosts[0].Status != HostUp {
		t.Errorf("status %q, want up: one port answered", hosts[0].Status)
	}
}

// TestRejectedHostIsNotUnreachable: a host whose every port a firewall rejects (ICMP administratively prohibited) has
// answered, through its firewall: it is up, so it grades fail with a firewall's fix, never unreachable.
func TestRejectedHostIsNotUnreachable(t *testing.T) {
	rejected := func(n int) Step {
		return Step{Name: fmt.Sprintf("tcp %d", n), Run: func(context.Context, *Env, *Host) Result {
			return PortResult{Port: n, Protocol: "tcp", State: status.Filtered, Rejected: true}
		}}
	}
	hosts, _ := run(t, mustPlan(t, rejected(445), rejected(139)), testOptions(), 1)
	if hosts[0].Status != HostUp || hosts[0].Unreachable() {
		t.Errorf("status %q, want up: a firewall answered for every port", hosts[0].Status)
	}
}

// TestHostPeers: a root step about to call silence final learns whether the host answered another probe, whether an
// answer came only on a retry, and whether another root step still runs.
func TestHostPeers(t *testing.T) {
	mk := func(name string, deps ...string) Step {
		return Step{Name: name, Requires: deps, Start: func(context.Context, *Env, *Host, func(Result)) {}}
	}
	plan, err := NewPlan([]Step{mk("tcp 139"), mk("tcp 445"), mk("nbstat"), mk("smb 445", "tcp 445")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &Host{plan: plan, results: make([]Result, 4), skipped: make([]string, 4), rootsLeft: plan.roots}
	if plan.roots != 3 {
		t.Fatalf("roots %d, want 3", plan.roots)
	}
	if v := h.Peers(); v.Answered || v.Lossy || !v.Pending {
		t.Errorf("nothing decided: %+v", v)
	}
	// A second attempt answered well within what the first waited in silence: lost, not late.
	if !LostBefore(1500*time.Millisecond, time.Millisecond) || !LostBefore(1500*time.Millisecond, time.Second) || LostBefore(1500*time.Millisecond, 1400*time.Millisecond) {
		t.Error("LostBefore: a 1 ms or 1 s answer after a 1.5 s silence is a loss; a 1.4 s one may be a path slower than the wait")
	}
	h.set(plan.index["tcp 139"], PortResult{Port: 139, Protocol: "tcp", State: status.Open, Attempts: 2, LostBefore: true})
	if v := h.Peers(); !v.Answered || !v.TCPAnswered || !v.Lossy || !v.Pending {
		t.Errorf("139 open on its second attempt: %+v; want all true", v)
	}
	env := NewEnv(Options{Timeout: time.Second, Retries: 1, UDPTimeout: time.Second, Sockets: 4, PerHost: 1})
	if r, b := env.ExchangeRetries(h), env.ExchangeBudget(h, 4); r != LossyExchangeRetries || b != 8*time.Second {
		t.Errorf("a lossy host's exchanges: %d retries, budget %s; want %d and 8s", r, b, LossyExchangeRetries)
	}
	h.skip(plan.index["nbstat"], "IPv6")
	if h.Peers().Pending {
		t.Error("with 139 and node status decided, tcp 445 (the caller) has no root peer pending")
	}
	h2 := &Host{plan: plan, results: make([]Result, 4), skipped: make([]string, 4), rootsLeft: plan.roots}
	h2.set(plan.index["nbstat"], PortList{{Port: 137, Protocol: "udp", State: status.Closed, Attempts: 3}})
	if v := h2.Peers(); !v.Answered || v.TCPAnswered || v.Lossy {
		t.Errorf("an ICMP answer after UDP retries: %+v; want answered, not on TCP, not lossy (ICMP is rationed)", v)
	}
	h2.set(plan.index["tcp 139"], PortResult{Port: 139, Protocol: "tcp", State: status.Closed, Attempts: 1})
	if v := h2.Peers(); !v.TCPAnswered || v.Lossy {
		t.Errorf("139 refused on the first SYN: %+v", v)
	}
	h3 := &Host{plan: plan, results: make([]Result, 4), skipped: make([]string, 4), rootsLeft: plan.roots}
	h3.set(plan.index["tcp 139"], PortResult{Port: 139, Protocol: "tcp", State: status.Open, Attempts: 1, Retransmitted: true})
	if !h3.Peers().Lossy {
		t.Error("an answer to a SYN the kernel retransmitted is a loss")
	}
	if r, b := env.ExchangeRetries(h2), env.ExchangeBudget(h2, 4); r != 1 || b != 4*time.Second {
		t.Errorf("a host without loss: %d retries, budget %s; want the options' 1 and 4s", r, b)
	}
}

// TestWhenPeersChange: a step waiting for the host's peers is called once, as soon as one of them ends, is skipped
// or parks (also when that came between its reading Peers and its waiting), and no later than its deadline when
// none does; never twice.
func TestWhenPeersChange(t *testing.T) {
	mk := func(name string) Step {
		return Step{Name: name, Connect: true, Start: func(context.Context, *Env, *Host, func(Result)) {}}
	}
	plan, err := NewPlan([]Step{mk("tcp 139"), mk("tcp 445"), mk("tcp 135")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &Host{plan: plan, results: make([]Result, 3), skipped: make([]string, 3), rootsLeft: plan.roots, tcpLeft: plan.tcpRoots}
	calls := make(chan time.Duration, 8)
	wait := func(d time.Duration) {
		start := time.Now()
		h.WhenPeersChange(h.Peers(), d, func() { calls <- time.Since(start) })
	}
	next := func(what string, within time.Duration) {
		t.Helper()
		select {
		case took := <-calls:
			if took > within {
				t.Errorf("%s: called after %s, want within %s", what, took, within)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: never called", what)
		}
	}
	wait(time.Hour)
	h.set(plan.index["tcp 139"], PortResult{Port: 139, Protocol: "tcp", State: status.Closed, Attempts: 1})
	next("a peer decided", 500*time.Millisecond)
	wait(time.Hour)
	h.ParkSilence()
	next("a peer parked", 500*time.Millisecond)
	wait(time.Hour)
	h.skip(plan.index["tcp 135"], "not in the plan")
	next("a peer skipped", 500*time.Millisecond)
	wait(50 * time.Millisecond)
	next("nothing changed: the deadline", time.Second)
	// A change between reading the view and waiting is not missed.
	v := h.Peers()
	h.UnparkSilence()
	start := time.Now()
	h.WhenPeersChange(v, time.Hour, func() { calls <- time.Since(start) })
	next("a change before the wait began", 500*time.Millisecond)
	h.ParkSilence() // no one waits: nothing to call
	select {
	case took := <-calls:
		t.Errorf("a waiter was called again (after %s)", took)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestPeersSeeAStepEndAtOnce: a step that waits for its host's other root step sees that step's end as soon as it
// ends, not when the scheduler gets to its completion. Here the scheduler is held up, as a loaded machine holds it
// up for a second or more: the first 300 hosts end at once and fill the report writer's 256-host buffer while the
// writer (emit) takes none until the test is over, so the scheduler blocks. The other 100 hosts' first steps end
// 300 ms later, while it is blocked; their second steps wait for that, and must see it then rather than wait out
// their 2 s deadline.
func TestPeersSeeAStepEndAtOnce(t *testing.T) {
	const fast, slow = 300, 100
	var started, sawEnd, sawDeadline atomic.Int64
	var isFast sync.Map
	waits := make(chan struct{}, slow)
	p := mustPlan(t,
		Step{Name: "first", Start: func(_ context.Context, _ *Env, h *Host, done func(Result)) {
			r := PortResult{Port: 1, Protocol: "tcp", State: status.Closed}
			if started.Add(1) <= fast {
				isFast.Store(h, true)
				done(r)
				return
			}
			time.AfterFunc(300*time.Millisecond, func() { done(r) })
		}},
		Step{Name: "second", Start: func(_ context.Context, _ *Env, h *Host, done func(Result)) {
			r := PortResult{Port: 2, Protocol: "tcp", State: status.Closed}
			if _, ok := isFast.Load(h); ok {
				done(r)
				return
			}
			deadline := time.Now().Add(2 * time.Second)
			var wait func()
			wait = func() {
				v := h.Peers()
				if !v.Pending {
					sawEnd.Add(1)
				} else if time.Now().Before(deadline) {
					h.WhenPeersChange(v, time.Until(deadline), wait)
					return
				} else {
					sawDeadline.Add(1)
				}
				waits <- struct{}{}
				done(r)
			}
			go wait()
		}})
	opts := testOptions()
	opts.HostsInFlight = fast + slow
	e, _ := New(p, opts)
	var seen int
	e.Run(context.Background(), addrs(fast+slow), func(*Host) {
		for ; seen < slow; seen++ {
			select {
			case <-waits:
			case <-time.After(5 * time.Second):
				t.Errorf("only %d of %d slow hosts' second steps ended", seen, slow)
				seen = slow // (emit runs on the engine's goroutine: no Fatal here)
			}
		}
	})
	if sawDeadline.Load() != 0 || sawEnd.Load() != slow {
		t.Errorf("%d second steps saw the first end, %d waited out their deadline; want all %d to see it", sawEnd.Load(), sawDeadline.Load(), slow)
	}
}
