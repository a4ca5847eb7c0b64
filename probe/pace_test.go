package probe

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// TestPushbackShrinksBudget: the kernel refuses every tenth connect for want of descriptors. Every port must still
// be reported right (open), no refusal may count as an attempt, and the socket budget must shrink, never below
// minBudget.
func TestPushbackShrinksBudget(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{445}, Concurrency: 256, PerHost: 1})
	d := &scriptedDialer{hold: 2 * time.Millisecond, script: func(n int, _ string) error {
		if n%10 == 0 {
			return os.NewSyscallError("connect", syscall.EMFILE)
		}
		return nil
	}}
	s.dialer = d
	var hosts []*Host
	stats := s.Run(context.Background(), addrs(600), func(h *Host) { hosts = append(hosts, h) })
	if len(hosts) != 600 {
		t.Fatalf("%d hosts, want 600", len(hosts))
	}
	for _, h := range hosts {
		if p := h.Ports[0]; p.State != StateOpen || p.Attempts != 1 {
			t.Fatalf("%s: %+v, want open in 1 attempt: pushback must not change or count against a result", h.Addr, p)
		}
	}
	if stats.Pushback == 0 || stats.Budget >= 256 || stats.Budget < minBudget {
		t.Errorf("pushback %d, budget %d: want pushback counted and the budget cut from 256, not below %d", stats.Pushback, stats.Budget, minBudget)
	}
	// Every socket the budget kept back is accounted for: the budget plus the debt still owed is what was held.
	if got := int64(stats.Budget) + s.debt.Load(); got > 256 {
		t.Errorf("budget %d + debt %d exceeds the configured 256", stats.Budget, s.debt.Load())
	}
}

// TestRateCapsNewConnections: with --rate 200, 100 connects take about half a second, not the millisecond they
// would take unpaced.
func TestRateCapsNewConnections(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{445}, Concurrency: 64, Rate: 200})
	s.dialer = &scriptedDialer{script: func(int, string) error { return nil }}
	start := time.Now()
	stats := s.Run(context.Background(), addrs(100), func(*Host) {})
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

func addrs(n int) func(yield func(Target) bool) {
	return func(yield func(Target) bool) {
		for i := range n {
			a := netip.MustParseAddr(fmt.Sprintf("198.18.%d.%d", 16+i/250, 1+i%250))
			if !yield(Target{Addr: a}) {
				return
			}
		}
	}
}

func TestValidateRate(t *testing.T) {
	for _, r := range []float64{-1} {
		if _, err := NewScanner(Options{Ports: []int{445}, Timeout: time.Second, Concurrency: 1, PerHost: 1, Rate: r}); err == nil {
			t.Errorf("rate %v accepted", r)
		}
	}
}

// TestLocalFailureIsNotSilence: when this machine cannot open sockets at all, node status is an error (a skip in
// the grades), never "open|filtered", and the host is not called unreachable on the strength of it.
func TestLocalFailureIsNotSilence(t *testing.T) {
	s := newTestScanner(t, Options{NodeStatus: true, UDPTimeout: 50 * time.Millisecond, Concurrency: 8})
	s.udpDialer = &scriptedDialer{script: func(int, string) error { return os.NewSyscallError("socket", syscall.EINVAL) }}
	h := scanOne(t, s, "198.18.0.10")
	if h.NetBIOS == nil || h.NetBIOS.State != StateError || !strings.Contains(h.NetBIOS.Evidence, "this machine could not open a socket") {
		t.Fatalf("node status %+v, want an error blaming this machine", h.NetBIOS)
	}
	if o := h.Observe(catalog.Check{Kind: "nbstat", Port: 137}); o.Skipped == "" {
		t.Errorf("a local failure graded as a state: %+v", o)
	}
	if h.Status == HostUnreachable {
		t.Error("a host this machine could not probe is called unreachable")
	}
}

// TestRunLeavesNoWorkers: the step workers end with the run; a scan leaves no goroutine behind.
func TestRunLeavesNoWorkers(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{135, 139, 445}, Concurrency: 128, PerHost: 3})
	s.dialer = &scriptedDialer{hold: time.Millisecond, script: func(int, string) error { return nil }}
	s.Run(context.Background(), addrs(10), func(*Host) {}) // warm up what starts once per process
	before := settledGoroutines(0)
	stats := s.Run(context.Background(), addrs(500), func(*Host) {})
	if stats.Hosts != 500 {
		t.Fatalf("%d hosts", stats.Hosts)
	}
	if n := settledGoroutines(before); n > before {
		t.Errorf("%d goroutines after the run, %d before: the workers did not end", n, before)
	}
}
