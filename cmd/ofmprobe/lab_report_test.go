package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/report"
	"github.com/ofmprobe/ofmprobe/report/reporttest"
)

var screenshot = flag.String("screenshot", "", "also write the lab HTML report's screenshot to this PNG `file` (docs/report-screenshot.png)")

// labReportHosts are the lab's hosts as designed (labTruth), given as targets.
func labReportHosts() []string {
	return slices.SortedFunc(maps.Keys(labTruth), func(a, b string) int { return compareAddr(a, b) })
}

func compareAddr(a, b string) int {
	var x, y [4]int
	fmt.Sscanf(a, "%d.%d.%d.%d", &x[0], &x[1], &x[2], &x[3])
	fmt.Sscanf(b, "%d.%d.%d.%d", &y[0], &y[1], &y[2], &y[3])
	return slices.Compare(x[:], y[:])
}

// TestLabReportFormats scans the lab's hosts once per format, writing each report to a file as a user would, and reads
// every report back with a real parser: the JSON and NDJSON against the schema, CSV, JUnit XML and Prometheus text
// with their parsers, the HTML in headless Chromium (and a screenshot), the table as text. Every format must show
// each host with the grades the lab's design gives it.
func TestLabReportFormats(t *testing.T) {
	bin := needLab(t)
	hosts := labReportHosts()
	dir := t.TempDir()
	files := map[string]string{}
	for _, format := range report.FormatNames() {
		path := filepath.Join(dir, "report."+format)
		args := []string{bin, "scan", "--format", format, "--output", path}
		if format == "table" {
			args = append(args, "--all") // a row for the unreachable host too, which the table folds otherwise
		}
		_, stderr, code := inLab(t, 120*time.Second, append(args, hosts...)...)
		if code != exitFail {
			t.Fatalf("scan --format %s: exit %d, want 1 (lab hosts fail): %s", format, code, stderr)
		}
		files[format] = path
	}
	read := func(format string) []byte {
		b, err := os.ReadFile(files[format])
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// grades is what each format said: "address profile" -> grade.
	want := map[string]string{}
	for addr, h := range labTruth {
		want[addr+" ofm-9.0"], want[addr+" ofm-9.1"] = string(h.grades[0]), string(h.grades[1])
	}
	check := func(format string, got map[string]string) {
		t.Helper()
		for key, g := range want {
			if got[key] != g {
				t.Errorf("%s report: %s is %q, want %q", format, key, got[key], g)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s report: %d host grades, want %d", format, len(got), len(want))
		}
	}

	t.Run("json", func(t *testing.T) {
		b := read("json")
		reporttest.Validate(t, "", b)
		doc, err := report.Read(bytes.NewReader(b), "report.json")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(doc.Run.Vantage, []string{"198.18.0.2"}) {
			t.Errorf("vantage %q, want the scanner namespace's one address 198.18.0.2", doc.Run.Vantage)
		}
		var problems []string
		got := map[string]string{}
		for _, h := range doc.Hosts {
			problems = append(problems, checkHost(h, labTruth[h.Address])...)
			for _, g := range h.Profiles {
				got[h.Address+" "+g.Profile] = string(g.Grade)
			}
		}
		reportProblems(t, problems)
		check("json", got)
	})
	t.Run("ndjson", func(t *testing.T) {
		b := read("ndjson")
		reporttest.ValidateNDJSON(t, b)
		doc, err := report.ReadFile(files["ndjson"])
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, h := range doc.Hosts {
			for _, g := range h.Profiles {
				got[h.Address+" "+g.Profile] = string(g.Grade)
			}
		}
		check("ndjson", got)
	})
	t.Run("csv", func(t *testing.T) {
		r := csv.NewReader(bytes.NewReader(read("csv")))
		r.FieldsPerRecord = len(report.CSVHeader)
		rows, err := r.ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rows[0], report.CSVHeader) {
			t.Fatalf("header %q", rows[0])
		}
		col := map[string]int{}
		for i, c := range rows[0] {
			col[c] = i
		}
		got := map[string]string{}
		requirements := 0
		for _, p := range catalog.Builtin().Profiles {
			requirements += len(p.Requirements)
		}
		for _, row := range rows[1:] {
			got[row[col["address"]]+" "+row[col["profile"]]] = row[col["grade"]]
			if o := row[col["outcome"]]; (o == "fail" || o == "warn") && (row[col["evidence"]] == "" || row[col["fix"]] == "") {
				t.Errorf("%s %s %s without evidence or fix: %q", row[col["address"]], row[col["requirement"]], o, row)
			}
		}
		if len(rows)-1 != requirements*len(hosts) {
			t.Errorf("%d rows, want %d (hosts × requirements)", len(rows)-1, requirements*len(hosts))
		}
		check("csv", got)
	})
	t.Run("junit", func(t *testing.T) {
		var rep struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Skipped  int `xml:"skipped,attr"`
			Suites   []struct {
				Name     string `xml:"name,attr"`
				Tests    int    `xml:"tests,attr"`
				Failures int    `xml:"failures,attr"`
				Skipped  int    `xml:"skipped,attr"`
				Cases    []struct {
					Name    string `xml:"name,attr"`
					Failure *struct {
						Type string `xml:"type,attr"`
					} `xml:"failure"`
					Skipped *struct{} `xml:"skipped"`
				} `xml:"testcase"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(read("junit"), &rep); err != nil {
			t.Fatal(err)
		}
		var tests, failures, skipped int
		// failing is the worst failure each host has in a suite: "fail", "incomplete" (a required check that could
		// not run), or "" for none.
		failing := map[string]string{}
		for _, s := range rep.Suites {
			var f, sk int
			for _, c := range s.Cases {
				if c.Failure != nil {
					f++
					kind := "fail"
					if c.Failure.Type == "incomplete" {
						kind = "incomplete"
					}
					key := strings.Fields(c.Name)[0] + " " + s.Name
					if failing[key] != "fail" {
						failing[key] = kind
					}
				}
				if c.Skipped != nil {
					sk++
				}
			}
			if s.Tests != len(s.Cases) || s.Failures != f || s.Skipped != sk {
				t.Errorf("suite %s: counts %d/%d/%d, its testcases %d/%d/%d", s.Name, s.Tests, s.Failures, s.Skipped, len(s.Cases), f, sk)
			}
			tests, failures, skipped = tests+s.Tests, failures+f, skipped+sk
		}
		if len(rep.Suites) != 2 || rep.Tests != tests || rep.Failures != failures || rep.Skipped != skipped {
			t.Errorf("%d suites; totals %d/%d/%d, suites add up to %d/%d/%d", len(rep.Suites), rep.Tests, rep.Failures, rep.Skipped, tests, failures, skipped)
		}
		// A host fails a profile exactly when one of its testcases in that suite fails; an incomplete host's only
		// failures are the required checks that could not run, so that CI never shows it green.
		for key, g := range want {
			wantFailing := map[string]string{"fail": "fail", "unreachable": "fail", "incomplete": "incomplete"}[g]
			if failing[key] != wantFailing {
				t.Errorf("junit: %s graded %s, but its worst failing testcase is %q", key, g, failing[key])
			}
		}
	})
	t.Run("prom", func(t *testing.T) {
		parser := expfmt.NewTextParser(model.LegacyValidation)
		families, err := parser.TextToMetricFamilies(bytes.NewReader(read("prom")))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, m := range families["ofmprobe_host_grade"].GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			got[l["address"]+" "+l["profile"]] = l["grade"]
		}
		check("prom", got)
		if d := families["ofmprobe_scan_duration_seconds"].GetMetric(); len(d) != 1 || d[0].GetGauge().GetValue() <= 0 {
			t.Errorf("scan duration %v", d)
		}
	})
	t.Run("table", func(t *testing.T) {
		// The rows end at the summary line; the root causes follow it.
		lines := strings.Split(strings.TrimSpace(string(read("table"))), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, fmt.Sprintf("%d hosts; ofm-9.0: ", len(hosts))) {
				lines = lines[:i+1]
				break
			}
		}
		if len(lines) != len(hosts)+2 {
			t.Fatalf("%d lines, want a header, %d hosts and a summary", len(lines), len(hosts))
		}
		got := map[string]string{}
		for _, l := range lines[1 : len(lines)-1] {
			f := strings.Fields(l)
			// ADDRESS NAME STATUS OFM-9.0 OFM-9.1 ...
			got[f[0]+" ofm-9.0"], got[f[0]+" ofm-9.1"] = f[3], f[4]
		}
		check("table", got)
		if !strings.HasPrefix(lines[len(lines)-1], fmt.Sprintf("%d hosts; ofm-9.0: ", len(hosts))) {
			t.Errorf("summary line %q", lines[len(lines)-1])
		}
	})
	t.Run("html", func(t *testing.T) {
		reporttest.Chromium(t)
		p := reporttest.ParseDOM(t, reporttest.DumpDOM(t, files["html"], ""))
		if p.Ready != "true" || !slices.Equal(p.Hosts, hosts) || !slices.Equal(p.Visible, hosts) {
			t.Errorf("after the script ran: ready %q, hosts %q, visible %q; want every host %q", p.Ready, p.Hosts, p.Visible, hosts)
		}
		// The worst ofm-9.1 grades first, as a link to that view shows them.
		p = reporttest.ParseDOM(t, reporttest.DumpDOM(t, files["html"], "#grade=ofm-9.1:fail"))
		var failing []string
		for _, a := range hosts {
			if labTruth[a].grades[1] == catalog.GradeFail {
				failing = append(failing, a)
			}
		}
		if !slices.Equal(p.Visible, failing) {
			t.Errorf("#grade=ofm-9.1:fail shows %q, want %q", p.Visible, failing)
		}
		png := filepath.Join(dir, "report.png")
		reporttest.Screenshot(t, files["html"], png, 1400, 1000)
		t.Logf("screenshot of the lab report: %s", png)
		if *screenshot != "" {
			b, _ := os.ReadFile(png)
			if err := os.WriteFile(*screenshot, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// blockInLab drops a TCP port's inbound packets in a lab namespace with an nftables table of its own, removed when the
// test ends.
func blockInLab(t *testing.T, namespace, table string, port int) {
	t.Helper()
	nft := func(args ...string) error {
		out, err := exec.Command("ip", append([]string{"netns", "exec", namespace, "nft"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("nft %s in %s: %v: %s", strings.Join(args, " "), namespace, err, out)
		}
		return nil
	}
	nft("delete", "table", "inet", table) // left over from an interrupted run
	t.Cleanup(func() {
		if err := nft("delete", "table", "inet", table); err != nil {
			t.Error(err)
		}
	})
	for _, args := range [][]string{
		{"add", "table", "inet", table},
		{"add", "chain", "inet", table, "input", "{ type filter hook input priority -10 ; policy accept ; }"},
		{"add", "rule", "inet", table, "input", "tcp", "dport", fmt.Sprint(port), "drop"},
	} {
		if err := nft(args...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLabDiffBlockedPort scans two lab hosts, drops TCP 135 on ofm90 with nftables, scans again and compares: the
// comparison names exactly that port, and since RPC is advisory, nothing regressed.
func TestLabDiffBlockedPort(t *testing.T) {
	bin := needLab(t)
	dir := t.TempDir()
	oldPath, newPath := filepath.Join(dir, "old.json"), filepath.Join(dir, "new.ndjson")
	targets := []string{"198.18.0.10", "198.18.0.12"}
	if _, stderr, code := inLab(t, 120*time.Second, append([]string{bin, "scan", "-f", "json", "-o", oldPath}, targets...)...); code == exitUsage || code > exitFail {
		t.Fatalf("first scan: exit %d: %s", code, stderr)
	}
	blockInLab(t, "ofmlab-ofm90", "ofmprobe_difftest", 135)
	if _, stderr, code := inLab(t, 120*time.Second, append([]string{bin, "scan", "-f", "ndjson", "-o", newPath}, targets...)...); code == exitUsage || code > exitFail {
		t.Fatalf("second scan: exit %d: %s", code, stderr)
	}
	code, out, stderr := runCLI(t, "", "diff", "--format", "json", oldPath, newPath)
	if code != 0 {
		t.Errorf("diff: exit %d, want 0 (an advisory port changed, no grade): %s\n%s", code, stderr, out)
	}
	reporttest.Validate(t, "comparison", []byte(out))
	var c report.Comparison
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if got, want := changeLines(c), []string{"port 198.18.0.10 tcp 135 open→filtered"}; !slices.Equal(got, want) {
		t.Errorf("changes %q, want exactly %q", got, want)
	}
	code, out, _ = runCLI(t, "", "diff", oldPath, newPath)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 5 ||
		!hasRow(out, "port", "198.18.0.10", "OFM90", "tcp", "135", "open", "filtered") || lines[4] != "no regressions: 1 port" {
		t.Errorf("diff table: exit %d\n%s", code, out)
	}
}

// hasRow reports whether a line of a table starts with exactly these cells.
func hasRow(table string, cells ...string) bool {
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) >= len(cells) && slices.Equal(f[:len(cells)], cells) {
			return true
		}
	}
	return false
}

// TestLabScanBaseline compares a scan with a baseline as it ends: with TCP 445 dropped on ofm90, its ofm-9.1 grade
// gets worse, the comparison on stderr says so, and the exit status is 1; against itself, 0.
func TestLabScanBaseline(t *testing.T) {
	bin := needLab(t)
	base := filepath.Join(t.TempDir(), "base.json")
	if _, stderr, code := inLab(t, 120*time.Second, bin, "scan", "-f", "json", "-o", base, "198.18.0.10"); code == exitUsage || code > exitFail {
		t.Fatalf("baseline scan: exit %d: %s", code, stderr)
	}
	_, stderr, code := inLab(t, 120*time.Second, bin, "scan", "-f", "ndjson", "--baseline", base, "198.18.0.10")
	if code != 0 || !strings.Contains(stderr, "ofmprobe: compared with the baseline "+base+":") || !strings.Contains(stderr, "no changes: 1 host compared") {
		t.Errorf("unchanged: exit %d, want 0:\n%s", code, stderr)
	}
	blockInLab(t, "ofmlab-ofm90", "ofmprobe_baselinetest", 445)
	out, stderr, code := inLab(t, 120*time.Second, bin, "scan", "-f", "ndjson", "--baseline", base, "198.18.0.10")
	if code != exitFail || !hasRow(stderr, "regressed", "198.18.0.10", "OFM90", "ofm-9.1", "warn", "fail") ||
		!hasRow(stderr, "port", "198.18.0.10", "OFM90", "tcp", "445", "open", "filtered") || !strings.Contains(stderr, "REGRESSED: ") {
		t.Errorf("445 dropped: exit %d, want 1:\n%s", code, stderr)
	}
	// The report itself still goes to stdout, whole.
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.Contains(lines[2], `"type":"summary"`) {
		t.Errorf("stdout is not the NDJSON report:\n%s", out)
	}
	if _, stderr, code := inLab(t, 30*time.Second, bin, "scan", "--baseline", filepath.Join(t.TempDir(), "none.json"), "198.18.0.10"); code != exitUsage ||
		!strings.Contains(stderr, "none.json: no such file or directory") {
		t.Errorf("a missing baseline: exit %d, want 2 before any probing: %s", code, stderr)
	}
}
