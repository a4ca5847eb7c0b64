package report

import (
	"bufio"
	"fmt"
	"io"
	"iter"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// tableWriter prints one row per host, sorted by address, and a summary line. It lays the columns out itself rather
// than with text/tabwriter, so that colour codes do not count towards a column's width. Like the other
// whole-document formats it spools the hosts until the end, and reads them back twice: once for the column widths,
// once to print; it never holds more than one host's row.
type tableWriter struct {
	opts Options
}

func newTableWriter(w io.Writer, opts Options) Writer {
	t := &tableWriter{opts: opts}
	return &documentWriter{w: w, write: t.write}
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
var statusStyle = map[string]string{"unreachable": styleMagenta, "error": styleRed, "internal": styleRed}

// On a terminal of known width, the name and NetBIOS columns are cut to at most these many columns (a long or hostile
// name must not push the reasons off the screen), and the reasons column to what is left, but never below
// minReasonsWidth.
const (
	maxNameWidth    = 24
	maxNetBIOSWidth = 36
	minReasonsWidth = 20
)

func (t *tableWriter) write(w io.Writer, doc streamDocument) error {
	doc, err := printableStream(doc)
	if err != nil {
		return err
	}
	run, sum := doc.Run, doc.Summary
	header := []cell{{"ADDRESS", styleBold}, {"NAME", styleBold}, {"STATUS", styleBold}}
	for _, p := range run.Profiles {
		header = append(header, cell{strings.ToUpper(p), styleBold})
	}
	header = append(header, cell{"TCP", styleBold}, cell{"NETBIOS", styleBold}, cell{"REASONS", styleBold})
	last := len(header) - 1
	row := func(h HostRecord) []cell {
		r := []cell{{h.Address, ""}, {dash(h.displayName()), ""}, {h.Status, statusStyle[h.Status]}}
		for _, p := range run.Profiles {
			g := h.Grade(p)
			r = append(r, cell{dash(string(g)), gradeStyle[g]})
		}
		r = append(r, cell{dash(portSummary(h.Ports, "tcp")), ""}, cell{dash(netbiosSummary(h)), ""}, cell{dash(reasons(h)), ""})
		if t.opts.Width > 0 {
			r[1].text = truncate(r[1].text, maxNameWidth)
			r[last-1].text = truncate(r[last-1].text, maxNetBIOSWidth)
		}
		return r
	}

	// Addresses where nothing answered fold into one line, unless every host is asked for.
	folded := func(h HostRecord) bool { return !t.opts.All && h.Status == "unreachable" }

	// First pass: the widths of the columns before the reasons.
	widths := make([]int, len(header))
	measure := func(r []cell) {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	measure(header)
	var silent addressRanges
	for h := range doc.Hosts {
		if folded(h) {
			silent.add(h.Address)
			continue
		}
		measure(row(h))
	}
	// On a terminal the reasons take what the other columns leave; when that is too little to read, they go on a
	// line of their own under the row, indented, cut to the terminal's width.
	limit, ownLine := 0, false
	if t.opts.Width > 0 {
		used := 0
		for _, w := range widths[:last] {
			used += w + 2
		}
		limit = t.opts.Width - used
		if limit < minReasonsWidth {
			limit, ownLine = max(t.opts.Width-len(reasonsIndent), minReasonsWidth), true
		}
	}

	// Second pass: print.
	bw := bufio.NewWriter(w)
	print := func(r []cell) {
		if limit > 0 {
			r[last].text = truncate(r[last].text, limit)
		}
		for i, c := range r {
			if i == last && ownLine {
				bw.WriteString("\n" + reasonsIndent)
			}
			bw.WriteString(t.paint(c.style, c.text))
			if i < last-1 || (i == last-1 && !ownLine) {
				bw.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text)+2))
			}
		}
		bw.WriteByte('\n')
	}
	print(header)
	for h := range doc.Hosts {
		if !folded(h) {
			print(row(h))
		}
	}
	if silent.n > 0 {
		fmt.Fprintf(bw, "%s\n", silent.line(t.opts.Width))
	}
	bw.WriteString(summaryLine(run, sum, t.paint))
	bw.WriteByte('\n')
	writeCauses(bw, run, sum.Causes, t.opts, t.paint)
	writeNetstats(bw, doc.Hosts, t.opts, t.paint)
	writeHops(bw, doc.Hosts, t.opts, t.paint)
	return bw.Flush()
}

// writeHops lists where the silent TCP ports' SYNs stop, for the traces that found a router (or were answered after
// all); a port dropped at the first hop, which a flat network gives every silent port, only with --all.
func writeHops(w *bufio.Writer, hosts iter.Seq[HostRecord], opts Options, paint func(style, text string) string) {
	header := false
	for h := range hosts {
		for _, p := range h.Hops {
			if !opts.All && p.Outcome == "dropped" && p.DroppedAfter == 0 {
				continue
			}
			if !header {
				fmt.Fprintf(w, "%s:\n", paint(styleBold, "Where the silent TCP ports stop (SYNs of a growing TTL)"))
				header = true
			}
			fmt.Fprintf(w, "%s %s\n", h.Address, p.Evidence)
		}
	}
}

// writeNetstats explains, for the hosts that --netstat gave a netstat output for, each port whose two ends need a
// look (every port with --all): listening on the host but filtered from here, not listening, loopback only.
func writeNetstats(w *bufio.Writer, hosts iter.Seq[HostRecord], opts Options, paint func(style, text string) string) {
	width := opts.Width
	if width <= 0 {
		width = 160
	}
	header := false
	for h := range hosts {
		for _, v := range h.Netstat {
			if !opts.All && v.Agrees && v.Probe == "open" {
				continue // fine from both ends
			}
			if !header {
				fmt.Fprintf(w, "%s:\n", paint(styleBold, "The hosts' own view (netstat -an on the host)"))
				header = true
			}
			style := ""
			if !v.Agrees {
				style = styleRed
			}
			for j, l := range Wrap(h.Address+" "+v.Explanation, width-4) {
				if j > 0 {
					l = "    " + l
				}
				fmt.Fprintf(w, "%s\n", paint(style, l))
			}
		}
	}
}

// reasonsIndent starts the reasons of a row when they go on a line of their own.
const reasonsIndent = "    "

// addressRanges gathers the folded addresses as runs of consecutive addresses, in report order.
type addressRanges struct {
	n      int
	ranges [][2]string
	last   netip.Addr
}

func (a *addressRanges) add(s string) {
	a.n++
	ip, err := netip.ParseAddr(s)
	if err == nil && a.last.IsValid() && len(a.ranges) > 0 && a.last.Next() == ip {
		a.ranges[len(a.ranges)-1][1] = s
		a.last = ip
		return
	}
	a.ranges = append(a.ranges, [2]string{s, s})
	a.last = netip.Addr{}
	if err == nil {
		a.last = ip
	}
}

// maxFoldedRanges is how many ranges of silent addresses the folded line names before it counts the rest.
const maxFoldedRanges = 6

// list names the ranges, at most max of them, then how many more there are: "198.18.0.1-9, 198.18.0.24-255".
func (a *addressRanges) list(max int) string {
	var parts []string
	for i, r := range a.ranges {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more ranges", len(a.ranges)-max))
			break
		}
		if r[0] == r[1] {
			parts = append(parts, r[0])
		} else {
			parts = append(parts, r[0]+"-"+lastPart(r[0], r[1]))
		}
	}
	return strings.Join(parts, ", ")
}

// line is the folded line: "243 addresses did not answer (unreachable): 198.18.0.1-9, 198.18.0.24-255; --all lists them".
func (a *addressRanges) line(width int) string {
	noun := "addresses"
	if a.n == 1 {
		noun = "address"
	}
	s := fmt.Sprintf("%d %s did not answer (unreachable, folded; --all lists them): %s", a.n, noun, a.list(maxFoldedRanges))
	if width > 0 {
		s = truncate(s, width)
	}
	return s
}

// lastPart shortens the end of an IPv4 range that shares the first three octets with its start: 198.18.0.24-255.
func lastPart(first, last string) string {
	a, b := netip.MustParseAddr(first), netip.MustParseAddr(last)
	if a.Is4() && b.Is4() {
		x, y := a.As4(), b.As4()
		if x[0] == y[0] && x[1] == y[1] && x[2] == y[2] {
			return fmt.Sprint(y[3])
		}
	}
	return last
}

// maxTableCauses is how many causes the table lists without --all; the JSON formats and ofmprobe report carry them
// all.
const maxTableCauses = 3

// maxCauseHosts is how many addresses a cause's line names without --all.
const maxCauseHosts = 3

// writeCauses lists the root causes after the summary line, the most hosts first: each on a line with what it broke
// and the hosts it covers, then what to do (the action for the hosts as observed, else the requirement's fix),
// wrapped. Without --all it shows the first maxTableCauses, each first line cut to the terminal's width; with it,
// every cause and its addresses in full.
func writeCauses(w *bufio.Writer, run Run, causes []Cause, opts Options, paint func(style, text string) string) {
	if len(causes) == 0 {
		return
	}
	from := ""
	if len(run.Vantage) > 0 {
		from = ", probed from " + strings.Join(run.Vantage, ", ")
	}
	fmt.Fprintf(w, "%s%s:\n", paint(styleBold, "Causes, most hosts first"), from)
	width := opts.Width
	if width <= 0 {
		width = 160
	}
	for i, c := range causes {
		if i == maxTableCauses && !opts.All {
			fmt.Fprintf(w, "and %d more %s (--all lists them; ofmprobe report --format json has them all)\n", len(causes)-i, pluralWord(len(causes)-i, "cause"))
			break
		}
		style := map[catalog.Outcome]string{catalog.Fail: styleRed, catalog.Warn: styleYellow, catalog.Skipped: styleBlue}[c.Outcome]
		outcome := string(c.Outcome)
		if c.Outcome == catalog.Skipped {
			outcome = "not verified"
		}
		reqs := []string{c.Profile + " " + c.Requirement}
		for _, a := range c.Also {
			reqs = append(reqs, a.Profile+" "+a.Requirement)
		}
		addrs := c.Addresses
		if !opts.All && len(addrs) > maxCauseHosts {
			addrs = addrs[:maxCauseHosts]
		}
		hosts := strings.Join(addrs, " ")
		if more := c.Hosts - len(addrs); more > 0 {
			hosts += fmt.Sprintf(" +%d", more)
		}
		line := fmt.Sprintf("%d %s, %s: %s: breaks %s: %s", c.Hosts, pluralWord(c.Hosts, "host"), outcome, c.Cause, strings.Join(reqs, ", "), hosts)
		fix := c.Fix
		if c.Action != "" {
			fix = c.Action
		}
		if fix == "" {
			fix = "the check could not run: see the hosts' reasons"
		}
		if !opts.All {
			line = truncate(line, width)
		}
		// The fix is wrapped, never cut: it may end in a command to paste.
		fmt.Fprintf(w, "%s\n", paint(style, line))
		for j, l := range Wrap(fix, width-9) {
			lead := "         "
			if j == 0 {
				lead = "    fix: "
			}
			fmt.Fprintf(w, "%s%s\n", lead, l)
		}
	}
}

// Wrap breaks text into lines of at most width runes at spaces (a longer word gets a line of its own).
func Wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
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
	if id := h.Identity(); h.NameMismatch != "" && id != nil {
		s += ", SMB name " + id.NetBIOSComputer
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
