package report

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"io"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ofmprobe/ofmprobe/catalog"
	smbwire "github.com/ofmprobe/ofmprobe/probe/smb"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
)

// fixtureRequirements counts the fixture's requirement results per profile: every host is graded against both.
func fixtureRequirements(t *testing.T) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, p := range catalog.Builtin().Profiles {
		n[p.ID] = len(p.Requirements) * len(fixtureOrder)
	}
	return n
}

func TestCSVGolden(t *testing.T) {
	out := render(t, "csv")
	golden(t, "report.csv.golden", out)
	if !bytes.HasSuffix(out, []byte("\r\n")) {
		t.Error("CSV lines must end in CRLF (RFC 4180)")
	}
	r := csv.NewReader(bytes.NewReader(out))
	r.FieldsPerRecord = len(CSVHeader)
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("the CSV report does not parse back: %v", err)
	}
	if !slices.Equal(rows[0], CSVHeader) {
		t.Fatalf("header %q, want %q", rows[0], CSVHeader)
	}
	col := map[string]int{}
	for i, c := range CSVHeader {
		col[c] = i
	}
	want := 0
	for _, n := range fixtureRequirements(t) {
		want += n
	}
	if len(rows)-1 != want {
		t.Fatalf("%d rows, want %d (one per host, profile and requirement)", len(rows)-1, want)
	}
	var order []string
	for _, row := range rows[1:] {
		if len(order) == 0 || order[len(order)-1] != row[col["address"]] {
			order = append(order, row[col["address"]])
		}
	}
	if !slices.Equal(order, fixtureOrder) {
		t.Errorf("host order %q, want %q", order, fixtureOrder)
	}
	found := map[string]bool{}
	for _, row := range rows[1:] {
		key := row[col["address"]] + " " + row[col["profile"]] + " " + row[col["requirement"]]
		found[key] = true
		switch key {
		case "198.18.0.12 ofm-9.1 smb-direct":
			if row[col["grade"]] != "fail" || row[col["outcome"]] != "fail" || row[col["severity"]] != "required" ||
				row[col["evidence"]] != "tcp 445: filtered, no answer to 2 attempts of 1.5s" || row[col["fix"]] == "" || row[col["why"]] == "" {
				t.Errorf("198.18.0.12 smb-direct row: %q", row)
			}
		case "198.18.0.66 ofm-9.0 netbios-session":
			// The evidence comes back byte for byte: quotes, line break, escape character and all.
			if row[col["evidence"]] != hostileEvidence {
				t.Errorf("hostile evidence came back as %q", row[col["evidence"]])
			}
			if row[col["netbios_name"]] != hostileName {
				t.Errorf("hostile name came back as %q", row[col["netbios_name"]])
			}
		case "198.18.0.99 ofm-9.0 smb-transport":
			if row[col["status"]] != "internal" || row[col["error"]] != "panic: injected fault" {
				t.Errorf("internal host row: %q", row)
			}
		}
	}
	if !found["198.18.0.12 ofm-9.1 smb-direct"] || !found["198.18.0.66 ofm-9.0 netbios-session"] {
		t.Error("rows missing")
	}
}

func TestCSVDefusesFormulas(t *testing.T) {
	row := csvRow([]string{"=HYPERLINK(1)", "+1", "-1", "@SUM(A1)", "\tx", "tcp 445: open", ""})
	want := []string{"'=HYPERLINK(1)", "'+1", "'-1", "'@SUM(A1)", "'\tx", "tcp 445: open", ""}
	if !slices.Equal(row, want) {
		t.Errorf("csvRow = %q, want %q", row, want)
	}
}

// junitReport mirrors the common JUnit XML schema, as CI servers read it, independently of the writer's types.
type junitReport struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Time     float64  `xml:"time,attr"`
	Suites   []struct {
		Name       string  `xml:"name,attr"`
		Tests      int     `xml:"tests,attr"`
		Failures   int     `xml:"failures,attr"`
		Errors     int     `xml:"errors,attr"`
		Skipped    int     `xml:"skipped,attr"`
		Time       float64 `xml:"time,attr"`
		Timestamp  string  `xml:"timestamp,attr"`
		Properties []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Cases []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
			} `xml:"error"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestJUnitGolden(t *testing.T) {
	out := render(t, "junit")
	golden(t, "report.junit.golden", out)
	var rep junitReport
	if err := xml.Unmarshal(out, &rep); err != nil {
		t.Fatalf("the JUnit report does not parse back: %v", err)
	}
	if len(rep.Suites) != 2 || rep.Suites[0].Name != "ofm-9.0" || rep.Suites[1].Name != "ofm-9.1" {
		t.Fatalf("want a testsuite per profile, got %d", len(rep.Suites))
	}
	wantCases := fixtureRequirements(t)
	var tests, failures, errors, skipped int
	for _, s := range rep.Suites {
		var f, e, sk int
		for _, c := range s.Cases {
			if c.Classname != s.Name {
				t.Errorf("%s: classname %q, want the profile", c.Name, c.Classname)
			}
			problems := 0
			if c.Failure != nil {
				f++
				problems++
				seen := "evidence: "
				if c.Failure.Type == "incomplete" {
					seen = "skipped: " // not verified: the reason takes the place of evidence
				}
				if c.Failure.Message == "" || !strings.Contains(c.Failure.Text, "why: ") || !strings.Contains(c.Failure.Text, seen) {
					t.Errorf("%s %s: failure without message, evidence or why: %+v", s.Name, c.Name, c.Failure)
				}
			}
			if c.Error != nil {
				e++
				problems++
			}
			if c.Skipped != nil {
				sk++
				problems++
				if c.Skipped.Message == "" {
					t.Errorf("%s %s: skipped without a reason", s.Name, c.Name)
				}
			}
			if problems > 1 {
				t.Errorf("%s %s: more than one of failure, error, skipped", s.Name, c.Name)
			}
		}
		if s.Tests != len(s.Cases) || s.Failures != f || s.Errors != e || s.Skipped != sk {
			t.Errorf("suite %s counts tests %d failures %d errors %d skipped %d; its testcases say %d, %d, %d, %d",
				s.Name, s.Tests, s.Failures, s.Errors, s.Skipped, len(s.Cases), f, e, sk)
		}
		if s.Tests != wantCases[s.Name] {
			t.Errorf("suite %s has %d tests, want %d (hosts × requirements)", s.Name, s.Tests, wantCases[s.Name])
		}
		if s.Time != 3.2 || s.Timestamp != "2026-11-25T12:00:00" {
			t.Errorf("suite %s time %v timestamp %q", s.Name, s.Time, s.Timestamp)
		}
		tests, failures, errors, skipped = tests+s.Tests, failures+f, errors+e, skipped+sk
	}
	if rep.Tests != tests || rep.Failures != failures || rep.Errors != errors || rep.Skipped != skipped {
		t.Errorf("testsuites counts %d/%d/%d/%d, suites add up to %d/%d/%d/%d", rep.Tests, rep.Failures, rep.Errors, rep.Skipped, tests, failures, errors, skipped)
	}
	cases := map[string]string{}
	for _, s := range rep.Suites {
		for _, c := range s.Cases {
			switch {
			case c.Failure != nil:
				cases[s.Name+" "+c.Name] = "failure: " + c.Failure.Message
			case c.Error != nil:
				cases[s.Name+" "+c.Name] = "error: " + c.Error.Message
			case c.Skipped != nil:
				cases[s.Name+" "+c.Name] = "skipped: " + c.Skipped.Message
			default:
				cases[s.Name+" "+c.Name] = "pass: " + strings.SplitN(c.SystemOut, "\n", 2)[0]
			}
		}
	}
	for key, want := range map[string]string{
		"ofm-9.1 198.18.0.12 smb-direct":        "failure: tcp 445: filtered, no answer to 2 attempts of 1.5s",
		"ofm-9.1 198.18.0.10 smb-direct":        "pass: 198.18.0.10 smb-direct pass (required): SMB reachable on TCP 445",
		"ofm-9.1 198.18.0.10 netbios-hardening": "pass: 198.18.0.10 netbios-hardening warn (recommended): NetBIOS is not exposed (TCP 139, UDP 137)",
		"ofm-9.1 198.18.0.10 ofmlog-share":      "pass: 198.18.0.10 ofmlog-share pass (required): The OFMLOG$ share mounts",
		// A required requirement that could not be verified makes the host incomplete: a failure, never a green skip.
		"ofm-9.1 198.18.0.12 ofmlog-share": "failure: not verified: " + fixtureResult(t, "198.18.0.12", "ofm-9.1", "ofmlog-share").Reason,
		// A check the user did not ask for is skipped.
		"ofm-9.1 198.18.0.12 ofm-service-port": "skipped: " + fixtureResult(t, "198.18.0.12", "ofm-9.1", "ofm-service-port").Reason,
		"ofm-9.0 198.18.0.99 smb-transport":    "error: internal error: panic: injected fault",
		// Control characters arrive as visible escapes, everything else as sent.
		"ofm-9.0 198.18.0.66 netbios-session": "failure: " + printable(hostileEvidence),
	} {
		if got := cases[key]; got != want {
			t.Errorf("%s:\n got %q\nwant %q", key, got, want)
		}
	}
}

// fixtureResult is one requirement's result for one fixture host, as the grader gave it.
func fixtureResult(t *testing.T, addr, profile, requirement string) catalog.Result {
	t.Helper()
	for _, h := range document(fixtureHosts()).Hosts {
		for _, g := range h.Profiles {
			for _, r := range g.Results {
				if h.Address == addr && g.Profile == profile && r.Requirement == requirement {
					return r
				}
			}
		}
	}
	t.Fatalf("no result for %s %s %s", addr, profile, requirement)
	return catalog.Result{}
}

func TestPromGolden(t *testing.T) {
	out := render(t, "prom")
	golden(t, "report.prom.golden", out)
	families := parseProm(t, out)
	for name, want := range map[string]int{
		"ofmprobe_scan_info": 1, "ofmprobe_scan_duration_seconds": 1, "ofmprobe_scan_hosts": 1,
		"ofmprobe_hosts":               2 * len(gradeOrder),
		"ofmprobe_host_grade":          2 * len(fixtureOrder),
		"ofmprobe_requirement_outcome": fixtureRequirements(t)["ofm-9.0"] + fixtureRequirements(t)["ofm-9.1"],
		"ofmprobe_port_state":          7 + 7 + 7 + 4 + 2,
	} {
		if got := len(families[name].GetMetric()); got != want {
			t.Errorf("%s has %d samples, want %d", name, got, want)
		}
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		for _, m := range families[name].GetMetric() {
			match := true
			for k, v := range labels {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				match = match && found
			}
			if match {
				return m.GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ofmprobe_scan_duration_seconds", nil, 3.2},
		{"ofmprobe_scan_start_timestamp_seconds", nil, float64(clock.Unix())},
		{"ofmprobe_scan_hosts", nil, 6},
		{"ofmprobe_scan_internal_errors", nil, 1},
		{"ofmprobe_hosts", map[string]string{"profile": "ofm-9.1", "grade": "fail"}, 3},
		{"ofmprobe_hosts", map[string]string{"profile": "ofm-9.1", "grade": "pass"}, 0},
		{"ofmprobe_host_grade", map[string]string{"address": "198.18.0.12", "profile": "ofm-9.1", "grade": "fail"}, 1},
		{"ofmprobe_requirement_outcome", map[string]string{"address": "198.18.0.12", "requirement": "smb-direct", "outcome": "fail", "severity": "required"}, 1},
		{"ofmprobe_port_state", map[string]string{"address": "198.18.0.12", "protocol": "tcp", "port": "445", "state": "filtered"}, 1},
		{"ofmprobe_port_rtt_seconds", map[string]string{"address": "198.18.0.10", "protocol": "tcp", "port": "445"}, 0.0004},
		{"ofmprobe_host_duration_seconds", map[string]string{"address": "198.18.0.17"}, 3.1},
		{"ofmprobe_netbios_session_state", map[string]string{"address": "198.18.0.66", "state": "negative"}, 1},
		// Label values come back exactly: quotes, backslashes and all.
		{"ofmprobe_netbios_info", map[string]string{"address": "198.18.0.66", "computer_name": hostileName, "workgroup": hostileGroup}, 1},
	}
	for _, c := range checks {
		if got, ok := value(c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}

// parseProm parses the text exposition format with Prometheus' own parser and checks every family against the
// naming conventions: valid names, an ofmprobe_ prefix, HELP and TYPE for all, gauges without _total, seconds as the
// only unit, no timestamps (the textfile collector refuses them), and one label set per family.
func parseProm(t *testing.T, out []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("the Prometheus report does not parse: %v", err)
	}
	for name, f := range families {
		if !model.LegacyValidation.IsValidMetricName(name) || !strings.HasPrefix(name, "ofmprobe_") {
			t.Errorf("metric name %q is not a valid ofmprobe_ name", name)
		}
		if f.GetHelp() == "" || f.GetType().String() != "GAUGE" {
			t.Errorf("%s: help %q, type %s; want help and a gauge", name, f.GetHelp(), f.GetType())
		}
		if strings.HasSuffix(name, "_total") || strings.Contains(name, "_milliseconds") || strings.HasSuffix(name, "_ms") {
			t.Errorf("%s: gauges carry no _total, and time is in seconds", name)
		}
		if strings.Contains(name, "duration") || strings.Contains(name, "rtt") || strings.Contains(name, "timestamp") {
			if !strings.HasSuffix(name, "_seconds") {
				t.Errorf("%s: a time without its unit _seconds", name)
			}
		}
		var labelSet string
		for i, m := range f.GetMetric() {
			if m.TimestampMs != nil {
				t.Errorf("%s: sample with a timestamp", name)
			}
			var names []string
			for _, l := range m.GetLabel() {
				if !model.LegacyValidation.IsValidLabelName(l.GetName()) {
					t.Errorf("%s: label name %q", name, l.GetName())
				}
				names = append(names, l.GetName())
			}
			slices.Sort(names)
			if i == 0 {
				labelSet = strings.Join(names, ",")
			} else if strings.Join(names, ",") != labelSet {
				t.Errorf("%s mixes label sets: %s and %s", name, labelSet, strings.Join(names, ","))
			}
		}
	}
	return families
}

func TestHTMLGolden(t *testing.T) {
	out := render(t, "html")
	golden(t, "report.html.golden", out)
	page := parseHTML(t, out)
	if !slices.Equal(page.hosts, fixtureOrder) {
		t.Errorf("host sections %q, want %q", page.hosts, fixtureOrder)
	}
	if page.scripts != 1 || page.externalRefs != nil {
		t.Errorf("%d scripts, external references %q: want one inline script and nothing from outside", page.scripts, page.externalRefs)
	}
	// The hostile strings are text in the page, never markup: no element or attribute came from them.
	if !strings.Contains(page.text, hostileName) || !strings.Contains(page.text, `"</td><img src=x onerror=alert(1)>"`) {
		t.Error("the hostile strings are not shown as text")
	}
	if page.imgs != 0 || page.scripts != 1 {
		t.Errorf("%d img elements, %d scripts: hostile markup became elements", page.imgs, page.scripts)
	}
	for _, raw := range []string{hostileName, "<img src=x", "\x1b"} {
		if bytes.Contains(out, []byte(raw)) {
			t.Errorf("the page holds %q unescaped", raw)
		}
	}
	// Each requirement result is a row in the host's details.
	want := 0
	for _, n := range fixtureRequirements(t) {
		want += n
	}
	if page.requirementRows != want {
		t.Errorf("%d requirement rows, want %d", page.requirementRows, want)
	}
	// The causes come first, one row each.
	if n := len(document(fixtureHosts()).Summary.normalized().Causes); n == 0 || page.causeRows != n || bytes.Index(out, []byte(`id="causes"`)) > bytes.Index(out, []byte(`id="summary"`)) {
		t.Errorf("%d cause rows, want %d, before the summary", page.causeRows, n)
	}
	for _, s := range []string{"<svg", "Content-Security-Policy", "sha256-"} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("the page has no %s", s)
		}
	}
}

// htmlPageFacts is what parseHTML found in a page.
type htmlPageFacts struct {
	hosts           []string
	scripts, imgs   int
	requirementRows int
	causeRows       int
	externalRefs    []string
	text            string
}

// parseHTML parses the report with encoding/xml: the page is written to be well-formed XML as well as HTML (its
// style sheet and script sit in commented-out CDATA sections), so a strict XML parser proves every element is closed
// and every attribute quoted, and finds what the page holds.
func parseHTML(t *testing.T, out []byte) htmlPageFacts {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(out))
	dec.Strict = true
	var facts htmlPageFacts
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the HTML report is not well-formed: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				attrs[a.Name.Local] = a.Value
				if (a.Name.Local == "src" || a.Name.Local == "href") && !strings.HasPrefix(a.Value, "#") {
					facts.externalRefs = append(facts.externalRefs, a.Value)
				}
			}
			switch tok.Name.Local {
			case "tbody":
				if attrs["class"] == "host" {
					facts.hosts = append(facts.hosts, attrs["data-address"])
				}
			case "tr":
				if strings.HasPrefix(attrs["class"], "cause-") {
					facts.causeRows++
				}
				if strings.HasPrefix(attrs["class"], "o-") {
					facts.requirementRows++
				}
			case "script":
				facts.scripts++
			case "img", "iframe", "object", "embed", "link":
				facts.imgs++
			}
		case xml.CharData:
			text.Write(tok)
		}
	}
	facts.text = text.String()
	return facts
}

// TestIdentityInEveryFormat: the SMB server's own name (its NTLM challenge) reaches every format, and a host whose
// node status and SMB server disagree on its name is flagged with both.
func TestIdentityInEveryFormat(t *testing.T) {
	for _, format := range FormatNames() {
		out := string(render(t, format))
		if !strings.Contains(out, "FILER12") {
			t.Errorf("%s: the SMB server's name FILER12 is missing", format)
		}
		if format != "prom" && format != "table" && !strings.Contains(out, "node status calls the host DROP445, its SMB server calls itself FILER12") {
			t.Errorf("%s: the name mismatch is not flagged", format)
		}
	}
	if got := nameMismatch(HostRecord{NetBIOS: &NetBIOSRecord{ComputerName: "OFM90"}, SMB: &SMBRecord{SMBResult: smb.SMBResult{Identity: &smbwire.NTLMIdentity{NetBIOSComputer: "ofm90"}}}}); got != "" {
		t.Errorf("names that differ only in case: %q", got)
	}
	got := nameMismatch(HostRecord{NetBIOS: &NetBIOSRecord{ComputerName: "OLDNAME"}, Session: &SessionRecord{State: "negative", Called: []string{"OLDNAME<20>", "*SMBSERVER<20>"}},
		SMB: &SMBRecord{SMBResult: smb.SMBResult{Identity: &smbwire.NTLMIdentity{NetBIOSComputer: "NEWNAME"}}}})
	if got != "node status calls the host OLDNAME, its SMB server calls itself NEWNAME (NTLM); a session on 139 needs the called name NEWNAME<20> (or *SMBSERVER)" {
		t.Errorf("refused session: %q", got)
	}
}
