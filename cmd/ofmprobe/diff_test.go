package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ofmprobe/ofmprobe/report"
	"github.com/ofmprobe/ofmprobe/report/reporttest"
)

// loopbackListener accepts and closes connections on 127.0.0.1 until the test ends or close is called.
func loopbackListener(t *testing.T) (port int, close func()) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port, func() { ln.Close() }
}

// portCatalog writes a catalog whose one profile requires a TCP port to be open.
func portCatalog(t *testing.T, port int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.json")
	cat := fmt.Sprintf(`{"version": 1,
  "ports": [{"port": %d, "protocol": "tcp", "service": "test service", "windows": "none"}],
  "profiles": [{"id": "loop", "title": "a loopback port", "requirements": [
    {"id": "port-open", "title": "TCP %d is open", "severity": "required", "match": "all",
     "checks": [{"kind": "tcp", "port": %d, "pass": ["open"]}], "why": "the test needs it", "fix": "open it"}]}]}`, port, port, port)
	if err := os.WriteFile(path, []byte(cat), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestScanLoopbackMatchesSchema scans loopback for real and checks the JSON report and every NDJSON line against
// docs/report.schema.json.
func TestScanLoopbackMatchesSchema(t *testing.T) {
	port, _ := loopbackListener(t)
	common := []string{"scan", "127.0.0.1", "--ports", fmt.Sprint(port), "--timeout", "500ms", "--udp-timeout", "200ms", "--udp-retries", "0"}
	code, out, stderr := runCLI(t, "", append(common, "--format", "json")...)
	if code != exitFail {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	reporttest.Validate(t, "", []byte(out))
	doc, err := report.Read(strings.NewReader(out), "scan output")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range doc.Run.Vantage {
		if ip, err := netip.ParseAddr(a); err != nil || ip.IsLoopback() {
			t.Errorf("vantage address %q: want the machine's own non-loopback addresses", a)
		}
	}
	code, out, stderr = runCLI(t, "", append(common, "--format", "ndjson")...)
	if code != exitFail {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	reporttest.ValidateNDJSON(t, []byte(out))
}

// TestDiffLoopback scans a loopback port while it listens and after it closed, and compares the two reports both
// ways, the second one read as NDJSON: exactly the port and the grade changed.
func TestDiffLoopback(t *testing.T) {
	port, closePort := loopbackListener(t)
	dir := t.TempDir()
	oldPath, newPath := filepath.Join(dir, "old.json"), filepath.Join(dir, "new.ndjson")
	scan := []string{"scan", "127.0.0.1", "--catalog", portCatalog(t, port), "--timeout", "500ms"}
	if code, _, stderr := runCLI(t, "", append(scan, "-f", "json", "-o", oldPath)...); code != 0 {
		t.Fatalf("first scan: exit %d, want 0 (the port is open): %s", code, stderr)
	}
	closePort()
	if code, _, stderr := runCLI(t, "", append(scan, "-f", "ndjson", "-o", newPath)...); code != exitFail {
		t.Fatalf("second scan: exit %d, want 1 (the port is closed): %s", code, stderr)
	}

	code, out, stderr := runCLI(t, "", "diff", oldPath, newPath, "--format", "json")
	if code != exitFail || stderr != "" {
		t.Fatalf("diff: exit %d, want 1 (regressed); stderr %q", code, stderr)
	}
	reporttest.Validate(t, "comparison", []byte(out))
	var c report.Comparison
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	got := changeLines(c)
	want := []string{
		"regressed 127.0.0.1 loop pass→fail regression [port-open pass→fail]",
		fmt.Sprintf("port 127.0.0.1 tcp %d open→closed", port),
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes %q\nwant %q", got, want)
	}

	code, out, _ = runCLI(t, "", "diff", newPath, oldPath)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 6 || lines[len(lines)-1] != "no regressions: 1 fixed, 1 port" {
		t.Errorf("diff NEW OLD: exit %d, want 0 (a fix is no regression):\n%s", code, out)
	}
	if !strings.HasPrefix(lines[3], "fixed ") || !strings.Contains(lines[3], "127.0.0.1") || !strings.Contains(lines[4], fmt.Sprintf("tcp %d", port)) {
		t.Errorf("table rows:\n%s", out)
	}
	// A report compared with itself, one side from stdin.
	b, _ := os.ReadFile(oldPath)
	code, out, _ = runCLI(t, string(b), "diff", oldPath, "-")
	if code != 0 || !strings.HasSuffix(out, "no changes: 1 host compared\n") {
		t.Errorf("diff OLD OLD: exit %d\n%s", code, out)
	}
}

// changeLines renders changes compactly for comparison in tests.
func changeLines(c report.Comparison) []string {
	var out []string
	for _, ch := range c.Changes {
		what := ch.Profile
		if ch.Protocol != "" {
			what = fmt.Sprintf("%s %d", ch.Protocol, ch.Port)
		}
		if ch.Step != "" {
			what = ch.Step
		}
		s := fmt.Sprintf("%s %s %s %s→%s", ch.Kind, ch.Address, what, ch.Old, ch.New)
		if ch.Regression {
			s += " regression"
		}
		if len(ch.Requirements) > 0 {
			var rs []string
			for _, r := range ch.Requirements {
				rs = append(rs, fmt.Sprintf("%s %s→%s", r.Requirement, r.Old, r.New))
			}
			s += " [" + strings.Join(rs, "; ") + "]"
		}
		out = append(out, s)
	}
	return out
}

// TestDiffBadInput: every way the input can be wrong exits 2 with one line naming the file and the problem.
func TestDiffBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		return p
	}
	good := write("good.json", `{"schema": 1, "run": {"tool": "ofmprobe", "version": "t", "started": "2026-11-25T12:00:00Z"}, "hosts": [], "summary": {"hosts": 0}}`)
	missing := filepath.Join(dir, "missing.json")
	catalogFile := write("catalog.json", `{"version": 1, "ports": [], "profiles": []}`)
	v3 := write("v3.json", `{"schema": 3, "run": {}, "hosts": []}`)
	v3nd := write("v3.ndjson", `{"schema":2,"type":"run","run":{}}`+"\n"+`{"schema":3,"type":"host","host":{}}`+"\n")
	text := write("notes.txt", "198.18.0.10 is fine\n")
	empty := write("empty.json", "")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"diff", good}, "ofmprobe: diff needs two reports, OLD and NEW (got 1 arguments)"},
		{[]string{"diff", good, good, good}, "ofmprobe: diff needs two reports, OLD and NEW (got 3 arguments)"},
		{[]string{"diff", "--format", "yaml", good, good}, `ofmprobe: unknown diff format "yaml" (want table or json)`},
		{[]string{"diff", "-", "-"}, "ofmprobe: only one of OLD and NEW can be read from stdin"},
		{[]string{"diff", missing, good}, fmt.Sprintf("ofmprobe: read %s: no such file or directory", missing)},
		{[]string{"diff", good, dir}, fmt.Sprintf("ofmprobe: read %s: is a directory", dir)},
		{[]string{"diff", catalogFile, good}, fmt.Sprintf(`ofmprobe: %s: not an ofmprobe report (no "schema" field)`, catalogFile)},
		{[]string{"diff", good, v3}, fmt.Sprintf("ofmprobe: %s: report schema version mismatch: the report has schema 3, this ofmprobe reads schemas 1 to 2", v3)},
		{[]string{"diff", good, v3nd}, fmt.Sprintf("ofmprobe: %s:2: report schema version mismatch: the report has schema 3, this ofmprobe reads schemas 1 to 2", v3nd)},
		{[]string{"diff", text, good}, fmt.Sprintf("ofmprobe: %s: not an ofmprobe report (not a JSON object)", text)},
		{[]string{"diff", good, empty}, fmt.Sprintf("ofmprobe: %s: not an ofmprobe report (the file is empty)", empty)},
	}
	for _, tc := range tests {
		code, stdout, stderr := runCLI(t, "", tc.args...)
		if code != exitUsage || stdout != "" {
			t.Errorf("%q: exit %d, stdout %q; want 2 and nothing on stdout", tc.args, code, stdout)
		}
		if got := strings.TrimSuffix(stderr, "\n"); got != tc.want || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q:\n got %q\nwant %q", tc.args, stderr, tc.want)
		}
	}
}

// TestCompareBaseline checks what scan --baseline prints and returns, without a scan: the comparison goes to the
// writer given (stderr), and only regressions count.
func TestCompareBaseline(t *testing.T) {
	port, closePort := loopbackListener(t)
	base := filepath.Join(t.TempDir(), "base.json")
	if code, _, stderr := runCLI(t, "", "scan", "127.0.0.1", "--catalog", portCatalog(t, port), "-f", "json", "-o", base); code != 0 {
		t.Fatalf("scan: exit %d: %s", code, stderr)
	}
	doc, err := loadBaseline(base)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	regressed, err := compareBaseline(base, doc, doc.Hosts, doc.Run, &buf)
	if err != nil || regressed || !strings.HasSuffix(buf.String(), "no changes: 1 host compared\n") {
		t.Errorf("same hosts: regressed %v, %v\n%s", regressed, err, buf.String())
	}
	closePort()
	code, out, _ := runCLI(t, "", "scan", "127.0.0.1", "--catalog", portCatalog(t, port), "-f", "json")
	now, err := report.Read(strings.NewReader(out), "scan output")
	if code != exitFail || err != nil {
		t.Fatalf("second scan: exit %d\n%s", code, out)
	}
	buf.Reset()
	regressed, err = compareBaseline(base, doc, now.Hosts, now.Run, &buf)
	if err != nil || !regressed || !strings.HasPrefix(buf.String(), "ofmprobe: compared with the baseline "+base+":\n") ||
		!strings.Contains(buf.String(), "REGRESSED: 1 regressed, 1 port") {
		t.Errorf("closed port: regressed %v, %v\n%s", regressed, err, buf.String())
	}
	if _, err := loadBaseline(filepath.Join(t.TempDir(), "none.json")); err == nil || exitCode(err) != exitUsage {
		t.Errorf("a missing baseline: %v, want a usage error", err)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exitError); ok {
		return ee.code
	}
	return -1
}
