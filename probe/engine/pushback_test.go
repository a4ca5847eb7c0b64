package engine_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps"
)

// TestPushbackShrinksBudget runs the real TCP connect step while the kernel refuses every tenth connect for want of
// descriptors. Every port must still be reported right (open), no refusal may count as an attempt, and the socket
// budget must shrink, never below engine.MinBudget.
func TestPushbackShrinksBudget(t *testing.T) {
	d := &probetest.ScriptedDialer{Hold: 2 * time.Millisecond, Script: func(n int, _ string) error {
		if n%10 == 0 {
			return os.NewSyscallError("connect", syscall.EMFILE)
		}
		return nil
	}}
	plan := probetest.Plan(t, steps.Config{Ports: []int{445}}, "tcp")
	opts := probetest.Options(engine.Options{Sockets: 256, PerHost: 1, Dialer: d})
	e, err := engine.New(plan, opts)
	probetest.Must(t, err)
	var hosts []*engine.Host
	stats := e.Run(context.Background(), probetest.SafeTargets(t, plan, opts, probetest.ScriptedTargets(600)), func(h *engine.Host) { hosts = append(hosts, h) })
	if len(hosts) != 600 {
		t.Fatalf("%d hosts, want 600", len(hosts))
	}
	for _, h := range hosts {
		if p, _ := h.Port(445); p.State != status.Open || p.Attempts != 1 {
			t.Fatalf("%s: %+v, want open in 1 attempt: pushback must not change or count against a result", h.Addr, p)
		}
	}
	if stats.Pushback == 0 || stats.Budget >= 256 || stats.Budget < engine.MinBudget {
		t.Errorf("pushback %d, budget %d: want pushback counted and the budget cut from 256, not below %d", stats.Pushback, stats.Budget, engine.MinBudget)
	}
	// Every socket the budget kept back is accounted for: the budget plus the debt still owed is what was held.
	if got := int64(stats.Budget) + e.Env().Debt(); got > 256 {
		t.Errorf("budget %d + debt %d exceeds the configured 256", stats.Budget, e.Env().Debt())
	}
}
