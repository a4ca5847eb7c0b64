package report

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/report/reporttest"
)

// TestSchemaValidatesReports checks the golden JSON document and every golden NDJSON line against
// docs/report.schema.json.
func TestSchemaValidatesReports(t *testing.T) {
	reporttest.Validate(t, "", render(t, "json"))
	reporttest.ValidateNDJSON(t, render(t, "ndjson"))
	for _, name := range []string{"report.json.golden", "diff.json.golden"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		def := ""
		if strings.HasPrefix(name, "diff") {
			def = "comparison"
		}
		reporttest.Validate(t, def, b)
	}
}

// TestSchemaRejects proves the schema is not vacuous: each change to a valid report breaks it.
func TestSchemaRejects(t *testing.T) {
	valid := render(t, "json")
	tests := []struct {
		name string
		edit func(doc map[string]any)
	}{
		{"an undocumented field", func(d map[string]any) { d["extra"] = 1 }},
		{"another schema version", func(d map[string]any) { d["schema"] = 1 }},
		{"a run without its catalog", func(d map[string]any) { delete(d["run"].(map[string]any), "catalog") }},
		{"a result that carries its requirement's text again", func(d map[string]any) {
			host(d, 0)["profiles"].([]any)[0].(map[string]any)["results"].([]any)[0].(map[string]any)["why"] = "because"
		}},
		{"no schema", func(d map[string]any) { delete(d, "schema") }},
		{"an unknown grade", func(d map[string]any) { host(d, 0)["profiles"].([]any)[0].(map[string]any)["grade"] = "good" }},
		{"an unknown port state", func(d map[string]any) { host(d, 0)["ports"].([]any)[0].(map[string]any)["state"] = "ajar" }},
		{"a port out of range", func(d map[string]any) { host(d, 0)["ports"].([]any)[0].(map[string]any)["port"] = 70000 }},
		{"an address that is not one", func(d map[string]any) { host(d, 0)["address"] = "ofm90" }},
		{"a skipped result without its reason", func(d map[string]any) {
			for _, r := range host(d, 2)["profiles"].([]any)[0].(map[string]any)["results"].([]any) {
				if r := r.(map[string]any); r["outcome"] == "skipped" {
					delete(r, "reason")
					return
				}
			}
			panic("the fixture has no skipped result on its third host")
		}},
		{"an SMB state that is not one", func(d map[string]any) { host(d, 0)["smb"].(map[string]any)["state"] = "smb4" }},
		{"a share without its login", func(d map[string]any) { delete(host(d, 0)["share"].(map[string]any), "login") }},
		{"an OFM file that is not one", func(d map[string]any) {
			host(d, 0)["share"].(map[string]any)["files"].([]any)[0].(map[string]any)["name"] = "BOOT.INI"
		}},
		{"a time that is not one", func(d map[string]any) { d["run"].(map[string]any)["started"] = "yesterday" }},
	}
	s := reporttest.Schema(t, "")
	for _, tc := range tests {
		var doc map[string]any
		if err := json.Unmarshal(valid, &doc); err != nil {
			t.Fatal(err)
		}
		tc.edit(doc)
		b, _ := json.Marshal(doc)
		v, _ := jsonValue(b)
		if err := s.Validate(v); err == nil {
			t.Errorf("the schema accepts %s", tc.name)
		}
	}
	// A line of the wrong shape: a host line carrying a run.
	line := []byte(`{"schema":2,"type":"host","run":{}}`)
	v, _ := jsonValue(line)
	if err := reporttest.Schema(t, "ndjson_line").Validate(v); err == nil {
		t.Error("the schema accepts a host line without a host")
	}
}

func host(doc map[string]any, i int) map[string]any { return doc["hosts"].([]any)[i].(map[string]any) }

func jsonValue(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	return v, dec.Decode(&v)
}

// TestSchemaVocabulary keeps the schema's lists of states, grades and outcomes equal to the code's, so that a new
// state cannot appear in reports without being documented.
func TestSchemaVocabulary(t *testing.T) {
	b, err := os.ReadFile(reporttest.SchemaPath())
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs map[string]struct {
			Enum       []string `json:"enum"`
			Properties map[string]struct {
				Enum []string `json:"enum"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	strs := func(vals ...[]string) []string {
		var out []string
		for _, v := range vals {
			for _, s := range v {
				if !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	toStrings := func(xs any) []string {
		var out []string
		switch xs := xs.(type) {
		case []catalog.HostGrade:
			for _, x := range xs {
				out = append(out, string(x))
			}
		case []catalog.Outcome:
			for _, x := range xs {
				out = append(out, string(x))
			}
		case []ChangeKind:
			for _, x := range xs {
				out = append(out, string(x))
			}
		}
		return out
	}
	tests := []struct {
		where string
		got   []string
		want  []string
	}{
		{"port.state", schema.Defs["port"].Properties["state"].Enum, strs(catalog.Kinds["tcp"], catalog.Kinds["udp"], []string{"error"})},
		{"netbios.state", schema.Defs["netbios"].Properties["state"].Enum, strs(catalog.Kinds["nbstat"], []string{"error"})},
		{"session.state", schema.Defs["session"].Properties["state"].Enum, strs(catalog.Kinds["nbss"])},
		{"grade", schema.Defs["grade"].Enum, strs(toStrings(gradeOrder))},
		{"outcome", schema.Defs["outcome"].Enum, strs(toStrings(outcomeOrder))},
		{"catalog_requirement.severity", schema.Defs["catalog_requirement"].Properties["severity"].Enum,
			strs([]string{string(catalog.Required), string(catalog.Recommended), string(catalog.Advisory)})},
		{"change_kind", schema.Defs["change_kind"].Enum, strs(toStrings(changeOrder))},
		// A step's raw state adds what the grading turns into a skip: error (this machine could not connect),
		// cancelled and internal.
		{"smb.state", schema.Defs["smb"].Properties["state"].Enum, strs(catalog.Kinds["smb"], []string{"error"})},
		{"share.state", schema.Defs["share"].Properties["state"].Enum, strs(catalog.Kinds["share"], []string{"error", "cancelled", "internal"})},
		{"epm.state", schema.Defs["epm"].Properties["state"].Enum, strs(catalog.Kinds["epm"], []string{"error"})},
		{"host.status", schema.Defs["host"].Properties["status"].Enum, strs([]string{engine.HostUp, engine.HostUnreachable, engine.HostError, engine.HostInternal})},
	}
	for _, tc := range tests {
		if got := strs(tc.got); !slices.Equal(got, tc.want) {
			t.Errorf("schema %s lists %q; the code has %q", tc.where, got, tc.want)
		}
	}
}
