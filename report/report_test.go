package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/netstat"
	smbwire "github.com/ofmprobe/ofmprobe/probe/smb"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/steps/rpc"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// clock is the fixed time of the golden reports.
var clock = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func port(p int, state string, rtt time.Duration, attempts int, evidence string) engine.PortResult {
	return engine.PortResult{Port: p, Protocol: "tcp", State: status.State(state), RTT: rtt, Attempts: attempts, Evidence: evidence}
}

func udp(p int, state string, attempts int, evidence string) engine.PortResult {
	return engine.PortResult{Port: p, Protocol: "udp", State: status.State(state), Attempts: attempts, Evidence: evidence}
}

// hostile is what a malicious host could put in its NetBIOS answers: markup, a spreadsheet formula, quotes,
// backslashes, line breaks, a terminal escape and a bidirectional override. Every format must carry it as text.
const (
	hostileName     = `<script>document.title='pwned'</script>`
	hostileGroup    = `=HYPERLINK("http://198.18.0.66/x")`
	hostileEvidence = "nbss 139: negative, \"</td><img src=x onerror=alert(1)>\" \\share\n\x1b[31mred\x1b[0m \u202egnp.exe"
)

// fixtureHosts are lab-like hosts, given out of order: writers must sort them.
func fixtureHosts() []*fixtureHost {
	ms := time.Millisecond
	nmbdUDP := []engine.PortResult{
		udp(67, "closed", 1, "udp 67: closed, ICMP port unreachable in 0.20 ms"),
		udp(138, "open|filtered", 4, "udp 138: open|filtered, no answer to 4 datagrams of 750ms"),
		udp(445, "closed", 1, "udp 445: closed, ICMP port unreachable in 0.21 ms"),
	}
	nodeStatus := func(name string) *nbt.NodeStatus {
		return &nbt.NodeStatus{State: "answered", Evidence: "nbstat 137: answered in 0.52 ms, 3 names", Attempts: 1, RTT: 520 * time.Microsecond,
			Names: []nbt.NetBIOSName{
				{Name: name, Suffix: "00", Meaning: "workstation", Flags: "B active"},
				{Name: name, Suffix: "20", Meaning: "file server", Flags: "B active"},
				{Name: "OFMLAB", Suffix: "00", Group: true, Meaning: "domain or workgroup name", Flags: "B active"},
			},
			ComputerName: name, Workgroup: "OFMLAB", FileServer: true}
	}
	positive := &nbt.Session{State: "positive", Evidence: "nbss 139: positive session response in 0.61 ms", Called: []string{"OFM90<20>"}, RTT: 610 * time.Microsecond}
	smb2 := func(smb1 bool) *smb.SMBResult {
		ev := "smb1 445: disabled (the server answered that no dialect is common)"
		if smb1 {
			ev = "smb1 445: accepted (the server chose NT LM 0.12)"
		}
		return &smb.SMBResult{State: status.SMB2, Evidence: "smb negotiate 445: SMB 3.1.1 in 0.90 ms, signing enabled, not required", Port: 445,
			Dialect: "SMB 3.1.1", SigningEnabled: true, ServerGUID: "6c61626f-6d66-0000-0000-000000000000", Capabilities: []string{"DFS", "LEASING", "LARGE_MTU"},
			SMB1Accepted: &smb1, SMB1Evidence: ev, RTT: 900 * time.Microsecond,
			Identity: &smbwire.NTLMIdentity{TargetName: "OFMLAB", NetBIOSComputer: "OFM90", NetBIOSDomain: "OFMLAB", DNSComputer: "ofm90.lab",
				ServerTime: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Version: &smbwire.NTLMVersion{Major: 6, Minor: 1, Build: 0, NTLMRevision: 15}},
			IdentityEvidence: "ntlm: the server says it is OFM90 in OFMLAB (ofm90.lab, version 6.1 build 0)"}
	}
	modified := time.Date(2026, 11, 20, 8, 30, 0, 0, time.UTC)
	mounted := func(login string, guest bool, ipc bool) *smb.ShareResult {
		sh := &smb.ShareResult{State: "mounted", Step: "stat", Evidence: "share mount 445: mounted \\\\198.18.0.10\\OFMLOG$ as " + login, Port: 445, Share: "OFMLOG$",
			Login: login, Guest: guest, Dialect: "SMB 3.1.1", Duration: 12 * ms,
			Files: []smb.FileResult{
				{Name: "OFMNT.LOG", State: "present", Size: 182, Modified: modified, Evidence: "file OFMNT.LOG: present, 182 bytes, modified 2026-11-20 08:30:00 UTC",
					Tail: []string{"11/20/2026 08:29:58 OFM service started", "11/20/2026 08:30:00 listening on TCP port file OFMNT.ADR"}},
				{Name: "OFMNT.ADR", State: "present", Size: 58, Modified: modified, Evidence: "file OFMNT.ADR: present, 58 bytes, modified 2026-11-20 08:30:00 UTC",
					Printable: "OFM.....'......OFMADR host=OFM90 port=10006 proto=tcp.."},
			}}
		if ipc {
			sh.IPC = &smb.IPCResult{State: "connected", Evidence: "ipc 445: connected to IPC$ as " + login}
		}
		return sh
	}
	epm := &rpc.EPMResult{State: "bound", Evidence: "epm 135: bind_ack from the endpoint mapper in 0.70 ms", Port: 135, RTT: 700 * time.Microsecond}
	return []*fixtureHost{
		{Target: targets.Target{Addr: netip.MustParseAddr("198.18.0.11")}, Status: engine.HostUp, Started: clock.Add(2 * ms), Duration: 3 * time.Second,
			// The hop finder traced its silent 139 to the router after which it is dropped.
			Paths: tcp.Paths{{Port: 139, Hops: []string{"198.18.0.1"}, DroppedAfter: 1, Outcome: "dropped",
				Evidence: "tcp 139: dropped after hop 1 (198.18.0.1): silence with a TTL of 2"}},
			Ports: []engine.PortResult{
				port(53, "closed", 300*time.Microsecond, 1, "tcp 53: closed, connection refused in 0.30 ms"),
				port(135, "closed", 280*time.Microsecond, 1, "tcp 135: closed, connection refused in 0.28 ms"),
				port(139, "filtered", 0, 2, "tcp 139: filtered, no answer to 2 attempts of 1.5s"),
				port(445, "open", 410*time.Microsecond, 1, "tcp 445: open, connected in 0.41 ms"),
				nmbdUDP[0], nmbdUDP[1], nmbdUDP[2],
			},
			NetBIOS: &nbt.NodeStatus{State: status.OpenFiltered, Evidence: "nbstat 137: open|filtered, no answer to 4 queries of 750ms (silence is not proof of filtering)", Attempts: 4},
			SMB:     smb2(false),
			Share: &smb.ShareResult{State: "logon failure", Step: "session setup", Evidence: "share mount 445: logon failure for OFMLAB\\ofmlab: the server rejected the user name or password (STATUS_LOGON_FAILURE)",
				Port: 445, Share: "OFMLOG$", Login: "OFMLAB\\ofmlab", Dialect: "SMB 3.1.1", NTStatus: "0xc000006d", Duration: 3 * ms}},
		{Target: targets.Target{Addr: netip.MustParseAddr("198.18.0.10"), Name: "ofm90.lab"}, Status: engine.HostUp, Started: clock.Add(ms), Duration: 2 * ms,
			Ports: []engine.PortResult{
				port(53, "open", 350*time.Microsecond, 1, "tcp 53: open, connected in 0.35 ms"),
				port(135, "open", 330*time.Microsecond, 1, "tcp 135: open, connected in 0.33 ms"),
				port(139, "open", 390*time.Microsecond, 1, "tcp 139: open, connected in 0.39 ms"),
				port(445, "open", 400*time.Microsecond, 1, "tcp 445: open, connected in 0.40 ms"),
				nmbdUDP[0], nmbdUDP[1], nmbdUDP[2],
			},
			NetBIOS: nodeStatus("OFM90"), Session: positive, SMB: smb2(true), Share: mounted("guest", true, true), EPM: epm},
		{Target: targets.Target{Addr: netip.MustParseAddr("198.18.0.17")}, Status: engine.HostUnreachable, Started: clock.Add(3 * ms), Duration: 3100 * ms,
			Ports: []engine.PortResult{
				port(53, "unreachable", 3050*ms, 1, "tcp 53: unreachable, no route to host after 3.05 s"),
				port(135, "unreachable", 3050*ms, 1, "tcp 135: unreachable, no route to host after 3.05 s"),
				port(139, "unreachable", 3050*ms, 1, "tcp 139: unreachable, no route to host after 3.05 s"),
				port(445, "unreachable", 3050*ms, 1, "tcp 445: unreachable, no route to host after 3.05 s"),
			}},
		{Target: targets.Target{Addr: netip.MustParseAddr("198.18.0.66")}, Status: engine.HostUp, Started: clock.Add(6 * ms), Duration: 20 * ms,
			Ports: []engine.PortResult{
				port(139, "open", 300*time.Microsecond, 1, "tcp 139: open, connected in 0.30 ms"),
				port(445, "closed", 300*time.Microsecond, 1, "tcp 445: closed, connection refused in 0.30 ms"),
			},
			NetBIOS: &nbt.NodeStatus{State: "answered", Evidence: "nbstat 137: answered in 0.40 ms, 2 names", Attempts: 1, RTT: 400 * time.Microsecond,
				Names: []nbt.NetBIOSName{
					{Name: hostileName, Suffix: "20", Meaning: "file server", Flags: "B active"},
					{Name: hostileGroup, Suffix: "00", Group: true, Meaning: "domain or workgroup name", Flags: "B active"},
				},
				ComputerName: hostileName, Workgroup: hostileGroup, FileServer: true},
			Session: &nbt.Session{State: "negative", Evidence: hostileEvidence, Called: []string{hostileName + "<20>"}}},
		{Target: targets.Target{Addr: netip.MustParseAddr("198.18.0.12")}, Status: engine.HostUp, Started: clock.Add(4 * ms), Duration: 3 * time.Second,
			Ports: []engine.PortResult{
				port(53, "closed", 300*time.Microsecond, 1, "tcp 53: closed, connection refused in 0.30 ms"),
				port(135, "closed", 300*time.Microsecond, 1, "tcp 135: closed, connection refused in 0.30 ms"),
				port(139, "open", 300*time.Microsecond, 1, "tcp 139: open, connected in 0.30 ms"),
				port(445, "filtered", 0, 2, "tcp 445: filtered, no answer to 2 attempts of 1.5s"),
				nmbdUDP[0], nmbdUDP[1], nmbdUDP[2],
			},
			NetBIOS: nodeStatus("DROP445"), Session: positive,
			// Its SMB server calls itself FILER12: node status and SMB disagree on its name.
			SMB139: &smb.SMBResult{State: status.SMB2, Evidence: "smb negotiate 139: SMB 3.1.1 over a NetBIOS session to DROP445<20> in 1.10 ms", Port: 139, Called: "DROP445<20>",
				Identity: &smbwire.NTLMIdentity{TargetName: "OFMLAB", NetBIOSComputer: "FILER12", NetBIOSDomain: "OFMLAB"}, IdentityEvidence: "ntlm: the server says it is FILER12 in OFMLAB",
				Dialect: "SMB 3.1.1", SigningEnabled: true, RTT: 1100 * time.Microsecond}},
		{Target: targets.Target{Addr: netip.MustParseAddr("198.18.0.99")}, Status: engine.HostInternal, Started: clock.Add(5 * ms), Error: "panic: injected fault"},
	}
}

// fixtureOrder is the fixture's addresses in report order.
var fixtureOrder = []string{"198.18.0.10", "198.18.0.11", "198.18.0.12", "198.18.0.17", "198.18.0.66", "198.18.0.99"}

func fixtureRun() Run {
	return Run{
		Tool: "ofmprobe", Version: "test", Started: clock, Finished: clock.Add(3200 * time.Millisecond),
		Vantage:  []string{"198.18.0.2"},
		Profiles: []string{"ofm-9.0", "ofm-9.1"},
		Options: RunOptions{Ports: []int{53, 135, 139, 445}, UDPPorts: []int{67, 138, 445}, TimeoutMS: 1500, Retries: 1,
			UDPTimeoutMS: 750, UDPRetries: 3, Concurrency: 1024, PerHost: 4},
		Catalog:   CatalogOf(catalog.Builtin().Profiles),
		PortTable: catalog.Builtin().Ports,
	}
}

// render writes the fixture through a format's writer.
func render(t *testing.T, format string) []byte {
	t.Helper()
	return renderWith(t, format, Options{})
}

// renderWith writes the fixture through a format's writer with options.
func renderWith(t *testing.T, format string, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWithOptions(format, &buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	run := fixtureRun()
	cat := catalog.Builtin()
	if err := w.Begin(run); err != nil {
		t.Fatal(err)
	}
	var sum Summary
	for _, h := range fixtureHosts() {
		var gradings []catalog.Grading
		for _, p := range cat.Profiles {
			gradings = append(gradings, catalog.Grade(p, h))
		}
		rec := NewHostRecord(h.engineHost(), h.facts(), gradings)
		if rec.Address == "198.18.0.12" {
			// Its netstat -an, which lists 445 listening: filtered from here, so a firewall between.
			f, err := os.Open("testdata/netstat-198.18.0.12.txt")
			if err != nil {
				t.Fatal(err)
			}
			tab, err := netstat.Parse(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			rec.ExplainNetstat(tab, run.Vantage, run.PortTable)
		}
		sum.Add(rec)
		if err := w.Host(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.End(run, sum); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gotLines), len(wantLines)) {
			g, w := "(end of output)", "(end of file)"
			if i < len(gotLines) {
				g = gotLines[i]
			}
			if i < len(wantLines) {
				w = wantLines[i]
			}
			if g != w {
				t.Errorf("%s differs from the golden file at line %d (go test ./report -update rewrites it):\n got %.400q\nwant %.400q", name, i+1, g, w)
				break
			}
		}
	}
}

func TestTableGolden(t *testing.T) {
	out := render(t, "table")
	golden(t, "report.table.golden", out)
	lines := hostRows(t, renderWith(t, "table", Options{All: true}))
	if len(lines) != 1+6+1 {
		t.Fatalf("table has %d lines, want header, 6 hosts and a summary", len(lines))
	}
	for i, addr := range fixtureOrder {
		if f := strings.Fields(lines[1+i]); f[0] != addr {
			t.Errorf("row %d is %s, want %s (rows sorted by address)", i+1, f[0], addr)
		}
	}
}

func TestJSONGolden(t *testing.T) {
	out := render(t, "json")
	golden(t, "report.json.golden", out)
	var doc Document
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("the JSON report does not parse back: %v", err)
	}
	if doc.Schema != SchemaVersion || len(doc.Hosts) != 6 || doc.Summary.Hosts != 6 {
		t.Fatalf("schema %d, %d hosts, summary %d", doc.Schema, len(doc.Hosts), doc.Summary.Hosts)
	}
	byAddr := map[string]HostRecord{}
	for _, h := range doc.Hosts {
		byAddr[h.Address] = h
	}
	wantGrades := map[string][2]catalog.HostGrade{
		// Everything works; SMB1 still accepted warns for both, and NetBIOS open is a hardening warning for 9.1.
		"198.18.0.10": {catalog.GradeWarn, catalog.GradeWarn},
		// NetBIOS dropped fails 9.0; the share refused the logon, which fails both.
		"198.18.0.11": {catalog.GradeFail, catalog.GradeFail},
		"198.18.0.12": {catalog.GradeIncomplete, catalog.GradeFail},
		"198.18.0.17": {catalog.GradeUnreachable, catalog.GradeUnreachable},
	}
	for addr, want := range wantGrades {
		h := byAddr[addr]
		if got := [2]catalog.HostGrade{h.Grade("ofm-9.0"), h.Grade("ofm-9.1")}; got != want {
			t.Errorf("%s grades %v, want %v", addr, got, want)
		}
	}
	if got := doc.Summary.Grades["ofm-9.0"][catalog.GradeFail]; got != 2 {
		t.Errorf("summary: %d hosts fail ofm-9.0, want 2", got)
	}
	if got := doc.Summary.Grades["ofm-9.1"][catalog.GradeFail]; got != 3 {
		t.Errorf("summary: %d hosts fail ofm-9.1, want 3", got)
	}
	if h := byAddr["198.18.0.66"]; h.NetBIOS == nil || h.NetBIOS.ComputerName != hostileName || h.Session.Evidence != hostileEvidence {
		t.Errorf("the hostile host's strings did not survive JSON: %+v", h.NetBIOS)
	}
	if sh := byAddr["198.18.0.10"].Share; sh == nil || len(sh.Files) != 2 || len(sh.Files[0].Tail) != 2 || sh.Files[1].Printable == "" || sh.DurationMS != 12 || sh.IPC == nil {
		t.Errorf("the share facts did not survive JSON: %+v", sh)
	}
	if s := byAddr["198.18.0.10"].SMB; s == nil || s.Dialect != "SMB 3.1.1" || s.RTTMS != 0.9 || s.SMB1Accepted == nil || !*s.SMB1Accepted {
		t.Errorf("the SMB facts did not survive JSON: %+v", s)
	}
	if e := byAddr["198.18.0.10"].EPM; e == nil || e.State != "bound" {
		t.Errorf("the EPM facts did not survive JSON: %+v", e)
	}
	if doc.Summary.Internal != 1 {
		t.Errorf("summary: %d internal, want 1", doc.Summary.Internal)
	}
}

func TestNDJSONGolden(t *testing.T) {
	out := render(t, "ndjson")
	golden(t, "report.ndjson.golden", out)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	var types []string
	var order []string
	for sc.Scan() {
		var l ndjsonLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q does not parse: %v", sc.Text(), err)
		}
		if l.Schema != SchemaVersion {
			t.Errorf("line without schema version: %s", sc.Text())
		}
		types = append(types, l.Type)
		if l.Host != nil {
			order = append(order, l.Host.Address)
		}
	}
	if want := []string{"run", "host", "host", "host", "host", "host", "host", "summary"}; !reflect.DeepEqual(types, want) {
		t.Errorf("line types %q, want %q", types, want)
	}
	// NDJSON streams hosts in the order they finish, unsorted.
	if want := []string{"198.18.0.11", "198.18.0.10", "198.18.0.17", "198.18.0.66", "198.18.0.12", "198.18.0.99"}; !reflect.DeepEqual(order, want) {
		t.Errorf("host order %q, want completion order %q", order, want)
	}
}

func TestAtomicFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.json")
	if err := os.WriteFile(path, []byte("old report"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := CreateAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("half a rep")
	if b, _ := os.ReadFile(path); string(b) != "old report" {
		t.Fatalf("the target changed before Commit: %q", b)
	}
	f.Abort()
	if b, _ := os.ReadFile(path); string(b) != "old report" {
		t.Fatalf("Abort changed the target: %q", b)
	}
	f, _ = CreateAtomic(path)
	f.WriteString("new report")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new report" {
		t.Fatalf("after Commit: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// TestNetBIOSSuffixesReadAsWritten checks that the JSON formats write a NetBIOS name's suffix as written
// ("OFM90<20>"), which is what a person greps a report for, and not HTML-escaped ("OFM90\u003c20\u003e"), and that
// the name still reads back the same.
func TestNetBIOSSuffixesReadAsWritten(t *testing.T) {
	for _, format := range []string{"json", "ndjson"} {
		out := render(t, format)
		if !bytes.Contains(out, []byte(`"OFM90<20>"`)) {
			t.Errorf("%s: no OFM90<20> as written", format)
		}
		if bytes.Contains(out, []byte(`\u003c`)) || bytes.Contains(out, []byte(`\u003e`)) || bytes.Contains(out, []byte(`\u0026`)) {
			t.Errorf("%s: <, > or & escaped for HTML", format)
		}
		doc, err := Read(bytes.NewReader(out), format)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		found := false
		for _, h := range doc.Hosts {
			if h.Session != nil && slices.Contains(h.Session.Called, "OFM90<20>") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no host's session called OFM90<20> after reading the report back", format)
		}
	}
}
