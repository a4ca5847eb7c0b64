package report

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// tableWriter prints one row per host, sorted by address, and a summary line. It lays the columns out itself rather
// than with text/tabwriter, so that colour codes do not count towards a column's width.
type tableWriter struct {
	w     io.Writer
	opts  Options
	hosts []HostRecord
}

func (t *tableWriter) Begin(Run) error { return nil }

func (t *tableWriter) Host(r HostRecord) error {
	t.hosts = append(t.hosts, r)
	return nil
}

// cell is one table cell: its text and the ANSI style that paints it ("" for none).
type cell struct {
	text  string
	style string
}

// ANSI styles.
const (
	styleBold    = "1"
	styleRed     = "1;31"
	styleGreen   = "32"
	styleYellow  = "33"
	styleBlue    = "36"
	styleMagenta = "35"
)

// gradeStyle is the colour of a host grade.
var gradeStyle = map[catalog.HostGrade]string{
	catalog.GradePass: styleGreen, catalog.GradeWarn: styleYellow, catalog.GradeIncomplete: styleBlue,
	catalog.GradeFail: styleRed, catalog.GradeUnreachable: styleMagenta,
}

// statusStyle is the colour of a host status.
var statusStyle = map[string]string{"unreachable": styleMagenta, "internal": styleRed}

// On a terminal of known width, the name and NetBIOS columns are cut to at most these many columns (a long or hostile
// name must not push the reasons off the screen), and the reasons column to what is left, but never below
// minReasonsWidth.
const (
	maxNameWidth    = 24
	maxNetBIOSWidth = 36
	minReasonsWidth = 20
)

func (t *tableWriter) End(run Run, sum Summary) error {
	sortRecords(t.hosts)
	doc, err := printableDocument(Document{Run: run, Hosts: t.hosts, Summary: sum})
	if err != nil {
		return err
	}
	run = doc.Run
	header := []cell{{"ADDRESS", styleBold}, {"NAME", styleBold}, {"STATUS", styleBold}}
	for _, p := range run.Profiles {
		header = append(header, cell{strings.ToUpper(p), styleBold})
	}
	header = append(header, cell{"TCP", styleBold}, cell{"NETBIOS", styleBold}, cell{"REASONS", styleBold})
	rows := [][]cell{header}
	for _, h := range doc.Hosts {
		row := []cell{{h.Address, ""}, {dash(h.displayName()), ""}, {h.Status, statusStyle[h.Status]}}
		for _, p := range run.Profiles {
			g := h.Grade(p)
			row = append(row, cell{dash(string(g)), gradeStyle[g]})
		}
		row = append(row, cell{dash(portSummary(h.Ports, "tcp")), ""}, cell{dash(netbiosSummary(h)), ""}, cell{dash(reasons(h)), ""})
		rows = append(rows, row)
	}

	last := len(header) - 1
	if t.opts.Width > 0 {
		for _, row := range rows[1:] {
			row[1].text = truncate(row[1].text, maxNameWidth)
			row[last-1].text = truncate(row[last-1].text, maxNetBIOSWidth)
		}
	}
	widths := make([]int, len(header))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	if t.opts.Width > 0 {
		used := 0
		for _, w := range widths[:last] {
			used += w + 2
		}
		limit := max(t.opts.Width-used, minReasonsWidth)
		for _, row := range rows {
			row[last].text = truncate(row[last].text, limit)
		}
	}
	var b strings.Builder
	for _, row := range rows {
		for i, c := range row {
			b.WriteString(t.paint(c.style, c.text))
			if i < last {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text)+2))
			}
		}
		b.WriteByte('\n')
	}
	b.WriteString(summaryLine(run, sum, t.paint))
	b.WriteByte('\n')
	_, err = io.WriteString(t.w, b.String())
	return err
}

// paint wraps text in an ANSI style when colour is on.
func (t *tableWriter) paint(style, text string) string {
	if !t.opts.Color || style == "" {
		return text
	}
	return "\x1b[" + style + "m" + text + "\x1b[0m"
}

// truncate cuts s to at most n runes, ending it with an ellipsis when it was cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
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

// portStates lists the port states in the order summaries show them.
var portStates = []string{"open", "open|filtered", "closed", "filtered", "unreachable", "error"}

// portSummary groups one protocol's ports by state: "open 135,139,445; closed 53".
func portSummary(ports []PortRecord, proto string) string {
	var parts []string
	for _, state := range portStates {
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

// summaryLine is the table's last line: hosts per grade for every profile. paint colours the grades.
func summaryLine(run Run, sum Summary, paint func(style, text string) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", sum.Hosts, pluralWord(sum.Hosts, "host"))
	for _, p := range run.Profiles {
		var parts []string
		for _, g := range gradeOrder {
			if n := sum.Grades[p][g]; n > 0 {
				parts = append(parts, paint(gradeStyle[g], fmt.Sprintf("%d %s", n, g)))
			}
		}
		fmt.Fprintf(&b, "; %s: %s", p, dash(strings.Join(parts, ", ")))
	}
	if sum.Internal > 0 {
		fmt.Fprintf(&b, "; %s", paint(styleRed, fmt.Sprintf("%d %s", sum.Internal, pluralWord(sum.Internal, "internal error"))))
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
