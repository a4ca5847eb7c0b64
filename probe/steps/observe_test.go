package steps_test

import (
	"testing"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

// hostWith is a finished host of a scan of the TCP ports among 53, 135, 139 and 445 that states names, with those
// states, and no other result.
func hostWith(states map[int]status.State) *engine.Host {
	var cfg steps.Config
	var f steps.Facts
	for _, port := range []int{53, 135, 139, 445} {
		if st, ok := states[port]; ok {
			cfg.Ports = append(cfg.Ports, port)
			f.Ports = append(f.Ports, engine.PortResult{Port: port, Protocol: "tcp", State: st, Evidence: "tcp: " + string(st)})
		}
	}
	return steps.HostFromFacts(cfg, targets.Target{Addr: probetest.Loopback}, f)
}

// TestObserveDependentSteps: a step whose TCP port is not open is not attempted and takes the port's state; a step
// whose port is open but that did not run is skipped, never passed.
func TestObserveDependentSteps(t *testing.T) {
	tests := []struct {
		name   string
		ports  map[int]status.State
		check  catalog.Check
		state  string
		reason string
	}{
		{"nbss behind a closed 139", map[int]status.State{139: "closed"}, catalog.Check{Kind: "nbss", Port: 139}, "closed", ""},
		{"nbss behind an open 139", map[int]status.State{139: "open"}, catalog.Check{Kind: "nbss", Port: 139}, "", "the NetBIOS session step did not run"},
		{"smb behind a filtered 445", map[int]status.State{445: "filtered"}, catalog.Check{Kind: "smb", Port: 445}, "filtered", ""},
		{"epm when 135 was not probed", map[int]status.State{}, catalog.Check{Kind: "epm", Port: 135}, "", "not probed: epm bind needs tcp 135, which is not in this scan's ports"},
		{"epm when 135 was not probed, others were", map[int]status.State{445: "open"}, catalog.Check{Kind: "epm", Port: 135}, "", "not probed: epm bind needs tcp 135, which is not in this scan's ports"},
		{"share with no SMB port open", map[int]status.State{445: "closed", 139: "filtered"}, catalog.Check{Kind: "share"}, "unreachable", ""},
		{"share with 139 open", map[int]status.State{445: "filtered", 139: "open"}, catalog.Check{Kind: "share"}, "", "the share check was not run"},
		{"file with only 445 probed", map[int]status.State{445: "closed"}, catalog.Check{Kind: "file", File: "OFMNT.LOG"}, "", "the share check was not run"},
		{"nbstat has no TCP precondition", map[int]status.State{139: "closed"}, catalog.Check{Kind: "nbstat", Port: 137}, "", "node status was not asked"},
		{"tcp port not probed", map[int]status.State{139: "closed"}, catalog.Check{Kind: "tcp", Port: 445}, "", "tcp 445 was not probed (not in --ports)"},
		{"tcp port not probed, no TCP port at all", map[int]status.State{}, catalog.Check{Kind: "tcp", Port: 445}, "", "no step of this scan answers tcp checks"},
	}
	for _, tc := range tests {
		o := hostWith(tc.ports).Observe(tc.check)
		if o.State != tc.state || o.Skipped != tc.reason {
			t.Errorf("%s: got state %q skipped %q, want %q %q", tc.name, o.State, o.Skipped, tc.state, tc.reason)
		}
	}
}
