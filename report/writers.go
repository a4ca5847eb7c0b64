package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// Writer writes one report format. Begin is called once before any host, Host once per host as it finishes, End
// once after the last host (also when the scan was interrupted, with Run.Interrupted set).
type Writer interface {
	Begin(Run) error
	Host(HostRecord) error
	End(Run, Summary) error
}

// Formats lists the report formats, and whether each streams hosts as they finish.
var Formats = map[string]bool{"table": false, "json": false, "ndjson": true}

// New returns the writer for a format.
func New(format string, w io.Writer) (Writer, error) {
	switch format {
	case "table":
		return &tableWriter{w: w}, nil
	case "json":
		return &jsonWriter{w: w}, nil
	case "ndjson":
		return &ndjsonWriter{w: bufio.NewWriter(w)}, nil
	}
	return nil, fmt.Errorf("unknown format %q (want %s)", format, strings.Join(FormatNames(), ", "))
}

// FormatNames returns the format names, sorted.
func FormatNames() []string {
	names := make([]string, 0, len(Formats))
	for n := range Formats {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Document is the whole JSON report.
type Document struct {
	Schema  int          `json:"schema"`
	Run     Run          `json:"run"`
	Hosts   []HostRecord `json:"hosts"`
	Summary Summary      `json:"summary"`
}

type jsonWriter struct {
	w     io.Writer
	hosts []HostRecord
}

func (j *jsonWriter) Begin(Run) error { return nil }

func (j *jsonWriter) Host(r HostRecord) error {
	j.hosts = append(j.hosts, r)
	return nil
}

func (j *jsonWriter) End(run Run, sum Summary) error {
	sortRecords(j.hosts)
	doc := Document{Schema: SchemaVersion, Run: run, Hosts: j.hosts, Summary: sum}
	if doc.Hosts == nil {
		doc.Hosts = []HostRecord{}
	}
	enc := json.NewEncoder(j.w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// NDJSON lines: a run line first, one host line as each host finishes, a summary line last. Every line carries the
// schema version and its type, so a consumer can read any line on its own.
type ndjsonLine struct {
	Schema  int         `json:"schema"`
	Type    string      `json:"type"`
	Run     *Run        `json:"run,omitempty"`
	Host    *HostRecord `json:"host,omitempty"`
	Summary *Summary    `json:"summary,omitempty"`
}

type ndjsonWriter struct{ w *bufio.Writer }

func (n *ndjsonWriter) line(l ndjsonLine) error {
	l.Schema = SchemaVersion
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := n.w.Write(b); err != nil {
		return err
	}
	// Flush per line: a host is on disk as soon as it is known.
	return n.w.Flush()
}

func (n *ndjsonWriter) Begin(run Run) error { return n.line(ndjsonLine{Type: "run", Run: &run}) }

func (n *ndjsonWriter) Host(r HostRecord) error { return n.line(ndjsonLine{Type: "host", Host: &r}) }

func (n *ndjsonWriter) End(run Run, sum Summary) error {
	return n.line(ndjsonLine{Type: "summary", Run: &run, Summary: &sum})
}

type tableWriter struct {
	w     io.Writer
	hosts []HostRecord
}

func (t *tableWriter) Begin(Run) error { return nil }

func (t *tableWriter) Host(r HostRecord) error {
	t.hosts = append(t.hosts, r)
	return nil
}

func (t *tableWriter) End(run Run, sum Summary) error {
	sortRecords(t.hosts)
	tw := tabwriter.NewWriter(t.w, 0, 0, 2, ' ', 0)
	header := []string{"ADDRESS", "NAME", "STATUS"}
	for _, p := range run.Profiles {
		header = append(header, strings.ToUpper(p))
	}
	header = append(header, "TCP", "NETBIOS", "REASONS")
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, h := range t.hosts {
		name := h.Name
		if name == "" && h.NetBIOS != nil {
			name = h.NetBIOS.ComputerName
		}
		row := []string{h.Address, dash(name), h.Status}
		for _, p := range run.Profiles {
			row = append(row, dash(string(h.Grade(p))))
		}
		row = append(row, dash(portSummary(h.Ports, "tcp")), dash(netbiosSummary(h)), dash(reasons(h)))
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(t.w, summaryLine(run, sum))
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// netbiosSummary is the NetBIOS column: the workgroup and session outcome when node status answered, else its state.
func netbiosSummary(h HostRecord) string {
	if h.NetBIOS == nil {
		return ""
	}
	s := h.NetBIOS.State
	if h.NetBIOS.State == "answered" && h.NetBIOS.Workgroup != "" {
		s = h.NetBIOS.Workgroup
		if h.NetBIOS.ComputerName != "" {
			s = h.NetBIOS.Workgroup + `\` + h.NetBIOS.ComputerName
		}
	}
	if h.Session != nil {
		s += ", session " + h.Session.State
	}
	return s
}

// portSummary groups one protocol's ports by state: "open 135,139,445; closed 53".
func portSummary(ports []PortRecord, proto string) string {
	var parts []string
	for _, state := range []string{"open", "closed", "filtered", "unreachable", "error"} {
		var nums []string
		for _, p := range ports {
			if p.State == state && p.Protocol == proto {
				nums = append(nums, fmt.Sprint(p.Port))
			}
		}
		if len(nums) > 0 {
			parts = append(parts, state+" "+strings.Join(nums, ","))
		}
	}
	return strings.Join(parts, "; ")
}

// maxReasons is how many reasons a table row shows; the JSON formats carry them all.
const maxReasons = 2

// reasons gives a host's first failing reasons across profiles, each requirement once: failures, then warnings, then
// the required checks that could not run.
func reasons(h HostRecord) string {
	if h.Status == "internal" {
		return "internal error: " + h.Error
	}
	seen := map[string]bool{}
	var out, notProven []string
	for _, want := range []catalog.Outcome{catalog.Fail, catalog.Warn} {
		for _, g := range h.Profiles {
			for _, r := range g.Results {
				if r.Outcome != want || seen[r.Requirement] {
					continue
				}
				seen[r.Requirement] = true
				s := r.Requirement
				if len(r.Evidence) > 0 {
					s += " (" + r.Evidence[0] + ")"
				}
				out = append(out, s)
			}
		}
	}
	for _, g := range h.Profiles {
		for _, r := range g.Results {
			if r.Outcome == catalog.Skipped && r.Severity == catalog.Required && !seen[r.Requirement] {
				seen[r.Requirement] = true
				notProven = append(notProven, r.Requirement)
			}
		}
	}
	if len(out) > maxReasons {
		out = append(out[:maxReasons], fmt.Sprintf("+%d more", len(out)-maxReasons))
	}
	if len(out) == 0 && len(notProven) > 0 {
		return fmt.Sprintf("not proven: %d required checks skipped", len(notProven))
	}
	return strings.Join(out, "; ")
}

// summaryLine is the table's last line: hosts per grade for every profile.
func summaryLine(run Run, sum Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", sum.Hosts, pluralWord(sum.Hosts, "host"))
	grades := []catalog.HostGrade{catalog.GradePass, catalog.GradeWarn, catalog.GradeIncomplete, catalog.GradeFail, catalog.GradeUnreachable}
	for _, p := range run.Profiles {
		var parts []string
		for _, g := range grades {
			if n := sum.Grades[p][g]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, g))
			}
		}
		fmt.Fprintf(&b, "; %s: %s", p, dash(strings.Join(parts, ", ")))
	}
	if sum.Internal > 0 {
		fmt.Fprintf(&b, "; %d %s", sum.Internal, pluralWord(sum.Internal, "internal error"))
	}
	if run.Interrupted {
		b.WriteString(" (interrupted: partial results)")
	}
	return b.String()
}

func pluralWord(n int, w string) string {
	if n == 1 {
		return w
	}
	return w + "s"
}
