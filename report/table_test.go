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
	plain := string(render(t, "table"))
	colour := string(renderWith(t, "table", Options{Color: true}))
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

// TestTableWidth cuts the reasons column to the terminal's width, with an ellipsis, and never below its minimum.
func TestTableWidth(t *testing.T) {
	plain := strings.Split(strings.TrimSpace(string(render(t, "table"))), "\n")
	widest := 0
	for _, l := range plain {
		widest = max(widest, utf8.RuneCountInString(l))
	}
	reasonsAt := strings.Index(plain[0], "REASONS")
	for _, width := range []int{widest + 10, widest - 30, reasonsAt + 25, 80} {
		out := strings.Split(strings.TrimSpace(string(renderWith(t, "table", Options{Width: width}))), "\n")
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
