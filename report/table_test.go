package report

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

var sgr = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestTableColor paints grades and statuses, and the colour codes do not disturb the alignment: without them the
// coloured table is the plain one.
func TestTableColor(t *testing.T) {
	plain := string(renderWith(t, "table", Options{All: true}))
	colour := string(renderWith(t, "table", Options{Color: true, All: true}))
	golden(t, "report.table.color.golden", []byte(colour))
	if got := sgr.ReplaceAllString(colour, ""); got != plain {
		t.Errorf("the coloured table without its colours differs from the plain one:\n%s", got)
	}
	for _, want := range []string{"\x1b[1;31mfail\x1b[0m", "\x1b[36mincomplete\x1b[0m", "\x1b[35munreachable\x1b[0m", "\x1b[1mADDRESS\x1b[0m"} {
		if !strings.Contains(colour, want) {
			t.Errorf("no %q in the coloured table", want)
		}
	}
	// The only escape sequences are ours: the hostile host's \x1b[31m arrives as text.
	if strings.Contains(plain, "\x1b") || strings.ContainsRune(sgr.ReplaceAllString(colour, ""), '\x1b') {
		t.Error("an escape character from the network reached the terminal")
	}
	if !strings.Contains(plain, `\x1b[31mred`) || !strings.Contains(plain, `\u202egnp.exe`) {
		t.Error("the hostile evidence is not shown escaped")
	}
}

// hostRows is a table's lines up to its summary line ("6 hosts; ..."), which ends them: what comes after is the
// causes.
func hostRows(t *testing.T, out []byte) []string {
	t.Helper()
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		if strings.Contains(l, " hosts; ofm-9.0: ") {
			return lines[:i+1]
		}
	}
	t.Fatalf("no summary line in\n%s", out)
	return nil
}

// TestTableWidth cuts the reasons column to the terminal's width, with an ellipsis, and never below its minimum.
func TestTableWidth(t *testing.T) {
	plain := hostRows(t, renderWith(t, "table", Options{All: true}))
	widest := 0
	for _, l := range plain {
		widest = max(widest, utf8.RuneCountInString(l))
	}
	reasonsAt := strings.Index(plain[0], "REASONS")
	for _, width := range []int{widest + 10, widest - 30, reasonsAt + 25} {
		out := hostRows(t, renderWith(t, "table", Options{Width: width, All: true}))
		if len(out) != len(plain) {
			t.Fatalf("width %d: %d lines, want %d", width, len(out), len(plain))
		}
		limit := max(width, reasonsAt+minReasonsWidth)
		for i, l := range out[:len(out)-1] {
			n := utf8.RuneCountInString(l)
			if n > limit {
				t.Errorf("width %d: line %d has %d columns: %q", width, i, n, l)
			}
			// Cut cells end in an ellipsis, and what is left of them is the start of the plain line's cell.
			for _, cut := range strings.Split(l, "…") {
				cut = strings.TrimSpace(cut)
				if f := strings.Fields(cut); len(f) > 0 && !strings.Contains(plain[i], f[len(f)-1]) {
					t.Errorf("width %d: line %d has %q, which the plain line does not:\n%q", width, i, f[len(f)-1], plain[i])
				}
			}
			if i > 0 && utf8.RuneCountInString(l) < n && !strings.Contains(l, "…") {
				t.Errorf("width %d: line %d was cut without an ellipsis: %q", width, i, l)
			}
		}
		// The summary line is never cut.
		if out[len(out)-1] != plain[len(plain)-1] {
			t.Errorf("width %d: summary line %q", width, out[len(out)-1])
		}
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"tcp 445: open":        "tcp 445: open",
		"a\nb\tc\r":            `a\nb\tc\r`,
		"\x1b[31mred\x1b[0m":   `\x1b[31mred\x1b[0m`,
		"\u202egnp.exe":        `\u202egnp.exe`,
		"bad \xff byte":        "bad \uFFFD byte",
		"\x00\x7f\u0085":       `\x00\x7f\x85`,
		"OFMLAB\\OFM90 <20> ü": "OFMLAB\\OFM90 <20> ü",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTableNarrowTerminal puts the reasons on a line of their own under each row when the columns before them leave
// too little room (an 80-column terminal), so that they stay readable; no line is wider than the terminal but the
// summary.
func TestTableNarrowTerminal(t *testing.T) {
	out := hostRows(t, renderWith(t, "table", Options{Width: 80, All: true}))
	if !strings.HasPrefix(out[1], reasonsIndent+"REASONS") {
		t.Fatalf("80 columns: the reasons header is not on its own line:\n%s", strings.Join(out, "\n"))
	}
	for i, l := range out[:len(out)-1] {
		if i%2 == 1 && !strings.HasPrefix(l, reasonsIndent) {
			t.Errorf("line %d should be a row's reasons, indented: %q", i, l)
		}
		if n := utf8.RuneCountInString(l); n > 80 && i%2 == 1 {
			t.Errorf("line %d has %d columns on an 80-column terminal: %q", i, n, l)
		}
	}
	if r := out[5]; !strings.Contains(r, "ipc-share (ipc: ") || utf8.RuneCountInString(r) < 60 {
		t.Errorf("198.18.0.11's reasons should fill the line: %q", r)
	}
}

// TestTableFoldsSilentAddresses folds the addresses where nothing answered into one line, with their ranges, unless
// --all asks for them; and lists the causes after the summary, the most hosts first, each with its fix.
func TestTableFoldsSilentAddresses(t *testing.T) {
	out := string(render(t, "table"))
	if strings.Contains(out, "\n198.18.0.17 ") {
		t.Errorf("the unreachable host has a row of its own:\n%s", out)
	}
	if !strings.Contains(out, "\n1 address did not answer (unreachable, folded; --all lists them): 198.18.0.17\n") {
		t.Errorf("no folded line for 198.18.0.17:\n%s", out)
	}
	var a addressRanges
	for _, s := range []string{"198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.9", "198.18.0.24", "198.18.0.25", "2001:db8::1", "2001:db8::2"} {
		a.add(s)
	}
	if got := a.line(0); got != "8 addresses did not answer (unreachable, folded; --all lists them): 198.18.0.1-3, 198.18.0.9, 198.18.0.24-25, 2001:db8::1-2001:db8::2" {
		t.Errorf("folded line %q", got)
	}
	causes := strings.SplitN(out, "\nCauses, most hosts first, probed from 198.18.0.2:\n", 2)
	if len(causes) != 2 {
		t.Fatalf("no causes after the summary:\n%s", out)
	}
	if !strings.HasPrefix(causes[1], "3 hosts, warn: udp 138 open|filtered: breaks ofm-9.0 netbios-datagram: 198.18.0.10 198.18.0.11 198.18.0.12\n    fix: A firewall drops, or the service does not answer, UDP 138 from 198.18.0.2.") ||
		!strings.Contains(causes[1], "-RemoteAddress 198.18.0.2 -Action Allow") {
		t.Errorf("first cause:\n%s", causes[1])
	}
	// Three causes, then a count of the rest; then the netstat of 198.18.0.12 explains its ports.
	block, netstatView, _ := strings.Cut(causes[1], "The hosts' own view (netstat -an on the host):\n")
	if !strings.HasPrefix(netstatView, "198.18.0.12 tcp 53: not listening on the host (closed from 198.18.0.2): start the service that owns it (DNS Server (DNS))") ||
		!strings.Contains(netstatView, "198.18.0.12 tcp 445: listening on the host (0.0.0.0:445, [::]:445) but filtered from 198.18.0.2: a firewall between") {
		t.Errorf("netstat block:\n%s", netstatView)
	}
	if lines := strings.Split(strings.TrimSpace(block), "\n"); !strings.HasPrefix(lines[len(lines)-1], "and 10 more causes (--all lists them") || strings.Count(block, "\n    fix: ") != 3 {
		t.Errorf("causes block:\n%s", causes[1])
	}
	// With --all: every cause; one that could not be checked says why, and the requirements of one cause are one line.
	all := string(renderWith(t, "table", Options{All: true}))
	if !strings.Contains(all, "\n2 hosts, not verified: not checked: the share check was not run: breaks ofm-9.0 ipc-share, ofm-9.0 ofmlog-share, ofm-9.0 ofmnt-log, ofm-9.0 ofmnt-adr, ofm-9.1 ofmlog-share, ofm-9.1 ofmnt-log, ofm-9.1 ofmnt-adr: 198.18.0.12 198.18.0.66\n") || strings.Contains(all, "more causes") {
		t.Errorf("no grouped unverified cause, or causes left out, with --all:\n%s", all)
	}
}
