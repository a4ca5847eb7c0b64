package catalog

// Benchmarks for grading one host against the profiles of the built-in catalog (ofm.json), which a scan does for
// every host it probes: in a sweep of 65,536 hosts Grade runs 65,536 times per profile, so its time and allocations
// per host bound what grading adds to a sweep. The facts come from a fixed table, so only the grading is timed, not
// how the probe package builds its observations. The grades are checked before the timed loop, so a catalog change
// that makes the host grade differently fails the benchmark instead of timing another path.

import "testing"

// checkKey identifies a check the way the probe package tells checks apart: by kind, port and file.
type checkKey struct {
	kind string
	port int
	file string
}

// tableFacts is a Facts whose observations are looked up in a map without building a string per check.
type tableFacts map[checkKey]Observation

func (f tableFacts) Observe(c Check) Observation {
	if o, ok := f[checkKey{c.Kind, c.Port, c.File}]; ok {
		return o
	}
	return Observation{Skipped: "check not implemented yet"}
}

func (f tableFacts) Unreachable() bool { return false }

// sambaHost is a Samba file server ready for OFM 9.0: SMB2 on 445, NetBIOS on, the OFMLOG$ share and both files
// present, the endpoint mapper bound, no DNS and no DHCP server, no OFM port given. Against ofm-9.0 the NetBIOS
// datagram port only answers open|filtered, a warning; against ofm-9.1 the open NetBIOS ports fail the recommended
// hardening, also a warning.
var sambaHost = tableFacts{
	{"tcp", 445, ""}:         {State: "open", Evidence: "tcp 445: open, connected in 0.3 ms"},
	{"tcp", 139, ""}:         {State: "open", Evidence: "tcp 139: open, connected in 0.3 ms"},
	{"tcp", 53, ""}:          {State: "closed", Evidence: "tcp 53: closed, reset in 0.2 ms"},
	{"udp", 138, ""}:         {State: "open|filtered", Evidence: "udp 138: open|filtered, no answer to 2 attempts of 1s"},
	{"udp", 445, ""}:         {State: "open|filtered", Evidence: "udp 445: open|filtered, no answer to 2 attempts of 1s"},
	{"udp", 67, ""}:          {State: "closed", Evidence: "udp 67: closed, port unreachable in 0.4 ms"},
	{"nbstat", 137, ""}:      {State: "answered", Evidence: "nbstat 137: answered in 0.5 ms, leaks 3 names"},
	{"nbss", 139, ""}:        {State: "positive", Evidence: "nbss 139: positive session response to *SMBSERVER<20>"},
	{"smb", 445, ""}:         {State: "smb2", Evidence: "smb 445: speaks SMB2: SMB 3.1.1, signing enabled"},
	{"smb", 139, ""}:         {Skipped: "not needed: SMB answered on 445"},
	{"smb1", 445, ""}:        {State: "disabled", Evidence: "smb1 check: the server refused NT LM 0.12"},
	{"ipc", 0, ""}:           {State: "connected", Evidence: "ipc: tree connect to IPC$ succeeded"},
	{"share", 0, ""}:         {State: "mounted", Evidence: "share: OFMLOG$ mounted as guest"},
	{"file", 0, "OFMNT.LOG"}: {State: "present", Evidence: "file OFMNT.LOG: present, 4096 bytes"},
	{"file", 0, "OFMNT.ADR"}: {State: "present", Evidence: "file OFMNT.ADR: present, 212 bytes"},
	{"epm", 135, ""}:         {State: "bound", Evidence: "epm 135: bind_ack accepting NDR v2.0"},
	{"ofm-port", 0, ""}:      {NotRequested: true, Skipped: "no --ofm-port given"},
}

// BenchmarkGradeHost times grading sambaHost against each built-in profile, and against both as a scan does.
func BenchmarkGradeHost(b *testing.B) {
	c := Builtin()
	want := map[string]HostGrade{"ofm-9.0": GradeWarn, "ofm-9.1": GradeWarn}
	if len(c.Profiles) != len(want) {
		b.Fatalf("built-in catalog has %d profiles, want %d", len(c.Profiles), len(want))
	}
	for _, p := range c.Profiles {
		g := Grade(p, sambaHost)
		if g.Grade != want[p.ID] || len(g.Results) != len(p.Requirements) {
			b.Fatalf("%s: grade %s with %d results, want %s with %d; reasons %q", p.ID, g.Grade, len(g.Results),
				want[p.ID], len(p.Requirements), g.Reasons())
		}
	}
	for _, p := range c.Profiles {
		b.Run(p.ID, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Grade(p, sambaHost)
			}
		})
	}
	b.Run("both", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, p := range c.Profiles {
				Grade(p, sambaHost)
			}
		}
	})
}
