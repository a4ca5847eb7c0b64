package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofmprobe/ofmprobe/report"
)

// TestCompressedReport writes a report whose name ends in .gz, reads it back with the report and diff commands,
// resumes it (a second gzip stream appended), and refuses what cannot be appended to: a stream cut short and a
// name that says the other thing.
func TestCompressedReport(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "sweep.ndjson.gz")
	if code, _, stderr := runCLI(t, "", "scan", "127.0.0.1-2", "--format", "ndjson", "--output", out); code == exitUsage || stderr != "" {
		t.Fatalf("scan: exit %d, stderr %q", code, stderr)
	}
	b, _ := os.ReadFile(out)
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("%s is not gzip: % x", out, b[:min(len(b), 8)])
	}
	if bytes.Contains(b, []byte(`"type":"host"`)) {
		t.Fatal("the .gz report holds plain text")
	}
	doc, err := report.ReadFile(out)
	if err != nil || len(doc.Hosts) != 2 {
		t.Fatalf("read back: %v, %d hosts", err, len(doc.Hosts))
	}
	code, stdout, stderr := runCLI(t, "", "report", "--format", "csv", out)
	if code == exitUsage || strings.Count(stdout, "127.0.0.") < 2 {
		t.Fatalf("report of the .gz: exit %d, stderr %q, stdout %q", code, stderr, stdout)
	}
	if code, _, stderr := runCLI(t, "", "diff", out, out); code == exitUsage {
		t.Fatalf("diff of the .gz with itself: exit %d, stderr %q", code, stderr)
	}

	// Resumed: the file is two gzip streams, read as one.
	if code, _, stderr := runCLI(t, "", "scan", "127.0.0.1-3", "--resume", out); code == exitUsage || stderr != "" {
		t.Fatalf("resume: exit %d, stderr %q", code, stderr)
	}
	b, _ = os.ReadFile(out)
	if n := bytes.Count(b, []byte{0x1f, 0x8b, 0x08}); n < 2 {
		t.Errorf("the resumed file has %d gzip headers, want 2", n)
	}
	doc, err = report.ReadFile(out)
	if err != nil || len(doc.Hosts) != 3 {
		t.Fatalf("the resumed .gz reads back as %d hosts (%v), want 3", len(doc.Hosts), err)
	}

	// A whole-document format is compressed too.
	js := filepath.Join(dir, "sweep.json.gz")
	if code, _, stderr := runCLI(t, "", "scan", "127.0.0.1", "--format", "json", "--output", js); code == exitUsage || stderr != "" {
		t.Fatalf("json.gz: exit %d, stderr %q", code, stderr)
	}
	if doc, err := report.ReadFile(js); err != nil || len(doc.Hosts) != 1 {
		t.Fatalf("json.gz reads back as %d hosts (%v)", len(doc.Hosts), err)
	}

	// Cut short, as a killed scan leaves it: the readers say so, and resume refuses to append.
	cut := filepath.Join(dir, "cut.ndjson.gz")
	os.WriteFile(cut, b[:len(b)*2/3], 0o644)
	if _, err := report.ReadFile(cut); !errors.Is(err, report.ErrCutShort) {
		t.Errorf("reading a cut .gz: %v, want ErrCutShort", err)
	}
	code, _, stderr = runCLI(t, "", "scan", "127.0.0.1-4", "--resume", cut)
	if code != exitUsage || !strings.Contains(stderr, "zcat it into a plain .ndjson file") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Errorf("resume of a cut .gz: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "", "report", cut)
	if code != exitUsage || !strings.Contains(stderr, "ends early") {
		t.Errorf("report of a cut .gz: exit %d, stderr %q", code, stderr)
	}

	// A name that says the other thing.
	plain := filepath.Join(dir, "plain.ndjson")
	if code, _, stderr := runCLI(t, "", "scan", "127.0.0.1", "--resume", plain); code == exitUsage {
		t.Fatalf("plain: exit %d, stderr %q", code, stderr)
	}
	lying := filepath.Join(dir, "lying.ndjson.gz")
	os.Rename(plain, lying)
	code, _, stderr = runCLI(t, "", "scan", "127.0.0.1-2", "--resume", lying)
	if code != exitUsage || !strings.Contains(stderr, "is plain text, but its name ends in .gz") {
		t.Errorf("resume of a plain file named .gz: exit %d, stderr %q", code, stderr)
	}
}
