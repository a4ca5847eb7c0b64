package report

import (
	"cmp"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// ChangeKind says what changed between two reports.
type ChangeKind string

// The kinds of change, in the order a comparison lists them for a host. Regressed, missing (a host or a profile the
// old report graded is absent from the new one) count as regressions; the others are reported only.
const (
	ChangeMissing   ChangeKind = "missing"
	ChangeRegressed ChangeKind = "regressed"
	ChangeFixed     ChangeKind = "fixed"
	ChangeAdded     ChangeKind = "added"
	ChangePort      ChangeKind = "port"
	ChangeNetBIOS   ChangeKind = "netbios"
)

var changeOrder = []ChangeKind{ChangeMissing, ChangeRegressed, ChangeFixed, ChangeAdded, ChangePort, ChangeNetBIOS}

// Change is one difference between two reports for one host.
type Change struct {
	Kind    ChangeKind `json:"kind"`
	Address string     `json:"address"`
	Name    string     `json:"name,omitempty"`
	// Profile is set for grade changes, and for a profile graded in one report only.
	Profile string `json:"profile,omitempty"`
	// Protocol and Port are set for port changes.
	Protocol string `json:"protocol,omitempty"`
	Port     int    `json:"port,omitempty"`
	// Step is set for NetBIOS changes: "nbstat" (node status on UDP 137) or "nbss" (session on TCP 139).
	Step string `json:"step,omitempty"`
	// Old and New are the grades or states on each side; "" where that side has none (not probed, not graded, or
	// the host is absent).
	Old string `json:"old"`
	New string `json:"new"`
	// Requirements are the requirement outcomes behind a grade change.
	Requirements []RequirementChange `json:"requirements,omitempty"`
	// Regression says whether the change counts as a regression.
	Regression bool `json:"regression"`
}

// RequirementChange is one requirement whose outcome changed.
type RequirementChange struct {
	Requirement string          `json:"requirement"`
	Old         catalog.Outcome `json:"old"`
	New         catalog.Outcome `json:"new"`
	// Evidence is the new report's first evidence for the requirement.
	Evidence string `json:"evidence,omitempty"`
}

// ReportInfo identifies one side of a comparison.
type ReportInfo struct {
	Source      string    `json:"source"`
	Version     string    `json:"version"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished,omitzero"`
	Vantage     []string  `json:"vantage"`
	Profiles    []string  `json:"profiles"`
	Hosts       int       `json:"hosts"`
	Interrupted bool      `json:"interrupted"`
}

// Comparison is what changed from an old report to a new one: grades per host and profile, port states per host,
// protocol and port, NetBIOS states, and hosts present on one side only.
type Comparison struct {
	Schema    int        `json:"schema"`
	Old       ReportInfo `json:"old"`
	New       ReportInfo `json:"new"`
	Regressed bool       `json:"regressed"`
	// Counts is the number of changes of each kind.
	Counts  map[ChangeKind]int `json:"counts"`
	Changes []Change           `json:"changes"`
}

func reportInfo(source string, d Document) ReportInfo {
	return ReportInfo{Source: source, Version: d.Run.Version, Started: d.Run.Started, Finished: d.Run.Finished,
		Vantage: nonNil(d.Run.Vantage), Profiles: nonNil(d.Run.Profiles), Hosts: len(d.Hosts), Interrupted: d.Run.Interrupted}
}

// Compare compares two reports, host by host (by address). A grade that got worse is a regression, as is a host or a
// profile's grading that the old report had and the new one lacks: the new report no longer proves what the old one
// did. Port and NetBIOS state changes are listed, and weigh only through the grades they change.
func Compare(oldName string, oldDoc Document, newName string, newDoc Document) Comparison {
	c := Comparison{Schema: SchemaVersion, Old: reportInfo(oldName, oldDoc), New: reportInfo(newName, newDoc),
		Counts: map[ChangeKind]int{}, Changes: []Change{}}
	oldHosts, newHosts := byAddress(oldDoc.Hosts), byAddress(newDoc.Hosts)
	for addr, o := range oldHosts {
		n, ok := newHosts[addr]
		if !ok {
			c.add(Change{Kind: ChangeMissing, Address: addr, Name: o.displayName(), Old: gradesText(o), Regression: true})
			continue
		}
		c.compareHost(o, n)
	}
	for addr, n := range newHosts {
		if _, ok := oldHosts[addr]; !ok {
			c.add(Change{Kind: ChangeAdded, Address: addr, Name: n.displayName(), New: gradesText(n)})
		}
	}
	slices.SortFunc(c.Changes, func(a, b Change) int {
		return cmp.Or(compareAddresses(a.Address, b.Address),
			cmp.Compare(slices.Index(changeOrder, a.Kind), slices.Index(changeOrder, b.Kind)),
			cmp.Compare(a.Profile, b.Profile), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port),
			cmp.Compare(a.Step, b.Step))
	})
	return c
}

func (c *Comparison) add(ch Change) {
	c.Changes = append(c.Changes, ch)
	c.Counts[ch.Kind]++
	if ch.Regression {
		c.Regressed = true
	}
}

func (c *Comparison) compareHost(o, n HostRecord) {
	name := n.displayName()
	oldGradings, newGradings := map[string]catalog.Grading{}, map[string]catalog.Grading{}
	for _, g := range o.Profiles {
		oldGradings[g.Profile] = g
	}
	for _, g := range n.Profiles {
		newGradings[g.Profile] = g
	}
	for p, og := range oldGradings {
		ng, ok := newGradings[p]
		switch {
		case !ok:
			c.add(Change{Kind: ChangeMissing, Address: n.Address, Name: name, Profile: p, Old: string(og.Grade), Regression: true})
		case gradeRank(ng.Grade) > gradeRank(og.Grade):
			c.add(Change{Kind: ChangeRegressed, Address: n.Address, Name: name, Profile: p, Old: string(og.Grade), New: string(ng.Grade),
				Requirements: requirementChanges(og, ng), Regression: true})
		case gradeRank(ng.Grade) < gradeRank(og.Grade):
			c.add(Change{Kind: ChangeFixed, Address: n.Address, Name: name, Profile: p, Old: string(og.Grade), New: string(ng.Grade),
				Requirements: requirementChanges(og, ng)})
		}
	}
	for p, ng := range newGradings {
		if _, ok := oldGradings[p]; !ok {
			c.add(Change{Kind: ChangeAdded, Address: n.Address, Name: name, Profile: p, New: string(ng.Grade)})
		}
	}
	type portKey struct {
		proto string
		port  int
	}
	oldPorts, newPorts := map[portKey]string{}, map[portKey]string{}
	for _, p := range o.Ports {
		oldPorts[portKey{p.Protocol, p.Port}] = p.State
	}
	for _, p := range n.Ports {
		newPorts[portKey{p.Protocol, p.Port}] = p.State
	}
	for k, os := range oldPorts {
		if ns := newPorts[k]; ns != os {
			c.add(Change{Kind: ChangePort, Address: n.Address, Name: name, Protocol: k.proto, Port: k.port, Old: os, New: ns})
		}
	}
	for k, ns := range newPorts {
		if _, ok := oldPorts[k]; !ok {
			c.add(Change{Kind: ChangePort, Address: n.Address, Name: name, Protocol: k.proto, Port: k.port, New: ns})
		}
	}
	nbState := func(r *NetBIOSRecord) string {
		if r == nil {
			return ""
		}
		return r.State
	}
	ssState := func(r *SessionRecord) string {
		if r == nil {
			return ""
		}
		return r.State
	}
	if os, ns := nbState(o.NetBIOS), nbState(n.NetBIOS); os != ns {
		c.add(Change{Kind: ChangeNetBIOS, Address: n.Address, Name: name, Step: "nbstat", Old: os, New: ns})
	}
	if os, ns := ssState(o.Session), ssState(n.Session); os != ns {
		c.add(Change{Kind: ChangeNetBIOS, Address: n.Address, Name: name, Step: "nbss", Old: os, New: ns})
	}
}

// requirementChanges lists the requirements of one profile whose outcome differs between two gradings.
func requirementChanges(o, n catalog.Grading) []RequirementChange {
	old := map[string]catalog.Outcome{}
	for _, r := range o.Results {
		old[r.Requirement] = r.Outcome
	}
	var out []RequirementChange
	for _, r := range n.Results {
		if old[r.Requirement] != r.Outcome {
			rc := RequirementChange{Requirement: r.Requirement, Old: old[r.Requirement], New: r.Outcome}
			if len(r.Evidence) > 0 {
				rc.Evidence = r.Evidence[0]
			}
			out = append(out, rc)
		}
	}
	return out
}

func byAddress(hosts []HostRecord) map[string]HostRecord {
	m := make(map[string]HostRecord, len(hosts))
	for _, h := range hosts {
		m[h.Address] = h
	}
	return m
}

// compareAddresses orders addresses numerically, and anything else after them as text.
func compareAddresses(a, b string) int {
	pa, errA := netip.ParseAddr(a)
	pb, errB := netip.ParseAddr(b)
	switch {
	case errA == nil && errB == nil:
		return pa.Compare(pb)
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return cmp.Compare(a, b)
}

// gradesText lists a host's grades: "ofm-9.0 fail, ofm-9.1 pass".
func gradesText(h HostRecord) string {
	parts := make([]string, len(h.Profiles))
	for i, g := range h.Profiles {
		parts[i] = g.Profile + " " + string(g.Grade)
	}
	return strings.Join(parts, ", ")
}

// WriteJSON writes the comparison as one indented JSON document.
func (c Comparison) WriteJSON(w io.Writer) error {
	enc := newJSONEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

// WriteTable writes the comparison for people: what was compared, one row per change, and a summary line.
func (c Comparison) WriteTable(w io.Writer) error {
	var b strings.Builder
	describe := func(r ReportInfo) string {
		s := fmt.Sprintf("%s (%s, %d %s", printable(r.Source), formatTime(r.Started), r.Hosts, pluralWord(r.Hosts, "host"))
		if r.Interrupted {
			s += ", interrupted"
		}
		return s + ")"
	}
	fmt.Fprintf(&b, "old: %s\nnew: %s\n", describe(c.Old), describe(c.New))
	if len(c.Changes) > 0 {
		// An empty last cell still gets its column's padding: trimmed below.
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CHANGE\tADDRESS\tNAME\tWHAT\tOLD\tNEW\tDETAIL")
		for _, ch := range c.Changes {
			oldCell, newCell := ch.Old, ch.New
			if ch.Profile == "" && (ch.Kind == ChangeMissing || ch.Kind == ChangeAdded) {
				// A whole host: its grades go to the detail.
				oldCell, newCell = "", ""
				if ch.Kind == ChangeMissing {
					oldCell = "scanned"
				} else {
					newCell = "scanned"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ch.Kind, printable(ch.Address), dash(printable(ch.Name)),
				changeWhat(ch), dash(printable(oldCell)), dash(printable(newCell)), printable(changeDetail(ch)))
		}
		tw.Flush()
	}
	b.WriteString(c.summary())
	b.WriteByte('\n')
	lines := strings.SplitAfter(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \n")
		if strings.HasSuffix(l, "\n") {
			lines[i] += "\n"
		}
	}
	_, err := io.WriteString(w, strings.Join(lines, ""))
	return err
}

func changeWhat(ch Change) string {
	switch {
	case ch.Profile != "":
		return ch.Profile
	case ch.Protocol != "":
		return fmt.Sprintf("%s %d", ch.Protocol, ch.Port)
	case ch.Step == "nbstat":
		return "node status"
	case ch.Step == "nbss":
		return "session"
	}
	return "host"
}

func changeDetail(ch Change) string {
	switch ch.Kind {
	case ChangeMissing:
		if ch.Profile != "" {
			return "not graded in the new report"
		}
		return "not in the new report; was " + ch.Old
	case ChangeAdded:
		if ch.Profile != "" {
			return "not graded in the old report"
		}
		return "not in the old report; now " + ch.New
	}
	var parts []string
	for _, r := range ch.Requirements {
		s := fmt.Sprintf("%s %s → %s", r.Requirement, dash(string(r.Old)), r.New)
		if r.Evidence != "" && (r.New == catalog.Fail || r.New == catalog.Warn) {
			s += " (" + r.Evidence + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// summary is the comparison's last line.
func (c Comparison) summary() string {
	if len(c.Changes) == 0 {
		return fmt.Sprintf("no changes: %d %s compared", c.New.Hosts, pluralWord(c.New.Hosts, "host"))
	}
	var parts []string
	for _, k := range changeOrder {
		if n := c.Counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	verdict := "no regressions"
	if c.Regressed {
		verdict = "REGRESSED"
	}
	return verdict + ": " + strings.Join(parts, ", ")
}
