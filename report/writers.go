package report

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// Writer writes one report format. Begin is called once before any host, Host once per host as it finishes, End
// once after the last host (also when the scan was interrupted, with Run.Interrupted set). A writer is used once.
//
// The whole-document formats, the table among them, keep the hosts in a temporary file in os.TempDir() until End, which
// removes it; it takes about as much disk space as the JSON report. A caller that stops when Begin or Host fails need
// not call End: the writer has already let go of the file.
type Writer interface {
	Begin(Run) error
	Host(HostRecord) error
	End(Run, Summary) error
}

// Formats lists the report formats, and whether each streams hosts as they finish. The others write one sorted
// document at the end, and spool the hosts to a temporary file until then.
var Formats = map[string]bool{
	"table":  false,
	"json":   false,
	"ndjson": true,
	"csv":    false,
	"junit":  false,
	"html":   false,
	"prom":   false,
}

// Options tune how a report looks where a person reads it. The command line decides them from the terminal; the
// zero value is plain output.
type Options struct {
	// Color paints grades and outcomes with ANSI colours (table only).
	Color bool
	// Width is the terminal's width in columns; the table truncates its reasons column to fit. 0 means no limit.
	Width int
	// All lists every host in the table, also the addresses where nothing answered, which it otherwise folds into
	// one line.
	All bool
	// Notes are lines shown above the report's causes (HTML): what a sweep changed since the one before, say.
	Notes []string
}

// New returns the writer for a format, with plain output.
func New(format string, w io.Writer) (Writer, error) {
	return NewWithOptions(format, w, Options{})
}

// NewWithOptions returns the writer for a format.
func NewWithOptions(format string, w io.Writer, opts Options) (Writer, error) {
	switch format {
	case "table":
		return newTableWriter(w, opts), nil
	case "json":
		return &documentWriter{w: w, write: writeJSON}, nil
	case "ndjson":
		return &ndjsonWriter{w: bufio.NewWriter(w)}, nil
	case "csv":
		return &documentWriter{w: w, write: writeCSV}, nil
	case "junit":
		return &documentWriter{w: w, write: writeJUnit}, nil
	case "html":
		return &documentWriter{w: w, write: func(w io.Writer, doc streamDocument) error { return writeHTML(w, doc, opts) }}, nil
	case "prom":
		return &documentWriter{w: w, write: writeProm}, nil
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

// Document is the whole JSON report. It is also what ReadFile returns for a JSON or NDJSON report.
type Document struct {
	Schema  int          `json:"schema"`
	Run     Run          `json:"run"`
	Hosts   []HostRecord `json:"hosts"`
	Summary Summary      `json:"summary"`
}

// streamDocument is what a whole-document format writes: the Document, with the hosts read back from the spool on
// demand rather than held in memory.
type streamDocument struct {
	Schema  int
	Run     Run
	Summary Summary
	// Count is the number of hosts.
	Count int
	// Hosts yields the hosts in report order. Every range over it reads them anew from the spool, one at a time, so
	// a format may range over it more than once. It stops early on a read error, which End then returns.
	Hosts iter.Seq[HostRecord]
	// records yields each host's compact JSON in report order, each valid only until the next.
	records iter.Seq[[]byte]
}

// documentWriter writes one document at the end, with the hosts sorted by address. Until then it spools them to a
// temporary file, so its memory does not grow with the number of hosts beyond a small index entry per host.
//
// The spool is created by Begin (or the first Host) and removed by End, which the caller always calls unless Begin or
// Host failed; a failing Host removes it itself. On unix the file has no name from the start, so a writer that is
// dropped without End, or a process that dies, leaves nothing behind.
type documentWriter struct {
	w     io.Writer
	write func(io.Writer, streamDocument) error
	spool *spool
	// err is why the writer cannot go on: a failed Host, or End already called.
	err error
}

func (d *documentWriter) Begin(Run) error { return d.open() }

// open creates the spool, if there is none yet.
func (d *documentWriter) open() error {
	if d.err != nil || d.spool != nil {
		return d.err
	}
	s, err := newSpool()
	if err != nil {
		return err
	}
	d.spool = s
	return nil
}

func (d *documentWriter) Host(r HostRecord) error {
	if err := d.open(); err != nil {
		return err
	}
	if err := d.spool.add(r); err != nil {
		// The report cannot be complete, and a caller that sees a Host error does not call End: let go of the spool.
		d.spool.close()
		d.spool, d.err = nil, err
		return err
	}
	return nil
}

func (d *documentWriter) End(run Run, sum Summary) error {
	if d.err != nil {
		return d.err
	}
	s := d.spool
	d.spool, d.err = nil, errEnded
	s.sort()
	doc := streamDocument{Schema: SchemaVersion, Run: run.normalized(), Summary: sum.normalized().withActions(run), Count: s.len(),
		Hosts: s.hosts(textsOf(run.Catalog)), records: s.records()}
	err := d.write(d.w, doc)
	if rerr := s.readErr(); rerr != nil {
		// The hosts ended early for the format, which may have written a truncated document without noticing.
		err = rerr
	}
	cerr := s.close()
	return cmp.Or(err, cerr)
}

// writeJSON writes the document as json.Encoder with two-space indentation writes a Document, byte for byte, but one
// host at a time: the opening fields, each host's spooled JSON indented to its depth in the hosts array, the summary.
func writeJSON(w io.Writer, doc streamDocument) error {
	bw := bufio.NewWriter(w)
	field := func(name string, v any, next string) error {
		b, err := marshalIndent(v, "  ", "  ")
		if err != nil {
			return err
		}
		bw.WriteString(`  "` + name + `": `)
		bw.Write(b)
		bw.WriteString(next)
		return nil
	}
	bw.WriteString("{\n")
	if err := field("schema", doc.Schema, ",\n"); err != nil {
		return err
	}
	if err := field("run", doc.Run, ",\n"); err != nil {
		return err
	}
	bw.WriteString(`  "hosts": [`)
	var host bytes.Buffer
	n := 0
	for rec := range doc.records {
		host.Reset()
		if err := json.Indent(&host, rec, "    ", "  "); err != nil {
			return err
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n    ")
		host.WriteTo(bw)
		n++
	}
	if n > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteString("],\n")
	if err := field("summary", doc.Summary, "\n}\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// normalized returns the run with empty lists instead of nil ones, so they print as [] rather than null.
func (r Run) normalized() Run {
	r.Vantage = nonNil(r.Vantage)
	r.Profiles = nonNil(r.Profiles)
	r.Options.Ports = nonNil(r.Options.Ports)
	r.Options.UDPPorts = nonNil(r.Options.UDPPorts)
	r.Catalog = nonNil(r.Catalog)
	r.PortTable = nonNil(r.PortTable)
	return r
}

// normalized returns the summary with an empty grade map instead of nil.
func (s Summary) normalized() Summary {
	if s.Grades == nil {
		s.Grades = map[string]map[catalog.HostGrade]int{}
	}
	if s.causes != nil {
		s.Causes = s.causes.list()
	}
	s.Causes = nonNil(s.Causes)
	return s
}

// withActions gives each cause what to do on its hosts as observed from the run's vantage point (catalog.Action),
// from the run's port table.
func (s Summary) withActions(run Run) Summary {
	causes := make([]Cause, len(s.Causes))
	for i, c := range s.Causes {
		c.Action = catalog.Action(c.Cause, run.Vantage, run.PortTable)
		causes[i] = c
	}
	s.Causes = causes
	return s
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Duration is how long the run took; 0 when it has not finished.
func (r Run) Duration() time.Duration {
	if r.Finished.IsZero() || r.Finished.Before(r.Started) {
		return 0
	}
	return r.Finished.Sub(r.Started)
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

// The NDJSON line types.
const (
	lineRun     = "run"
	lineHost    = "host"
	lineSummary = "summary"
)

type ndjsonWriter struct {
	w   *bufio.Writer
	enc *json.Encoder // on w: it writes a line (and its newline) only once the whole line is encoded
}

func (n *ndjsonWriter) line(l ndjsonLine) error {
	l.Schema = SchemaVersion
	if n.enc == nil {
		n.enc = newJSONEncoder(n.w)
	}
	if err := n.enc.Encode(l); err != nil {
		return err
	}
	// Flush per line: a host is on disk as soon as it is known.
	return n.w.Flush()
}

func (n *ndjsonWriter) Begin(run Run) error {
	run = run.normalized()
	return n.line(ndjsonLine{Type: lineRun, Run: &run})
}

func (n *ndjsonWriter) Host(r HostRecord) error { return n.line(ndjsonLine{Type: lineHost, Host: &r}) }

func (n *ndjsonWriter) End(run Run, sum Summary) error {
	run, sum = run.normalized(), sum.normalized().withActions(run)
	return n.line(ndjsonLine{Type: lineSummary, Run: &run, Summary: &sum})
}

// gradeOrder lists the host grades from best to worst.
var gradeOrder = []catalog.HostGrade{catalog.GradePass, catalog.GradeWarn, catalog.GradeIncomplete, catalog.GradeFail, catalog.GradeUnreachable}

// gradeRank is a grade's place in gradeOrder; -1 for no grade.
func gradeRank(g catalog.HostGrade) int { return slices.Index(gradeOrder, g) }

// outcomeOrder lists the requirement outcomes from best to worst.
var outcomeOrder = []catalog.Outcome{catalog.Pass, catalog.Info, catalog.Warn, catalog.Skipped, catalog.Fail}

// displayName is the name a person knows the host by: the one it was given as, else its NetBIOS computer name.
func (r HostRecord) displayName() string {
	if r.Name != "" {
		return r.Name
	}
	if r.NetBIOS != nil && r.NetBIOS.ComputerName != "" {
		return r.NetBIOS.ComputerName
	}
	if id := r.Identity(); id != nil {
		return id.NetBIOSComputer
	}
	return ""
}

// seconds formats a duration in seconds for XML attributes and metrics: "3.2", "0.002".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.3f", d.Seconds())
}

// marshalIndent encodes v as json.MarshalIndent does, except that <, > and & are written as themselves: the reports
// carry NetBIOS names such as FILESRV<20>, which a person greps for as written, and nothing reads them as HTML. The
// HTML report escapes for itself.
func marshalIndent(v any, prefix, indent string) ([]byte, error) {
	var b bytes.Buffer
	enc := newJSONEncoder(&b)
	enc.SetIndent(prefix, indent)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// newJSONEncoder is a json.Encoder that leaves <, > and & as they are (see marshalIndent).
func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}
