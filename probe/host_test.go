package probe

import (
	"testing"

	"github.com/ofmprobe/ofmprobe/catalog"
)

func hostWith(states map[int]string) *Host {
	h := &Host{}
	for _, port := range []int{53, 135, 139, 445} {
		if st, ok := states[port]; ok {
			h.Ports = append(h.Ports, PortResult{Port: port, Protocol: "tcp", State: st, Evidence: "tcp: " + st})
		}
	}
	return h
}

// TestObserveDependentSteps: a step whose TCP port is not open is not attempted and takes the port's state; a step
// whose port is open is skipped until its check exists, never passed.
func TestObserveDependentSteps(t *testing.T) {
	tests := []struct {
		name   string
		ports  map[int]string
		check  catalog.Check
		state  string
		reason string
	}{
		{"nbss behind a closed 139", map[int]string{139: "closed"}, catalog.Check{Kind: "nbss", Port: 139}, "closed", ""},
		{"nbss behind an open 139", map[int]string{139: "open"}, catalog.Check{Kind: "nbss", Port: 139}, "", notImplemented},
		{"smb behind a filtered 445", map[int]string{445: "filtered"}, catalog.Check{Kind: "smb", Port: 445}, "filtered", ""},
		{"epm when 135 was not probed", map[int]string{}, catalog.Check{Kind: "epm", Port: 135}, "", notImplemented},
		{"share with no SMB port open", map[int]string{445: "closed", 139: "filtered"}, catalog.Check{Kind: "share"}, "unreachable", ""},
		{"share with 139 open", map[int]string{445: "filtered", 139: "open"}, catalog.Check{Kind: "share"}, "", "the share check was not run"},
		{"file with only 445 probed", map[int]string{445: "closed"}, catalog.Check{Kind: "file", File: "OFMNT.LOG"}, "", "the share check was not run"},
		{"nbstat has no TCP precondition", map[int]string{139: "closed"}, catalog.Check{Kind: "nbstat", Port: 137}, "", "node status was not asked"},
		{"tcp port not probed", map[int]string{}, catalog.Check{Kind: "tcp", Port: 445}, "", "tcp 445 was not probed (not in --ports)"},
	}
	for _, tc := range tests {
		o := hostWith(tc.ports).Observe(tc.check)
		if o.State != tc.state || o.Skipped != tc.reason {
			t.Errorf("%s: got state %q skipped %q, want %q %q", tc.name, o.State, o.Skipped, tc.state, tc.reason)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
