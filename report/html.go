package report

import (
	"bufio"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"iter"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// The HTML report is one self-contained file: the style sheet and script are inline and nothing is loaded from
// anywhere. A Content-Security-Policy allows only that style sheet and script, by their hashes, so even a string from
// the network that escaped escaping could not run. html/template escapes every value; the script reads the page
// through the DOM and never writes markup.

//go:embed html/report.tmpl html/report.css html/report.js
var htmlFiles embed.FS

var (
	htmlTemplate = template.Must(template.New("report.tmpl").Funcs(template.FuncMap{
		"join":  strings.Join,
		"minus": func(a, b int) int { return a - b },
	}).ParseFS(htmlFiles, "html/report.tmpl"))
	// The style sheet and script are wrapped in commented-out CDATA markers, so the page also parses as XML (the
	// tests parse it with encoding/xml).
	htmlStyle  = "/*<![CDATA[*/\n" + mustRead("html/report.css") + "/*]]>*/"
	htmlScript = "//<![CDATA[\n" + mustRead("html/report.js") + "//]]>"
	htmlCSP    = fmt.Sprintf("default-src 'none'; style-src '%s'; script-src '%s'; img-src data:; base-uri 'none'; form-action 'none'",
		cspHash(htmlStyle), cspHash(htmlScript))
)

func mustRead(name string) string {
	b, err := htmlFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// cspHash is a Content-Security-Policy source that allows exactly one inline element's text.
func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// htmlPage is what the template renders.
type htmlPage struct {
	Doc      streamDocument
	Notes    []string
	CSP      string
	Style    template.CSS
	Script   template.JS
	Started  string
	Finished string
	Duration string
	Options  []htmlOption
	Charts   []htmlChart
	Grades   []catalog.HostGrade
	Legend   []htmlLegend
	// Hosts yields each host's row as the template ranges over it, reading the host from the spool, so the page never
	// holds more than one host; HostCount is their number.
	Hosts     iter.Seq[htmlHost]
	HostCount int
	// Columns is the number of columns of the hosts table.
	Columns int
	// Grouped says the report has more than HostLimit hosts and lists Groups instead of each host.
	Grouped   bool
	HostLimit int
	Groups    []htmlGroup
	// ChartWidth and ChartHeight are the SVG chart's size: a bar per profile and the legend.
	ChartWidth, ChartHeight int
	// BarX and BarWidth place the bars' track; LabelX is where the profile names end.
	BarX, BarWidth, LabelX int
}

type htmlOption struct{ Name, Value string }

// htmlHostLimit is the most hosts the HTML report shows one by one, each with its details; a larger report groups
// the hosts that share their grades and causes into one row (--all lists them one by one anyway). A /16 written host
// by host is over a gigabyte, which no browser opens.
const htmlHostLimit = 2000

// maxHTMLGroups bounds the groups; hosts past it share one last row.
const maxHTMLGroups = 1000

// htmlGroup is one row of a grouped report: the hosts with the same grades and causes.
type htmlGroup struct {
	Count     int
	Grades    []catalog.HostGrade
	Status    string
	Causes    []string
	Addresses string
	ranges    addressRanges
}

// groupHosts groups the hosts, in report order, by status, grades and causes, the most hosts first.
func groupHosts(hosts iter.Seq[HostRecord], profiles []string) []htmlGroup {
	var groups []*htmlGroup
	at := map[string]*htmlGroup{}
	for h := range hosts {
		grades := make([]catalog.HostGrade, len(profiles))
		for i, p := range profiles {
			grades[i] = h.Grade(p)
		}
		var causes []string
		for _, g := range h.Profiles {
			for _, r := range g.Results {
				if r.Cause != "" && !slices.Contains(causes, r.Cause) {
					causes = append(causes, r.Cause)
				}
			}
		}
		slices.Sort(causes)
		key := fmt.Sprint(h.Status, grades, causes)
		g := at[key]
		if g == nil {
			if len(groups) == maxHTMLGroups {
				key = "other"
				if g = at[key]; g == nil {
					g = &htmlGroup{Status: "various", Causes: []string{"(more kinds of host than one page lists: see the JSON report)"}}
					groups = append(groups, g)
					at[key] = g
				}
			} else {
				g = &htmlGroup{Grades: grades, Status: h.Status, Causes: causes}
				groups = append(groups, g)
				at[key] = g
			}
		}
		g.Count++
		g.ranges.add(h.Address)
	}
	out := make([]htmlGroup, len(groups))
	for i, g := range groups {
		g.Addresses = g.ranges.list(maxFoldedRanges * 4)
		out[i] = *g
	}
	slices.SortStableFunc(out, func(a, b htmlGroup) int { return b.Count - a.Count })
	return out
}

// htmlChart is one profile's bar: its hosts per grade, as segments of the bar.
type htmlChart struct {
	Profile  string
	Y, TextY int
	Total    int
	Segments []htmlSegment
}

type htmlSegment struct {
	Grade catalog.HostGrade
	Count int
	// X and W place the segment; CountX is where its count ends.
	X, W, CountX float64
	// Filter is the view that lists the segment's hosts; Title says what the segment is.
	Filter, Title string
	// ShowCount is set when the segment is wide enough for its count.
	ShowCount bool
}

// htmlLegend is one grade's entry in the chart's legend.
type htmlLegend struct {
	Grade              catalog.HostGrade
	X, Y, TextX, TextY int
}

type htmlHost struct {
	HostRecord
	DisplayName string
	SortAddress string
	NetBIOSText string
	TCP, UDP    string
	Reasons     string
	Grades      []htmlGrade
	// Filters lists every "profile:grade" the host has, for the grade filter.
	Filters string
	// Counts says how many requirements had each outcome, for the details' summary line.
	Counts string
}

type htmlGrade struct {
	Profile string
	Grade   catalog.HostGrade
	Rank    int
}

// Chart geometry, in SVG user units.
const (
	chartLabelWidth = 110
	chartBarWidth   = 480
	chartRow        = 34
)

func writeHTML(w io.Writer, doc streamDocument, opts Options) error {
	doc, err := printableStream(doc)
	if err != nil {
		return err
	}
	run := doc.Run
	page := htmlPage{
		Doc: doc, CSP: htmlCSP, Style: template.CSS(htmlStyle), Script: template.JS(htmlScript),
		Started: formatTime(run.Started), Finished: formatTime(run.Finished), Duration: run.Duration().Round(time.Millisecond).String(),
		Grades: gradeOrder, HostCount: doc.Count, Notes: opts.Notes,
	}
	o := run.Options
	page.Options = []htmlOption{
		{"TCP ports", joinInts(o.Ports)}, {"UDP ports", joinInts(o.UDPPorts)},
		{"TCP timeout", fmt.Sprintf("%g ms × %d tries", o.TimeoutMS, o.Retries+1)},
		{"UDP timeout", fmt.Sprintf("%g ms × %d tries", o.UDPTimeoutMS, o.UDPRetries+1)},
		{"concurrency", fmt.Sprintf("%d sockets, %d per host", o.Concurrency, o.PerHost)},
	}
	if o.OFMPort != 0 {
		page.Options = append(page.Options, htmlOption{"OFM port", fmt.Sprint(o.OFMPort)})
	}
	for i, p := range run.Profiles {
		c := htmlChart{Profile: p, Y: i * chartRow, TextY: i*chartRow + 17}
		for _, g := range gradeOrder {
			c.Total += doc.Summary.Grades[p][g]
		}
		x := float64(chartLabelWidth)
		for _, g := range gradeOrder {
			n := doc.Summary.Grades[p][g]
			if n == 0 || c.Total == 0 {
				continue
			}
			width := float64(chartBarWidth) * float64(n) / float64(c.Total)
			c.Segments = append(c.Segments, htmlSegment{Grade: g, Count: n, X: x, W: width, CountX: x + width - 5, Filter: p + ":" + string(g),
				Title:     fmt.Sprintf("%s: %d %s %s", p, n, pluralWord(n, "host"), g),
				ShowCount: width >= 8*float64(len(fmt.Sprint(n)))+6})
			x += width
		}
		page.Charts = append(page.Charts, c)
	}
	legendY := len(run.Profiles)*chartRow + 6
	for i, g := range gradeOrder {
		x := chartLabelWidth + i*96
		page.Legend = append(page.Legend, htmlLegend{Grade: g, X: x, Y: legendY, TextX: x + 17, TextY: legendY + 11})
	}
	page.ChartHeight = legendY + 18
	page.ChartWidth = chartLabelWidth + chartBarWidth + 10
	page.BarX, page.BarWidth, page.LabelX = chartLabelWidth, chartBarWidth, chartLabelWidth-8
	page.Columns = 6 + len(run.Profiles)
	if doc.Count > htmlHostLimit && !opts.All {
		// A host per row (and its details) is more than a browser opens quickly: group them.
		page.Grouped, page.HostLimit = true, htmlHostLimit
		page.Groups = groupHosts(doc.Hosts, run.Profiles)
	}
	page.Hosts = func(yield func(htmlHost) bool) {
		for h := range doc.Hosts {
			if !yield(newHTMLHost(h, run.Profiles)) {
				return
			}
		}
	}
	bw := bufio.NewWriter(w)
	if err := htmlTemplate.Execute(bw, page); err != nil {
		return err
	}
	return bw.Flush()
}

// newHTMLHost is a host's row and details.
func newHTMLHost(h HostRecord, profiles []string) htmlHost {
	hh := htmlHost{HostRecord: h, DisplayName: h.displayName(), SortAddress: sortableAddress(h.Address),
		NetBIOSText: netbiosSummary(h), TCP: portSummary(h.Ports, "tcp"), UDP: portSummary(h.Ports, "udp"), Reasons: reasons(h)}
	var filters []string
	counts := map[catalog.Outcome]int{}
	for _, p := range profiles {
		g := h.Grade(p)
		hh.Grades = append(hh.Grades, htmlGrade{Profile: p, Grade: g, Rank: gradeRank(g)})
		if g != "" {
			filters = append(filters, p+":"+string(g))
		}
	}
	for _, g := range h.Profiles {
		for _, r := range g.Results {
			counts[r.Outcome]++
		}
	}
	var parts []string
	for _, o := range outcomeOrder {
		if counts[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[o], o))
		}
	}
	hh.Filters = strings.Join(filters, " ")
	hh.Counts = strings.Join(parts, ", ")
	return hh
}

// sortableAddress is a key that sorts addresses in numeric order as plain strings: IPv4 before IPv6, then anything
// that is not an address.
func sortableAddress(s string) string {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return "9 " + s
	case a.Is4():
		b := a.As4()
		return fmt.Sprintf("4 %03d.%03d.%03d.%03d", b[0], b[1], b[2], b[3])
	default:
		return fmt.Sprintf("6 %x", a.As16())
	}
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
