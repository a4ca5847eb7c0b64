package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ofmprobe/ofmprobe/report"
)

// TestSYNWithoutPrivilege runs `scan --syn` in a process that may not open raw sockets (nobody, every capability
// dropped): it says so on one line of stderr and scans with full connects, which still find the open port. Without
// --syn the same process falls back without a word; as root the default is raw SYNs, and --connect full connects.
// The run record says which it was.
func TestSYNWithoutPrivilege(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to drop to nobody with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	// The binary must be readable by nobody: t.TempDir is root's alone.
	dir, err := os.MkdirTemp("", "ofmprobe-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(buildBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ofmprobe")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	port, closePort := loopbackListener(t)
	defer closePort()
	scan := func(nobody bool, flags ...string) (report.Document, string) {
		t.Helper()
		args := append([]string{"scan"}, flags...)
		args = append(args, "--steps", "tcp", "--ports", fmt.Sprint(port), "--format", "json", "127.0.0.1")
		cmd := exec.Command(bin, args...)
		if nobody {
			cmd = exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", bin}, args...)...)
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		doc, err := report.Read(&stdout, "scan output")
		if err != nil || len(doc.Hosts) != 1 || len(doc.Hosts[0].Ports) != 1 || doc.Hosts[0].Ports[0].State != "open" {
			t.Fatalf("%v: report: %v, %+v (stderr %q)", flags, err, doc, stderr.String())
		}
		return doc, stderr.String()
	}
	doc, stderr := scan(true, "--syn")
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "ofmprobe: --syn: ") || !strings.HasSuffix(lines[0], "(it needs root or CAP_NET_RAW): the TCP probes are full connects") {
		t.Errorf("stderr %q, want one line saying --syn fell back to connects", stderr)
	}
	if got := doc.Run.Options.TCPProbe; got != "connect" {
		t.Errorf("--syn without raw sockets: the run records tcp_probe %q, want connect", got)
	}
	// By default raw SYNs are sent where they can be, and full connects elsewhere, without a word.
	if doc, stderr := scan(true); stderr != "" || doc.Run.Options.TCPProbe != "connect" {
		t.Errorf("default without raw sockets: tcp_probe %q, stderr %q; want connect, silently", doc.Run.Options.TCPProbe, stderr)
	}
	if doc, _ := scan(false); doc.Run.Options.TCPProbe != "syn" {
		t.Errorf("default as root: tcp_probe %q, want syn", doc.Run.Options.TCPProbe)
	}
	if doc, _ := scan(false, "--connect"); doc.Run.Options.TCPProbe != "connect" {
		t.Errorf("--connect as root: tcp_probe %q, want connect", doc.Run.Options.TCPProbe)
	}
}

// TestSYNDebugCounters: with --syn, --debug reports the SYN prober's own counters, apart from the connector's: a
// silent port's attempts of 1.2 s (longer than TCP's initial RTO) each sent a second SYN.
func TestSYNDebugCounters(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, for raw sockets")
	}
	port, closePort := loopbackListener(t)
	defer closePort()
	silent := silentLoopbackPorts(t, 1)
	_, _, stderr := runCLI(t, "", "scan", "--syn", "--debug", "--steps", "tcp", "--ports", fmt.Sprintf("%d,%d", port, silent), "--timeout", "1200ms", "--retries", "0", "127.0.0.1")
	m := regexp.MustCompile(`ofmprobe: TCP SYN prober: (\d+) started, 1 connected, .* (\d+) second SYNs`).FindStringSubmatch(stderr)
	if m == nil || m[2] == "0" {
		t.Fatalf("no SYN prober counters with second SYNs in stderr:\n%s", stderr)
	}
	if strings.Contains(stderr, "TCP connector:") {
		t.Errorf("the connector made connects in a TCP-only --syn scan:\n%s", stderr)
	}
}
