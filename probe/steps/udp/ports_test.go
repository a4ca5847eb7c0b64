package udp_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps"
)

func TestUDPPortStates(t *testing.T) {
	answering, _ := probetest.UDPFake(t, func(int, []byte) [][]byte { return [][]byte{{0}} })
	silent, _ := probetest.UDPFake(t, func(int, []byte) [][]byte { return nil })
	probetest.RetryLostICMP(t, func(t *testing.T) int {
		closed := probetest.ClosedUDPPort(t)
		cfg := steps.Config{UDPPorts: []int{answering, silent, closed}}
		h := probetest.Scan(t, cfg, engine.Options{UDPTimeout: 100 * time.Millisecond, UDPRetries: 1}, "127.0.0.1", "udp")
		if p, _ := h.UDPPort(closed); p.State == status.OpenFiltered {
			return 1
		}
		want := map[int]status.State{answering: status.Open, silent: status.OpenFiltered, closed: status.Closed}
		if len(h.Ports()) != 3 {
			t.Errorf("ports %+v, want 3", h.Ports())
		}
		for _, p := range h.Ports() {
			if p.Protocol != "udp" || p.State != want[p.Port] {
				t.Errorf("udp %d: %s (%s), want %s", p.Port, p.State, p.Evidence, want[p.Port])
			}
		}
		if p, _ := h.UDPPort(silent); p.Attempts != 2 || p.Evidence != fmt.Sprintf("udp %d: open|filtered, no answer and no ICMP error to 2 datagrams of 100ms (no safe query exists for this port)", silent) {
			t.Errorf("silent port: %+v", p)
		}
		if p, _ := h.UDPPort(closed); p.Attempts != 1 || !strings.HasPrefix(p.Evidence, fmt.Sprintf("udp %d: closed, ICMP port unreachable after ", closed)) {
			t.Errorf("closed port: %+v", p)
		}
		if h.Status != engine.HostUp {
			t.Errorf("host status %q, want up", h.Status)
		}
		return 0
	})
}

// TestUDPPortsErrorsStayWithTheirPort: every UDP port of a scan shares one socket, and an ICMP error about one port
// also sets the socket's pending error, which the next send would report. Closed ports before and after a silent
// and an answering one must not make those look closed.
func TestUDPPortsErrorsStayWithTheirPort(t *testing.T) {
	answering, _ := probetest.UDPFake(t, func(int, []byte) [][]byte { return [][]byte{{0}} })
	silent, _ := probetest.UDPFake(t, func(int, []byte) [][]byte { return nil })
	for range 5 {
		probetest.RetryLostICMP(t, func(t *testing.T) int {
			var closed []int
			for range 3 {
				closed = append(closed, probetest.ClosedUDPPort(t))
			}
			ports := []int{closed[0], silent, closed[1], answering, closed[2]}
			h := probetest.Scan(t, steps.Config{UDPPorts: ports}, engine.Options{UDPTimeout: 100 * time.Millisecond, UDPRetries: 2}, "127.0.0.1", "udp")
			lost := 0
			for _, c := range closed {
				if p, _ := h.UDPPort(c); p.State == status.OpenFiltered && p.Attempts == 3 {
					lost++
				}
			}
			if lost > 0 {
				return lost
			}
			want := map[int]status.State{closed[0]: status.Closed, closed[1]: status.Closed, closed[2]: status.Closed, silent: status.OpenFiltered, answering: status.Open}
			for _, p := range h.Ports() {
				if p.State != want[p.Port] {
					t.Fatalf("udp %d: %s (%s), want %s", p.Port, p.State, p.Evidence, want[p.Port])
				}
			}
			if p, _ := h.UDPPort(silent); p.Attempts != 3 {
				t.Errorf("silent port: %d attempts, want 3", p.Attempts)
			}
			return 0
		})
	}
}
