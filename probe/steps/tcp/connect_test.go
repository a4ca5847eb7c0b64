package tcp_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/internal/backlog"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/engine/connect"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

func TestTCPStatesOnLoopback(t *testing.T) {
	open, closed, silent := probetest.ListenOpen(t), probetest.ClosedPort(t), probetest.SilentPort(t)
	h := probetest.Scan(t, steps.Config{Ports: []int{open, closed, silent}}, engine.Options{Retries: 1}, "127.0.0.1", "tcp")
	want := map[int]struct {
		state    status.State
		attempts int
		evidence string
	}{
		open:   {status.Open, 1, fmt.Sprintf("tcp %d: open, connected in ", open)},
		closed: {status.Closed, 1, fmt.Sprintf("tcp %d: closed, connection refused in ", closed)},
		// The host answered on other TCP ports before the first attempt's timeout, so the retry joins the
		// verification's round: three attempts of the full timeout together, not a retry and then two.
		silent: {status.Filtered, 2 + tcp.VerifyTries, fmt.Sprintf("tcp %d: filtered, no answer to 4 attempts of 300ms (the last 3 after the host answered other probes)", silent)},
	}
	if len(h.Ports()) != 3 {
		t.Fatalf("ports %+v, want 3", h.Ports())
	}
	for _, p := range h.Ports() {
		w := want[p.Port]
		if p.State != w.state || p.Attempts != w.attempts || !strings.HasPrefix(p.Evidence, w.evidence) {
			t.Errorf("port %d: got %s after %d attempts (%q), want %s after %d (%q...)", p.Port, p.State, p.Attempts, p.Evidence, w.state, w.attempts, w.evidence)
		}
	}
	if h.Status != engine.HostUp {
		t.Errorf("host status %q, want up", h.Status)
	}
}

func TestTCPUnreachableAndLocalPushback(t *testing.T) {
	d := &probetest.ScriptedDialer{Script: func(n int, _ string) error {
		if n <= 3 {
			return os.NewSyscallError("connect", syscall.EMFILE) // this machine ran out of descriptors
		}
		return os.NewSyscallError("connect", syscall.EHOSTUNREACH)
	}}
	h := probetest.Scan(t, steps.Config{Ports: []int{445}}, engine.Options{Dialer: d}, "198.18.0.17", "tcp")
	p, _ := h.Port(445)
	if p.State != status.Unreachable || p.Attempts != 1 || p.Evidence != "tcp 445: unreachable, no route to host after "+engine.FormatRTT(p.RTT) {
		t.Errorf("got %+v, want unreachable after 1 counted attempt", p)
	}
	if d.Calls.Load() != 4 {
		t.Errorf("dialled %d times, want 3 pushbacks then 1 real attempt", d.Calls.Load())
	}
	if h.Status != engine.HostUnreachable {
		t.Errorf("host status %q, want unreachable", h.Status)
	}
}

func TestTCPLocalExhaustionIsNotAHostProperty(t *testing.T) {
	d := &probetest.ScriptedDialer{Script: func(int, string) error { return os.NewSyscallError("connect", syscall.ENOBUFS) }}
	start := time.Now()
	h := probetest.Scan(t, steps.Config{Ports: []int{445}}, engine.Options{Dialer: d}, "198.18.0.10", "tcp")
	if p, _ := h.Port(445); p.State != status.Error || !strings.HasPrefix(p.Evidence, "tcp 445: this machine ran out of resources: ") {
		t.Errorf("got %+v, want an error blaming this machine", p)
	}
	if o := h.Observe(catalog.Check{Kind: "tcp", Port: 445}); o.Skipped == "" {
		t.Errorf("a local failure must not grade as a port state, got %+v", o)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("pushback retries took %s; they must stay bounded", time.Since(start))
	}
}

// TestTCPSilentHostIsNotVerified: a port of a host that answers nothing is called filtered after its own retries;
// the verification is only for hosts that answered another probe.
func TestTCPSilentHostIsNotVerified(t *testing.T) {
	silent := probetest.SilentPort(t)
	start := time.Now()
	h := probetest.Scan(t, steps.Config{Ports: []int{silent}}, engine.Options{Retries: 1}, "127.0.0.1", "tcp")
	p, _ := h.Port(silent)
	if p.State != status.Filtered || p.Attempts != 2 || strings.Contains(p.Evidence, "answered other probes") {
		t.Errorf("got %+v, want filtered after 2 attempts, unverified", p)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a silent host's port took %s", took)
	}
}

// TestTCPAllSilentIsNotVerified: a host whose only TCP port is silent while its UDP port draws an ICMP error (a
// firewall that drops TCP) is answered, but not on TCP: its port is not verified.
func TestTCPAllSilentIsNotVerified(t *testing.T) {
	silent, udpClosed := probetest.SilentPort(t), probetest.ClosedUDPPort(t)
	h := probetest.Scan(t, steps.Config{Ports: []int{silent}, UDPPorts: []int{udpClosed}}, engine.Options{Retries: 1}, "127.0.0.1", "tcp", "udp")
	if u, _ := h.UDPPort(udpClosed); u.State != status.Closed {
		t.Fatalf("udp port %+v, want closed", u)
	}
	if p, _ := h.Port(silent); p.State != status.Filtered || p.Attempts != 2 || strings.Contains(p.Evidence, "answered other probes") {
		t.Errorf("got %+v, want filtered after 2 attempts, unverified", p)
	}
}

// TestTCPRecoveredSilenceCutsTheWindow: a port that was silent (its accept queue full) and answers when its silence
// is verified is a SYN lost on the way to a host that answers: the port is open, its evidence says it answered when
// tried again, and the scan's connector cuts its congestion window once.
func TestTCPRecoveredSilenceCutsTheWindow(t *testing.T) {
	open := probetest.ListenOpen(t)
	lossy, drain := backlog.Full(t)
	// After the first attempt (300 ms), the queue drains: the verification, whose first attempt leaves at least
	// 50 ms after that, gets through.
	time.AfterFunc(320*time.Millisecond, drain)

	plan := probetest.Plan(t, steps.Config{Ports: []int{open, lossy}}, "tcp")
	opts := probetest.Options(engine.Options{Retries: 1})
	e, err := engine.New(plan, opts)
	probetest.Must(t, err)
	one := func(yield func(targets.Target) bool) { yield(targets.Target{Addr: netip.MustParseAddr("127.0.0.1")}) }
	var h *engine.Host
	stats := e.Run(context.Background(), probetest.SafeTargets(t, plan, opts, one), func(got *engine.Host) { h = got })
	p, _ := h.Port(lossy)
	if p.State != status.Open || !strings.Contains(p.Evidence, "its silence was verified") {
		t.Fatalf("port %+v, want open after the verification", p)
	}
	if c := stats.Connects; c.Losses < 1 || c.Backoffs != 1 || c.Window != c.MaxInFlight/2 {
		t.Errorf("connector %+v: want one loss cutting the window to half of %d", c, c.MaxInFlight)
	}
}

// TestTCPLateAnswerToTheFirstAttempt: the first connect answers after its timeout, while the retry is under way. The
// port is open from that answer, late and not lost: its evidence says so, and it is no loss.
func TestTCPLateAnswerToTheFirstAttempt(t *testing.T) {
	d := &probetest.ScriptedDialer{Script: func(n int, _ string) error {
		if n == 1 {
			time.Sleep(350 * time.Millisecond) // after the 300 ms timeout, within the retry's wait
			return nil
		}
		time.Sleep(time.Second) // the retry meets silence
		return os.NewSyscallError("connect", syscall.ETIMEDOUT)
	}}
	start := time.Now()
	h := probetest.Scan(t, steps.Config{Ports: []int{445}}, engine.Options{Dialer: d, Retries: 1}, "198.18.0.10", "tcp")
	p, _ := h.Port(445)
	if p.State != status.Open || !p.Late || p.LostBefore || p.AnsweredOnRetry() || p.Attempts != 2 ||
		!strings.Contains(p.Evidence, "late: the answer to the first attempt came after its 300ms timeout, while the retry was under way") {
		t.Errorf("got %+v, want open from the late first answer", p)
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("the late answer took %s to decide the port: the probe waited for the retry", took)
	}
	if d.Calls.Load() != 2 {
		t.Errorf("dialled %d times, want the first attempt and its retry", d.Calls.Load())
	}
}

// TestTCPStatesWithSYNProbes: the same ports as TestTCPStatesOnLoopback, probed with raw SYNs where this process
// may open raw sockets: the same states, attempts and evidence.
func TestTCPStatesWithSYNProbes(t *testing.T) {
	s, err := connect.OpenSYN(connect.Config{})
	if err != nil {
		t.Skipf("raw sockets unavailable: %v", err)
	}
	s.Close()
	open, closed, silent := probetest.ListenOpen(t), probetest.ClosedPort(t), probetest.SilentPort(t)
	plan := probetest.Plan(t, steps.Config{Ports: []int{open, closed, silent}}, "tcp")
	opts := probetest.Options(engine.Options{Retries: 1, TCPProbe: engine.TCPProbeSYN})
	e, err := engine.New(plan, opts)
	probetest.Must(t, err)
	one := func(yield func(targets.Target) bool) { yield(targets.Target{Addr: netip.MustParseAddr("127.0.0.1")}) }
	var h *engine.Host
	stats := e.Run(context.Background(), probetest.SafeTargets(t, plan, opts, one), func(got *engine.Host) { h = got })
	want := map[int]status.State{open: status.Open, closed: status.Closed, silent: status.Filtered}
	for _, p := range h.Ports() {
		if p.State != want[p.Port] {
			t.Errorf("port %d: %s (%s), want %s", p.Port, p.State, p.Evidence, want[p.Port])
		}
	}
	if p, _ := h.Port(silent); p.Attempts != 2+tcp.VerifyTries || !strings.Contains(p.Evidence, "after the host answered other probes") {
		t.Errorf("silent port %+v: want its silence verified", p)
	}
	if c := stats.SYN; c.Started < 3 || c.MaxInFlight != 2*opts.Sockets*3/4 || stats.Connects.Started != 0 {
		t.Errorf("connects %+v: want them made by the SYN prober", c)
	}
}

// TestTCPVerificationRoundsOverlap: the verification's attempts run together, each a short pause after the one
// before, not one timeout after the other. A silent port of a host whose open port answers is verified with
// VerifyTries attempts; meanwhile a port that answers only when verified (its accept queue full, then drained)
// shows the path loses packets, so the silent port's verification grows to LossyVerifyTries. Its eight attempts of
// 300 ms would take at least 2.5 s one after the other (each verification attempt after a pause of 50 ms or more);
// in rounds they take about 1.6 s.
func TestTCPVerificationRoundsOverlap(t *testing.T) {
	open, silent := probetest.ListenOpen(t), probetest.SilentPort(t)
	lossy, drain := backlog.Full(t)
	time.AfterFunc(320*time.Millisecond, drain) // after the first attempt's 300 ms, before the round's second attempt
	h := probetest.Scan(t, steps.Config{Ports: []int{open, silent, lossy}}, engine.Options{Retries: 1}, "127.0.0.1", "tcp")
	if p, _ := h.Port(lossy); p.State != status.Open || !strings.Contains(p.Evidence, "its silence was verified") {
		t.Fatalf("lossy port %+v, want open when verified", p)
	}
	p, _ := h.Port(silent)
	if want := 2 + tcp.LossyVerifyTries; p.State != status.Filtered || p.Attempts != want ||
		!strings.HasSuffix(p.Evidence, fmt.Sprintf("(the last %d after the host answered other probes)", 1+tcp.LossyVerifyTries)) {
		t.Fatalf("silent port %+v, want filtered after %d attempts", p, want)
	}
	if h.Duration > 2300*time.Millisecond {
		t.Errorf("the host took %s: the verification attempts ran one after the other", h.Duration)
	}
}
