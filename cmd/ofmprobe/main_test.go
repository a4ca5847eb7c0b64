package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/report"
)

// noResolver refuses every look-up: the CLI tests must never send a DNS query off the machine.
type noResolver struct{}

func (noResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, fmt.Errorf("test resolver: no look-ups allowed (%s)", host)
}

func TestMain(m *testing.M) {
	resolver = noResolver{}
	os.Exit(m.Run())
}

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"ofmprobe"}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestBadInputIsOneLineAndExit2(t *testing.T) {
	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.txt")
	os.WriteFile(targets, []byte("# lab\n127.0.0.1\n127.0.0.256\n"), 0o644)
	badCatalog := filepath.Join(dir, "catalog.json")
	os.WriteFile(badCatalog, []byte(`{"version": 1, "ports": [], "profiles": [], "extra": 1}`), 0o644)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"scan"}, "ofmprobe: no targets given (name them as arguments or with --targets-file)"},
		{[]string{"scan", "127.0.0.256"}, `ofmprobe: bad target "127.0.0.256": octet 4: "256" is not a number from 0 to 255`},
		{[]string{"scan", "--targets-file", targets}, fmt.Sprintf(`ofmprobe: %s:3: bad target "127.0.0.256": octet 4: "256" is not a number from 0 to 255`, targets)},
		{[]string{"scan", "--targets-file", filepath.Join(dir, "missing.txt")}, fmt.Sprintf("ofmprobe: targets file %s: no such file or directory", filepath.Join(dir, "missing.txt"))},
		{[]string{"scan", "--exclude", "127.0.0.x", "127.0.0.1"}, `ofmprobe: --exclude: bad target "127.0.0.x": not an IPv4 address, range or octet pattern`},
		{[]string{"scan", "127.0.0.1", "--exclude", "127.0.0.0/8"}, "ofmprobe: no targets left to scan after exclusions"},
		{[]string{"scan", "127.0.0.0/15"}, "ofmprobe: more than 65536 targets (at most 131072 addresses given); add --allow-large to scan them all"},
		{[]string{"scan", "--profile", "ofm-8", "127.0.0.1"}, `ofmprobe: unknown profile "ofm-8" (the catalog has ofm-9.0, ofm-9.1)`},
		{[]string{"scan", "--format", "xml", "127.0.0.1"}, `ofmprobe: unknown format "xml" (want ` + strings.Join(report.FormatNames(), ", ") + `)`},
		{[]string{"scan", "--ports", "0", "127.0.0.1"}, `ofmprobe: bad --ports entry "0": want a port or range within 1-65535`},
		{[]string{"scan", "--ports", "445,+80", "127.0.0.1"}, `ofmprobe: bad --ports "445,+80": either list the ports to probe, or +PORT entries to add, not both`},
		{[]string{"scan", "--timeout", "-1s", "127.0.0.1"}, "ofmprobe: timeout -1s must be positive"},
		{[]string{"scan", "--retries", "99", "127.0.0.1"}, "ofmprobe: retries 99 must be from 0 to 10"},
		{[]string{"scan", "--concurrency", "-1", "127.0.0.1"}, "ofmprobe: --concurrency -1 must be at least 1 (or 0 for the default)"},
		{[]string{"scan", "--rate", "-5", "127.0.0.1"}, "ofmprobe: rate -5 must be a positive number of packets per second (or 0 for no cap)"},
		{[]string{"scan", "--shard", "5/4", "127.0.0.1"}, `ofmprobe: --shard "5/4": the shard number must be from 1 to 4`},
		{[]string{"scan", "--shard", "half", "127.0.0.1"}, `ofmprobe: --shard "half": want i/n, such as 2/4`},
		{[]string{"scan", "--resume", "x.ndjson", "--format", "json", "127.0.0.1"}, "ofmprobe: --resume appends to an NDJSON report: --format json cannot be resumed"},
		{[]string{"scan", "--timeout", "soon", "127.0.0.1"}, `ofmprobe: invalid value "soon" for flag -timeout: parse error`},
		{[]string{"scan", "--no-such-flag", "127.0.0.1"}, "ofmprobe: flag provided but not defined: -no-such-flag"},
		{[]string{"scan", "--catalog", badCatalog, "127.0.0.1"}, fmt.Sprintf(`ofmprobe: catalog %s: invalid JSON: json: unknown field "extra"`, badCatalog)},
		{[]string{"scan", "ofm90.example"}, `ofmprobe: bad target "ofm90.example": cannot resolve: test resolver: no look-ups allowed (ofm90.example)`},
		{[]string{"catalog", "--format", "yaml"}, `ofmprobe: unknown catalog format "yaml" (want table or json)`},
		{[]string{"catalog", "--colour"}, "ofmprobe: flag provided but not defined: -colour"},
		{[]string{"diff", "--formt", "json", "a", "b"}, "ofmprobe: flag provided but not defined: -formt"},
		{[]string{"scan", "--netstat", "198.18.0.12", "127.0.0.1"}, `ofmprobe: --netstat "198.18.0.12": want ADDRESS=FILE, such as 198.18.0.12=netstat-fs01.txt`},
		{[]string{"scan", "--netstat", "fs01=x.txt", "127.0.0.1"}, `ofmprobe: --netstat "fs01=x.txt": "fs01" is not an IP address`},
		{[]string{"scan", "--netstat", "127.0.0.1=" + filepath.Join(dir, "missing.txt"), "127.0.0.1"}, fmt.Sprintf("ofmprobe: --netstat %s: no such file or directory", filepath.Join(dir, "missing.txt"))},
		{[]string{"scan", "--netstat", "127.0.0.1=" + targets, "127.0.0.1"}, fmt.Sprintf("ofmprobe: --netstat %s: not the output of netstat -an: no TCP or UDP socket line", targets)},
		{[]string{"scan", "--hops", "99", "127.0.0.1"}, "ofmprobe: --hops 99 must be from 0 (off) to 30"},
		{[]string{"scan", "--syn", "--connect", "127.0.0.1"}, "ofmprobe: --syn and --connect each choose how TCP probes go out: give one of them"},
		{[]string{"scan", "--memory", "lots", "127.0.0.1"}, `ofmprobe: --memory: "lots" is not a size (write it as 224MiB, 1GiB or a number of bytes)`},
		{[]string{"scan", "--memory", "-1GiB", "127.0.0.1"}, `ofmprobe: --memory: "-1GiB" is not a size (write it as 224MiB, 1GiB or a number of bytes)`},
		{[]string{"scan", "--memory", "64MiB", "127.0.0.1"}, "ofmprobe: --memory 64MiB is too small: at least 102MiB (96MiB of it is the scan's fixed needs)"},
		{[]string{"frobnicate"}, `ofmprobe: unknown command "frobnicate" (want scan, serve, report, diff, catalog, version; ofmprobe --help lists them)`},
		{[]string{"--no-such-flag"}, "ofmprobe: flag provided but not defined: -no-such-flag"},
	}
	for _, tc := range tests {
		code, stdout, stderr := runCLI(t, "", tc.args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if got := strings.TrimSuffix(stderr, "\n"); got != tc.want {
			t.Errorf("%q:\n got stderr %q\nwant        %q", tc.args, got, tc.want)
		}
		// Nothing on stdout, flag errors included: a report redirected there must never hold help text.
		if stdout != "" {
			t.Errorf("%q: wrote %d bytes to stdout on bad input: %.200q", tc.args, len(stdout), stdout)
		}
	}
}

func TestHoistFlags(t *testing.T) {
	app := newApp(nil, nil, nil)
	tests := []struct{ in, want []string }{
		{[]string{"ofmprobe", "scan", "198.18.0.0/24", "-f", "json", "--debug", "198.18.1.1", "--ports=445"},
			[]string{"ofmprobe", "scan", "-f", "json", "--debug", "--ports=445", "198.18.0.0/24", "198.18.1.1"}},
		{[]string{"ofmprobe", "scan", "198.18.0.1", "--", "--format"}, []string{"ofmprobe", "scan", "198.18.0.1", "--", "--format"}},
		{[]string{"ofmprobe", "scan", "--targets-file", "-", "--exclude", "198.18.0.1"}, []string{"ofmprobe", "scan", "--targets-file", "-", "--exclude", "198.18.0.1"}},
		{[]string{"ofmprobe", "catalog", "--format", "json"}, []string{"ofmprobe", "catalog", "--format", "json"}},
	}
	for _, tc := range tests {
		if got := hoistFlags(app, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("hoistFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCatalogCommand(t *testing.T) {
	code, out, _ := runCLI(t, "", "catalog", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var cat struct {
		Profiles []struct{ ID string } `json:"profiles"`
	}
	if err := json.Unmarshal([]byte(out), &cat); err != nil || len(cat.Profiles) != 2 {
		t.Fatalf("catalog JSON: %v, %+v", err, cat)
	}
	code, out, _ = runCLI(t, "", "catalog")
	if code != 0 || !strings.Contains(out, "smb-transport        required     tcp 445 or nbss 139") {
		t.Errorf("catalog table: exit %d\n%s", code, out)
	}
	// Every requirement's why and fix are in the table, word for word once the wrapping is undone.
	flat := strings.Join(strings.Fields(out), " ")
	for _, p := range catalog.Builtin().Profiles {
		for _, r := range p.Requirements {
			if !strings.Contains(flat, "why: "+r.Why) || !strings.Contains(flat, "fix: "+r.Fix) {
				t.Errorf("catalog table: %s %s lacks its why or fix", p.ID, r.ID)
			}
		}
	}
}

// TestScanLoopback scans a loopback port that accepts, from a targets file on stdin, and checks the NDJSON stream and
// the exit code: the host cannot pass (its SMB and share checks are not proven), so the exit is 1.
func TestScanLoopback(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	code, out, stderr := runCLI(t, "127.0.0.1\n127.0.0.1 # twice, probed once\n", "scan", "--targets-file", "-", "--ports", fmt.Sprint(port), "--timeout", "500ms")
	if code != exitFail {
		t.Fatalf("exit %d, want 1; stderr %s", code, stderr)
	}
	var hosts []report.HostRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l struct {
			Schema int                `json:"schema"`
			Type   string             `json:"type"`
			Host   *report.HostRecord `json:"host"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.Host != nil {
			hosts = append(hosts, *l.Host)
		}
	}
	if len(hosts) != 1 {
		t.Fatalf("%d hosts, want 1 (duplicates probed once)", len(hosts))
	}
	states := map[string]string{}
	for _, p := range hosts[0].Ports {
		states[fmt.Sprintf("%s %d", p.Protocol, p.Port)] = p.State
	}
	// Nothing listens on loopback's UDP 67, 138 or 445, or on 137: ICMP port unreachable, so closed.
	want := map[string]string{fmt.Sprintf("tcp %d", port): "open", "udp 67": "closed", "udp 138": "closed", "udp 445": "closed"}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("ports %v, want %v", states, want)
	}
	if nb := hosts[0].NetBIOS; nb == nil || nb.State != "closed" {
		t.Errorf("netbios %+v, want closed", nb)
	}
	// NetBIOS closed fails 9.0; 9.1 is not proven (its SMB checks need 445, which was not probed).
	if g0, g1 := hosts[0].Grade("ofm-9.0"), hosts[0].Grade("ofm-9.1"); g0 != "fail" || g1 != "incomplete" {
		t.Errorf("grades %s, %s; want fail, incomplete", g0, g1)
	}
}

// TestScanIPv6AndExcludeFile scans ::1 and 127.0.0.1-3 minus an exclude file: IPv6 gets TCP and no NetBIOS (with
// the reason in its grades), and excluded addresses never appear.
func TestScanIPv6AndExcludeFile(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	exclude := filepath.Join(t.TempDir(), "exclude.txt")
	os.WriteFile(exclude, []byte("127.0.0.2 # not this one\n127.0.0.3\n"), 0o644)
	code, out, stderr := runCLI(t, "", "scan", "::1", "127.0.0.1-3", "--exclude-file", exclude, "--ports", fmt.Sprint(port),
		"--udp-timeout", "200ms", "--udp-retries", "0", "-f", "json")
	if code != exitFail {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc report.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Hosts) != 2 || doc.Hosts[0].Address != "127.0.0.1" || doc.Hosts[1].Address != "::1" {
		t.Fatalf("hosts %+v, want 127.0.0.1 and ::1 only", doc.Hosts)
	}
	v6 := doc.Hosts[1]
	if v6.NetBIOS != nil || len(v6.Ports) != 1+3 || v6.Ports[0].State != "open" {
		t.Errorf("::1: netbios %+v, ports %+v; want TCP open and no NetBIOS probe", v6.NetBIOS, v6.Ports)
	}
	for _, g := range v6.Profiles {
		for _, r := range g.Results {
			if r.Requirement == "netbios-name" && (r.Outcome != "skipped" || r.Reason != "nbstat 137: NetBIOS runs over IPv4 only") {
				t.Errorf("::1 netbios-name: %+v", r)
			}
		}
	}
}

// TestInterruptKeepsResults sends SIGINT to a real ofmprobe process in the middle of a scan of silent loopback ports:
// it must stop starting hosts, finish those in flight, write them and a summary, and exit 130.
func TestInterruptKeepsResults(t *testing.T) {
	bin := buildBinary(t)
	port := silentLoopbackPorts(t, 8)
	out := filepath.Join(t.TempDir(), "partial.ndjson")
	cmd := exec.Command(bin, "scan", "127.0.0.1-8", "--ports", fmt.Sprint(port), "--timeout", "1s", "--retries", "0",
		"--concurrency", "2", "--per-host", "1", "--format", "ndjson", "--output", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	took := time.Since(start)
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v, want 130; stderr: %s", err, stderr.String())
	}
	if took > 2*time.Second {
		t.Errorf("took %s after Ctrl-C; hosts in flight need at most the 1s timeout", took)
	}
	b, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var hostLines int
	var last struct {
		Type string     `json:"type"`
		Run  report.Run `json:"run"`
	}
	for _, l := range lines {
		if strings.Contains(l, `"type":"host"`) {
			hostLines++
		}
	}
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if hostLines < 1 || hostLines >= 8 || last.Type != "summary" || !last.Run.Interrupted {
		t.Errorf("partial output: %d hosts, last line %+v; want some hosts, not all 8, and an interrupted summary\n%s", hostLines, last, b)
	}
	if !strings.Contains(stderr.String(), "interrupted: wrote the") {
		t.Errorf("stderr does not say what was written: %s", stderr.String())
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// buildBinary builds ofmprobe once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ofmprobe")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// silentLoopbackPorts makes one port on 127.0.0.1..127.0.0.n that never completes a handshake: a listener with a
// full accept queue on each address, so the kernel drops further SYNs.
func silentLoopbackPorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 20; try++ {
		port, ok := trySilentPorts(t, n)
		if ok {
			return port
		}
	}
	t.Fatal("no free port on every loopback address")
	return 0
}

func trySilentPorts(t *testing.T, n int) (int, bool) {
	port := 0
	var fds []int
	for i := 1; i <= n; i++ {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, byte(i)}, Port: port}); err != nil {
			for _, f := range fds {
				syscall.Close(f)
			}
			return 0, false
		}
		syscall.Listen(fd, 0)
		if port == 0 {
			sa, _ := syscall.Getsockname(fd)
			port = sa.(*syscall.SockaddrInet4).Port
		}
		for k := 0; k < 3; k++ {
			c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.%d:%d", i, port), 100*time.Millisecond)
			if err != nil {
				break
			}
			t.Cleanup(func() { c.Close() })
		}
	}
	t.Cleanup(func() {
		for _, f := range fds {
			syscall.Close(f)
		}
	})
	return port, true
}

// TestEmptyShard: of two shards of one address, one holds it and the other nothing; the empty one writes an empty
// report and exits 0, so that a batch job's pod that drew it succeeds.
func TestEmptyShard(t *testing.T) {
	var hosts []int
	for i := 1; i <= 2; i++ {
		code, stdout, stderr := runCLI(t, "", "scan", "--format", "json", "--shard", fmt.Sprintf("%d/2", i), "--steps", "tcp", "--ports", "9", "--hops", "0", "127.0.0.1")
		doc, err := report.Read(strings.NewReader(stdout), "stdout")
		if err != nil {
			t.Fatalf("shard %d/2: exit %d, %v; stderr %s", i, code, err, stderr)
		}
		hosts = append(hosts, len(doc.Hosts))
		if len(doc.Hosts) == 0 && (code != 0 || !strings.Contains(stderr, "holds none of the targets")) {
			t.Errorf("empty shard %d/2: exit %d, stderr %q; want 0 and a note", i, code, stderr)
		}
	}
	if hosts[0]+hosts[1] != 1 {
		t.Errorf("the two shards hold %v hosts, want 1 in all", hosts)
	}
}
