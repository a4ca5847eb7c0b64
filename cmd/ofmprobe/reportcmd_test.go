package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofmprobe/ofmprobe/report/reporttest"
)

// TestReportCommand writes a loopback scan's NDJSON report again as a table and as JSON: the causes are counted from
// the hosts (a port closed on two hosts is one cause of two hosts, with its fix), in every format, and the exit
// status is the hosts'.
func TestReportCommand(t *testing.T) {
	port, closePort := loopbackListener(t)
	closePort()
	cat := portCatalog(t, port)
	nd := filepath.Join(t.TempDir(), "scan.ndjson")
	if code, _, stderr := runCLI(t, "", "scan", "127.0.0.1-2", "--catalog", cat, "-f", "ndjson", "-o", nd); code != exitFail {
		t.Fatalf("scan: exit %d (%s)", code, stderr)
	}
	code, out, stderr := runCLI(t, "", "report", nd)
	if code != exitFail || stderr != "" {
		t.Errorf("report: exit %d, stderr %q, want 1 and nothing", code, stderr)
	}
	want := fmt.Sprintf("2 hosts, fail: tcp %d closed: breaks loop port-open: 127.0.0.1 127.0.0.2\n    fix: Nothing listens on TCP %d at the host (Windows services on it: none).\n", port, port)
	if !strings.Contains(out, want) {
		t.Errorf("report table lacks the cause %q:\n%s", want, out)
	}
	code, out, _ = runCLI(t, "", "report", "--format", "json", nd)
	reporttest.Validate(t, "", []byte(out))
	var doc struct {
		Summary struct {
			Causes []struct {
				Cause     string   `json:"cause"`
				Hosts     int      `json:"hosts"`
				Addresses []string `json:"addresses"`
				Fix       string   `json:"fix"`
				Action    string   `json:"action"`
			} `json:"causes"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != exitFail {
		t.Fatalf("report json: exit %d, %v", code, err)
	}
	if c := doc.Summary.Causes; len(c) != 1 || c[0].Hosts != 2 || c[0].Cause != fmt.Sprintf("tcp %d closed", port) || c[0].Fix != "open it" ||
		c[0].Action != fmt.Sprintf("Nothing listens on TCP %d at the host (Windows services on it: none).", port) {
		t.Errorf("causes %+v", c)
	}
	// A stream cut before its summary line still gives its causes, counted from its hosts.
	b, _ := os.ReadFile(nd)
	lines := strings.SplitAfter(strings.TrimSpace(string(b)), "\n")
	cut := filepath.Join(t.TempDir(), "cut.ndjson")
	os.WriteFile(cut, []byte(strings.Join(lines[:len(lines)-1], "")), 0o644)
	if _, out, _ := runCLI(t, "", "report", cut); !strings.Contains(out, want) {
		t.Errorf("cut stream: no cause in\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report"}, "ofmprobe: report needs one report FILE (got 0 arguments)"},
		{[]string{"report", "--format", "xml", nd}, `ofmprobe: unknown format "xml" (want csv, html, json, junit, ndjson, prom, table)`},
		{[]string{"report", cat}, fmt.Sprintf(`ofmprobe: %s: not an ofmprobe report (no "schema" field)`, cat)},
	} {
		code, out, stderr := runCLI(t, "", tc.args...)
		if code != exitUsage || out != "" || strings.TrimSpace(stderr) != tc.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, stderr, tc.want)
		}
	}
}
