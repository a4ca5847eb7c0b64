package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/targets"
	"github.com/ofmprobe/ofmprobe/report"
)

// TestResume scans part of a range into an NDJSON report, damages it as a crash would (a half-written last line)
// and as an aborted scan would (a host record marked aborted), and resumes over the whole range: every host must end
// up in the file, none probed twice except the aborted one, and the report must read back whole.
func TestResume(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sweep.ndjson")
	code, _, stderr := runCLI(t, "", "scan", "127.0.0.1-2", "--resume", out)
	if code == exitUsage || stderr != "" {
		t.Fatalf("first part: exit %d, stderr %q", code, stderr)
	}
	first, _ := os.ReadFile(out)
	if n := bytes.Count(first, []byte(`"type":"host"`)); n != 2 {
		t.Fatalf("first part wrote %d hosts, want 2", n)
	}

	// An aborted record for 127.0.0.3, then a line cut short.
	var line map[string]any
	for _, l := range strings.Split(string(first), "\n") {
		if strings.Contains(l, `"type":"host"`) {
			json.Unmarshal([]byte(l), &line)
			break
		}
	}
	host := line["host"].(map[string]any)
	host["address"], host["aborted"] = "127.0.0.3", true
	aborted, _ := json.Marshal(line)
	f, _ := os.OpenFile(out, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(append(aborted, '\n'))
	f.WriteString(`{"schema":2,"type":"host","host":{"address":"127.0.0.4","sta`)
	f.Close()

	code, _, stderr = runCLI(t, "", "scan", "127.0.0.1-4", "--resume", out)
	if code == exitUsage || stderr != "" {
		t.Fatalf("resume: exit %d, stderr %q (a progress line must not go to a stderr that is not a terminal)", code, stderr)
	}
	b, _ := os.ReadFile(out)
	count := map[string]int{}
	for i, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		var v struct {
			Type string            `json:"type"`
			Host report.HostRecord `json:"host"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %d is not JSON (the cut line was not removed?): %q", i+1, l)
		}
		if v.Type == "host" {
			count[v.Host.Address]++
		}
	}
	want := map[string]int{"127.0.0.1": 1, "127.0.0.2": 1, "127.0.0.3": 2, "127.0.0.4": 1}
	for a, n := range want {
		if count[a] != n {
			t.Errorf("%s has %d records, want %d (all: %v)", a, count[a], n, count)
		}
	}
	doc, err := report.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Hosts) != 4 || doc.Summary.Hosts != 4 {
		t.Fatalf("the resumed report reads back as %d hosts (summary %d), want 4", len(doc.Hosts), doc.Summary.Hosts)
	}
	for _, h := range doc.Hosts {
		if h.Aborted {
			t.Errorf("%s: the aborted record was kept over the resumed one", h.Address)
		}
	}

	// Nothing left: a note, the file untouched, and the exit status of the whole file: its hosts fail.
	code, _, stderr = runCLI(t, "", "scan", "127.0.0.1-4", "--resume", out)
	after, _ := os.ReadFile(out)
	if code != exitFail || !strings.Contains(stderr, "already holds all 4 hosts (4 of them not passing)") || !bytes.Equal(after, b) {
		t.Errorf("resume of a finished report: exit %d, stderr %q, file changed %v", code, stderr, !bytes.Equal(after, b))
	}

	// A file that is not an ofmprobe report is refused, not appended to.
	junk := filepath.Join(t.TempDir(), "junk.ndjson")
	os.WriteFile(junk, []byte("hello\nworld\n"), 0o644)
	code, _, stderr = runCLI(t, "", "scan", "127.0.0.1", "--resume", junk)
	if code != exitUsage || !strings.Contains(stderr, "junk.ndjson:1 is not a line of an ofmprobe NDJSON report") {
		t.Errorf("resume of a non-report: exit %d, stderr %q", code, stderr)
	}
}

// TestResumeExitsWithTheWholeFile proves a resumed scan's exit status counts the hosts the file already held: a
// host that failed before the interruption fails the run, though every host scanned after it passes; and a file whose
// hosts all pass exits 0 with nothing left to scan.
func TestResumeExitsWithTheWholeFile(t *testing.T) {
	port, closePort := loopbackListener(t)
	cat := portCatalog(t, port)
	out := filepath.Join(t.TempDir(), "sweep.ndjson")
	closePort() // 127.0.0.1 fails: its port is closed
	if code, _, stderr := runCLI(t, "", "scan", "127.0.0.1", "--catalog", cat, "--resume", out); code != exitFail {
		t.Fatalf("first part: exit %d, want 1 (%s)", code, stderr)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		t.Skipf("port %d was taken again: %v", port, err)
	}
	defer ln.Close()
	code, _, stderr := runCLI(t, "", "scan", "127.0.0.1-2", "--catalog", cat, "--resume", out)
	if code != exitFail {
		t.Errorf("resume: 127.0.0.2 passes but 127.0.0.1 in the file failed: exit %d, want 1 (%s)", code, stderr)
	}
	doc, err := report.ReadFile(out)
	if err != nil || len(doc.Hosts) != 2 || doc.Hosts[1].Grade("loop") != catalog.GradePass {
		t.Fatalf("report: %v, %+v", err, doc.Hosts)
	}
	passing := filepath.Join(t.TempDir(), "passing.ndjson")
	if code, _, stderr := runCLI(t, "", "scan", "127.0.0.2", "--catalog", cat, "--resume", passing); code != exitPass {
		t.Fatalf("passing host: exit %d (%s)", code, stderr)
	}
	if code, _, stderr := runCLI(t, "", "scan", "127.0.0.2", "--catalog", cat, "--resume", passing); code != exitPass || !strings.Contains(stderr, "(0 of them not passing)") {
		t.Errorf("nothing left in a passing file: exit %d, stderr %q, want 0", code, stderr)
	}
}

// TestProgressLine renders the progress line into a buffer: hosts done of the total, the rate and the failures.
func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, 2)
	p.host(report.HostRecord{Profiles: []catalog.Grading{{Profile: "ofm-9.1", Grade: catalog.GradeFail}}})
	p.host(report.HostRecord{Profiles: []catalog.Grading{{Profile: "ofm-9.1", Grade: catalog.GradePass}}})
	p.finish()
	got := buf.String()
	for _, want := range []string{"1 failing", "(2/2", "hosts/"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress line %q does not show %q", got, want)
		}
	}
	var off *progress // --quiet, or stderr not a terminal
	off.host(report.HostRecord{})
	off.finish()
}

// TestProgressTotal checks that the progress line's total never needs a walk of a huge target set: an IPv6 /64 gets
// no total (the count stops at progressCountLimit) instead of a count of 2^64 addresses before the scan starts.
func TestProgressTotal(t *testing.T) {
	p := targets.Parser{}
	for _, tc := range []struct {
		expr string
		want int64
	}{
		{"198.18.0.0/24", 256},
		{"198.18.0.0/15", 131072},
		{"2001:db8::/64", -1},
	} {
		set := &targets.Set{}
		if err := p.Include(context.Background(), set, tc.expr); err != nil {
			t.Fatal(err)
		}
		done := make(chan int64, 1)
		go func() { done <- progressTotal(set, set.CountUpTo(maxTargetsWithoutFlag)) }()
		select {
		case got := <-done:
			if got != tc.want {
				t.Errorf("%s: progress total %d, want %d", tc.expr, got, tc.want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: counting for the progress line did not end", tc.expr)
		}
	}
}

func TestJobShard(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "JOB_COMPLETION_INDEX" {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct{ spec, index, want, err string }{
		{"2/4", "", "2/4", ""},
		{"", "3", "", ""},
		{"job/4", "0", "1/4", ""},
		{"job/4", "3", "4/4", ""},
		{"job/4", "", "", "JOB_COMPLETION_INDEX (set in a Kubernetes Indexed Job's pods), which is not set"},
		{"job/4", "-1", "", `JOB_COMPLETION_INDEX "-1" is not a whole number from 0`},
	} {
		got, err := jobShard(c.spec, env(c.index))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("jobShard(%q) with index %q: error %v, want %q", c.spec, c.index, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("jobShard(%q) with index %q = %q, %v; want %q", c.spec, c.index, got, err, c.want)
		}
	}
}
