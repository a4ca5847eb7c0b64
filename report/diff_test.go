package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

// document grades hosts against the built-in profiles into a report.
func document(hosts []*fixtureHost) Document {
	doc := Document{Schema: SchemaVersion, Run: fixtureRun().normalized()}
	for _, h := range hosts {
		var gradings []catalog.Grading
		for _, p := range catalog.Builtin().Profiles {
			gradings = append(gradings, catalog.Grade(p, h))
		}
		rec := NewHostRecord(h.engineHost(), h.facts(), gradings)
		doc.Hosts = append(doc.Hosts, rec)
		doc.Summary.Add(rec)
	}
	sortRecords(doc.Hosts)
	return doc
}

// changedFixture is the fixture a day later: 198.18.0.10 lost TCP 135 and its NetBIOS name service, 198.18.0.12 got
// TCP 445 back, 198.18.0.17 was not scanned and 198.18.0.20 is new.
func changedFixture() []*fixtureHost {
	var out []*fixtureHost
	for _, h := range fixtureHosts() {
		switch h.Addr.String() {
		case "198.18.0.10":
			h.Ports[1] = port(135, "filtered", 0, 2, "tcp 135: filtered, no answer to 2 attempts of 1.5s")
			h.NetBIOS = &nbt.NodeStatus{State: status.OpenFiltered, Evidence: "nbstat 137: open|filtered, no answer to 4 queries of 750ms (silence is not proof of filtering)", Attempts: 4}
		case "198.18.0.12":
			h.Ports[3] = port(445, "open", 500*time.Microsecond, 1, "tcp 445: open, connected in 0.50 ms")
		case "198.18.0.17":
			continue
		}
		out = append(out, h)
	}
	added := *fixtureHosts()[1]
	added.Target = targets.Target{Addr: netip.MustParseAddr("198.18.0.20")}
	return append(out, &added)
}

func TestCompare(t *testing.T) {
	c := Compare("old.json", document(fixtureHosts()), "new.json", document(changedFixture()))
	var got []string
	for _, ch := range c.Changes {
		got = append(got, strings.Join([]string{string(ch.Kind), ch.Address, changeWhat(ch), ch.Old, ch.New}, " "))
	}
	want := []string{
		"regressed 198.18.0.10 ofm-9.0 warn fail",
		"port 198.18.0.10 tcp 135 open filtered",
		"netbios 198.18.0.10 node status answered open|filtered",
		"fixed 198.18.0.12 ofm-9.1 fail incomplete",
		"port 198.18.0.12 tcp 445 filtered open",
		"missing 198.18.0.17 host ofm-9.0 unreachable, ofm-9.1 unreachable ",
		"added 198.18.0.20 host  ofm-9.0 warn, ofm-9.1 warn",
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !c.Regressed {
		t.Error("not marked regressed")
	}
	if r := c.Changes[0].Requirements; len(r) == 0 || r[0].Requirement != "netbios-name" || r[0].Old != catalog.Pass || r[0].New != catalog.Fail {
		t.Errorf("the regression does not name its requirement: %+v", r)
	}

	same := Compare("a", document(fixtureHosts()), "b", document(fixtureHosts()))
	if same.Regressed || len(same.Changes) != 0 {
		t.Errorf("a report compared with itself: %+v", same.Changes)
	}
	// Fixes alone are no regression.
	fixed := Compare("old", document(pick(fixtureHosts(), "198.18.0.12")), "new", document(pick(changedFixture(), "198.18.0.12")))
	if fixed.Regressed || len(fixed.Changes) == 0 {
		t.Errorf("fix only: regressed %v, %+v", fixed.Regressed, fixed.Changes)
	}
}

// pick returns the hosts with the given address.
func pick(hosts []*fixtureHost, addr string) []*fixtureHost {
	var out []*fixtureHost
	for _, h := range hosts {
		if h.Addr.String() == addr {
			out = append(out, h)
		}
	}
	return out
}

func TestDiffGolden(t *testing.T) {
	c := Compare("old.json", document(fixtureHosts()), "new.json", document(changedFixture()))
	var table, js bytes.Buffer
	if err := c.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden(t, "diff.table.golden", table.Bytes())
	golden(t, "diff.json.golden", js.Bytes())
	var back Comparison
	dec := json.NewDecoder(&js)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil || len(back.Changes) != len(c.Changes) || !back.Regressed {
		t.Errorf("the comparison does not parse back: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if last := lines[len(lines)-1]; last != "REGRESSED: 1 missing, 1 regressed, 1 fixed, 1 added, 2 port, 1 netbios" {
		t.Errorf("summary line %q", last)
	}
}

// TestRead reads the JSON and NDJSON reports back, and refuses what is not one, each with one clear error.
func TestRead(t *testing.T) {
	fromJSON, err := Read(bytes.NewReader(render(t, "json")), "report.json")
	if err != nil {
		t.Fatal(err)
	}
	fromNDJSON, err := Read(bytes.NewReader(render(t, "ndjson")), "report.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if c := Compare("json", fromJSON, "ndjson", fromNDJSON); len(c.Changes) != 0 || fromNDJSON.Summary.Hosts != 6 {
		t.Errorf("the NDJSON report reads back differently from the JSON one: %+v", c.Changes)
	}
	var addrs []string
	for _, h := range fromNDJSON.Hosts {
		addrs = append(addrs, h.Address)
	}
	if !slices.Equal(addrs, fixtureOrder) || fromNDJSON.Run.Finished.IsZero() {
		t.Errorf("NDJSON hosts %q, run %+v", addrs, fromNDJSON.Run)
	}
	// A stream cut short still gives its hosts.
	nd := render(t, "ndjson")
	cut := nd[:bytes.LastIndex(bytes.TrimRight(nd, "\n"), []byte("\n"))+1]
	partial, err := Read(bytes.NewReader(cut), "cut.ndjson")
	if err != nil || len(partial.Hosts) != 6 || partial.Summary.Hosts != 6 {
		t.Errorf("cut stream: %v, %d hosts, summary %d", err, len(partial.Hosts), partial.Summary.Hosts)
	}
	compact, _ := json.Marshal(fromJSON)
	if _, err := Read(bytes.NewReader(compact), "compact.json"); err != nil {
		t.Errorf("compact JSON: %v", err)
	}

	bad := []struct {
		name, input string
		is          error
		want        string
	}{
		{"empty.json", "", ErrNotReport, "empty.json: not an ofmprobe report (the file is empty)"},
		{"catalog.json", `{"version": 1, "ports": []}`, ErrNotReport, `catalog.json: not an ofmprobe report (no "schema" field)`},
		{"text.txt", "hello\n", ErrNotReport, "text.txt: not an ofmprobe report (not JSON: invalid character 'h' looking for beginning of value)"},
		{"array.json", `[1, 2]`, ErrNotReport, "array.json: not an ofmprobe report (not a JSON object)"},
		{"hosts.json", `{"schema": 1, "run": {}, "hosts": "none"}`, ErrNotReport, "hosts.json: not an ofmprobe report (json: cannot unmarshal string into Go struct field .hosts of type []json.RawMessage)"},
		{"v3.json", `{"schema": 3, "run": {}, "hosts": []}`, ErrSchemaVersion, "v3.json: report schema version mismatch: the report has schema 3, this ofmprobe reads schemas 1 to 2"},
		{"v3.ndjson", `{"schema":3,"type":"run","run":{}}` + "\n", ErrSchemaVersion, "v3.ndjson:1: report schema version mismatch: the report has schema 3, this ofmprobe reads schemas 1 to 2"},
		{"mixed.ndjson", `{"schema":1,"type":"run","run":{}}` + "\n" + `{"schema":1,"type":"host"}` + "\n", ErrNotReport, `mixed.ndjson:2: not an ofmprobe report (a host line without "host")`},
		{"garbled.ndjson", `{"schema":1,"type":"run","run":{}}` + "\nnot json\n", ErrNotReport, "garbled.ndjson:2: not an ofmprobe report (invalid character 'o' in literal null (expecting 'u'))"},
		{"two.json", string(compact) + string(compact), ErrNotReport, "two.json: not an ofmprobe report (data after the report)"},
	}
	for _, tc := range bad {
		_, err := Read(strings.NewReader(tc.input), tc.name)
		if !errors.Is(err, tc.is) || err.Error() != tc.want {
			t.Errorf("%s: error %v\nwant %q", tc.name, err, tc.want)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestReadFillsRequirementTexts proves that a host read back from a schema 2 report, whose results carry only the
// requirement's ID, gets every title, severity, why and fix back from the run's catalog, exactly as graded; and that
// a schema 1 report, whose results carried their own texts, still reads.
func TestReadFillsRequirementTexts(t *testing.T) {
	cat := catalog.Builtin()
	want := map[string][]catalog.Grading{}
	for _, h := range fixtureHosts() {
		for _, p := range cat.Profiles {
			want[h.Addr.String()] = append(want[h.Addr.String()], catalog.Grade(p, h))
		}
	}
	// The JSON document has one run record; an NDJSON report has two, on its run and summary lines.
	for format, runs := range map[string]int{"json": 1, "ndjson": 2} {
		out := render(t, format)
		if n := bytes.Count(out, []byte("The OFM console reads the service's log")); n != runs {
			t.Errorf("%s: a requirement's why is written %d times, want once per run record (%d)", format, n, runs)
		}
		doc, err := Read(bytes.NewReader(out), "report."+format)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range doc.Hosts {
			if !reflect.DeepEqual(h.Profiles, want[h.Address]) {
				t.Errorf("%s: host %s reads back as %+v, want %+v", format, h.Address, h.Profiles, want[h.Address])
			}
		}
	}
	v1 := `{"schema": 1, "run": {"tool": "ofmprobe", "version": "old", "started": "2026-11-25T12:00:00Z", "profiles": ["ofm-9.1"]},
	"hosts": [{"address": "198.18.0.10", "status": "up", "started": "2026-11-25T12:00:00Z", "duration_ms": 1, "ports": [],
	"profiles": [{"profile": "ofm-9.1", "grade": "fail", "results": [{"requirement": "smb-direct", "title": "SMB on 445",
	"severity": "required", "outcome": "fail", "evidence": ["tcp 445: filtered"], "why": "old why", "fix": "old fix"}]}]}]}`
	doc, err := Read(strings.NewReader(v1), "v1.json")
	if err != nil {
		t.Fatal(err)
	}
	r := doc.Hosts[0].Profiles[0].Results[0]
	if r.Title != "SMB on 445" || r.Severity != catalog.Required || r.Why != "old why" || r.Fix != "old fix" || doc.Schema != 1 {
		t.Errorf("schema 1 result read as %+v (schema %d)", r, doc.Schema)
	}
}

// TestOpenNDJSON reads an NDJSON report host by host in two passes and gets what Read gets: every host once, the
// later record of a host written twice (a resumed scan), the requirement texts filled in.
func TestOpenNDJSON(t *testing.T) {
	nd := render(t, "ndjson")
	lines := bytes.SplitAfter(nd, []byte("\n"))
	// 198.18.0.10 again, later in the file, with another duration: that record wins.
	again := bytes.Replace(lines[1], []byte(`"duration_ms":`), []byte(`"duration_ms":7`), 1)
	path := filepath.Join(t.TempDir(), "resumed.ndjson")
	os.WriteFile(path, append(append([]byte{}, nd...), again...), 0o644)
	f, err := OpenNDJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []HostRecord
	for h := range f.Hosts() {
		got = append(got, h)
	}
	if f.Err() != nil || f.Len() != 6 || len(got) != 6 {
		t.Fatalf("%d hosts (Len %d), %v", len(got), f.Len(), f.Err())
	}
	sortRecords(got)
	for i := range got {
		if !reflect.DeepEqual(got[i], want.Hosts[i]) {
			t.Errorf("host %d reads as %+v, Read gives %+v", i, got[i].Address, want.Hosts[i].Address)
		}
	}
	if f.Run.Finished.IsZero() || f.Schema != SchemaVersion {
		t.Errorf("run %+v, schema %d", f.Run, f.Schema)
	}
	json := filepath.Join(t.TempDir(), "report.json")
	os.WriteFile(json, render(t, "json"), 0o644)
	if _, err := OpenNDJSON(json); !errors.Is(err, ErrNotReport) {
		t.Errorf("a JSON document: %v", err)
	}
}
