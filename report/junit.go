package report

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// The JUnit report follows the common JUnit XML schema that CI servers read (Jenkins, GitLab, GitHub test reporters):
// one <testsuite> per profile, one <testcase> per host and requirement, named "ADDRESS REQUIREMENT" with the profile as
// classname. Outcomes map as follows:
//
//	pass          passing, with the evidence in <system-out>
//	warn, info    passing, with the evidence, why and fix in <system-out>: they never fail a host
//	fail          <failure>: the first evidence as message; every evidence line, the why and the fix as text
//	skipped       of a required requirement (the host is incomplete: not proven to work): <failure type="incomplete">
//	              with the reason, so that a CI dashboard never shows an unproven host green;
//	              otherwise (not requested, or recommended or advisory) <skipped message="the reason">
//	(internal)    <error> on every requirement of a host whose probes failed inside ofmprobe
//
// Texts are CDATA, with control characters from the network shown as escapes (\x1b).
type junitSuites struct {
	XMLName   xml.Name     `xml:"testsuites"`
	Name      string       `xml:"name,attr"`
	Tests     int          `xml:"tests,attr"`
	Failures  int          `xml:"failures,attr"`
	Errors    int          `xml:"errors,attr"`
	Skipped   int          `xml:"skipped,attr"`
	Time      string       `xml:"time,attr"`
	Timestamp string       `xml:"timestamp,attr"`
	Suites    []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Hostname   string          `xml:"hostname,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      junitCases      `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut *junitText    `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",cdata"`
}

type junitText struct {
	Text string `xml:",cdata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// junitTimestamp is the timestamp format JUnit uses: ISO 8601 without a zone, in UTC.
const junitTimestamp = "2006-01-02T15:04:05"

// writeJUnit writes the JUnit report in one pass over the hosts. A suite's counts come before its test cases in the
// document, so each suite's cases are encoded into a scratch file as the hosts go by, and spliced into the document
// once all are counted.
func writeJUnit(w io.Writer, doc streamDocument) error {
	// CI pages show these texts to people: control characters from the network become visible escapes, which also
	// keeps them out of the CDATA sections, where XML could not carry them.
	doc, err := printableStream(doc)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	run := doc.Run
	top := junitSuites{Name: "ofmprobe", Time: seconds(run.Duration()), Timestamp: run.Started.UTC().Format(junitTimestamp)}
	props := []junitProperty{
		{"ofmprobe.version", run.Version},
		{"report.schema", fmt.Sprint(doc.Schema)},
		{"run.started", run.Started.UTC().Format(timeLayout)},
		{"run.finished", formatTime(run.Finished)},
		{"run.interrupted", fmt.Sprint(run.Interrupted)},
		{"run.vantage", strings.Join(run.Vantage, " ")},
	}
	top.Suites = make([]junitSuite, len(run.Profiles))
	encoders := make([]*xml.Encoder, len(run.Profiles))
	suitesOf := map[string][]int{} // a profile's suites: one, unless the run lists the profile twice
	for i, profile := range run.Profiles {
		cases, err := newScratch()
		if err != nil {
			return err
		}
		defer cases.Close()
		// The cases sit two levels deep in the document.
		encoders[i] = xml.NewEncoder(cases)
		encoders[i].Indent("    ", "  ")
		top.Suites[i] = junitSuite{Name: profile, Time: top.Time, Timestamp: top.Timestamp, Hostname: strings.Join(run.Vantage, " "),
			Properties: props, Cases: junitCases{out: bw, cases: cases}}
		suitesOf[profile] = append(suitesOf[profile], i)
	}
	testcase := xml.StartElement{Name: xml.Name{Local: "testcase"}}
	for h := range doc.Hosts {
		for _, g := range h.Profiles {
			for _, i := range suitesOf[g.Profile] {
				s := &top.Suites[i]
				for _, r := range g.Results {
					c := junitTestCase(h, g, r, run)
					s.Tests++
					switch {
					case c.Failure != nil:
						s.Failures++
					case c.Error != nil:
						s.Errors++
					case c.Skipped != nil:
						s.Skipped++
					}
					if err := encoders[i].EncodeElement(c, testcase); err != nil {
						return err
					}
				}
			}
		}
	}
	for _, s := range top.Suites {
		top.Tests += s.Tests
		top.Failures += s.Failures
		top.Errors += s.Errors
		top.Skipped += s.Skipped
	}
	bw.WriteString(xml.Header)
	enc := xml.NewEncoder(bw)
	enc.Indent("", "  ")
	if err := enc.Encode(top); err != nil {
		return err
	}
	bw.WriteString("\n")
	return bw.Flush()
}

// junitCases is a suite's test cases, already encoded in a scratch file by an Encoder indented to their depth in the
// document. MarshalXML copies them into the document behind the document's Encoder, which is safe because they are
// whole elements at the Encoder's current depth: the Encoder goes on as if it had encoded them itself.
type junitCases struct {
	out   io.Writer // what the document's Encoder writes to
	cases *scratch
}

func (c junitCases) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	if c.cases.Len() == 0 {
		return nil
	}
	if err := e.Flush(); err != nil {
		return err
	}
	// An Encoder starts a new line before every element but its first.
	if _, err := io.WriteString(c.out, "\n"); err != nil {
		return err
	}
	_, err := c.cases.WriteTo(c.out)
	return err
}

// junitTestCase is one host's result for one requirement.
func junitTestCase(h HostRecord, g catalog.Grading, r catalog.Result, run Run) junitCase {
	c := junitCase{Name: h.Address + " " + r.Requirement, Classname: g.Profile}
	if h.Status == "internal" {
		c.Error = &junitProblem{Message: "internal error: " + h.Error, Type: "internal", Text: resultText(h, r, run)}
		return c
	}
	switch r.Outcome {
	case catalog.Fail:
		msg := r.Title
		if len(r.Evidence) > 0 {
			msg = r.Evidence[0]
		}
		c.Failure = &junitProblem{Message: msg, Type: string(r.Severity), Text: resultText(h, r, run)}
	case catalog.Skipped:
		if r.Severity == catalog.Required && !r.NotRequested {
			c.Failure = &junitProblem{Message: "not verified: " + r.Reason, Type: "incomplete", Text: resultText(h, r, run)}
			break
		}
		c.Skipped = &junitSkipped{Message: r.Reason}
	default:
		c.SystemOut = &junitText{resultText(h, r, run)}
	}
	return c
}

// resultText explains a result in a few lines: what was required, what was seen, why it matters, how to fix it.
func resultText(h HostRecord, r catalog.Result, run Run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s (%s): %s\n", h.Address, r.Requirement, r.Outcome, r.Severity, r.Title)
	if name := h.displayName(); name != "" {
		fmt.Fprintf(&b, "host: %s\n", name)
	}
	if id := h.Identity(); id != nil {
		fmt.Fprintf(&b, "smb identity: %s\n", id)
	}
	if h.NameMismatch != "" {
		fmt.Fprintf(&b, "names differ: %s\n", h.NameMismatch)
	}
	for _, e := range r.Evidence {
		fmt.Fprintf(&b, "evidence: %s\n", e)
	}
	if r.Reason != "" {
		fmt.Fprintf(&b, "skipped: %s\n", r.Reason)
	}
	if h.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", h.Error)
	}
	fmt.Fprintf(&b, "why: %s\n", r.Why)
	if r.Fix != "" {
		fmt.Fprintf(&b, "fix: %s\n", r.Fix)
		if a := catalog.Action(r.Cause, run.Vantage, run.PortTable); a != "" {
			fmt.Fprintf(&b, "action: %s\n", a)
		}
	}
	return b.String()
}

// timeLayout is how reports print times: RFC 3339 in UTC, with milliseconds when there are any.
const timeLayout = "2006-01-02T15:04:05.999Z07:00"

// formatTime prints a time in timeLayout, or "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}
