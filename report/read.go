package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Errors ReadFile and Read wrap, for callers that tell bad input apart.
var (
	// ErrNotReport is returned for input that is not an ofmprobe JSON or NDJSON report.
	ErrNotReport = errors.New("not an ofmprobe report")
	// ErrSchemaVersion is returned for a report written with another schema version.
	ErrSchemaVersion = errors.New("report schema version mismatch")
)

// maxLine is the longest NDJSON line Read accepts: a host record with every port of a large --ports list.
const maxLine = 64 << 20

// ReadFile reads a JSON or NDJSON report from a file.
func ReadFile(path string) (Document, error) {
	f, err := OpenReport(path)
	if err != nil {
		return Document{}, err
	}
	defer f.Close()
	return Read(f, path)
}

// Read reads a report written by the json or ndjson writer; name says where it came from in errors. From NDJSON it
// takes the hosts of the host lines and the run and summary of the last run or summary line; a stream cut short
// (no summary line) still gives its hosts, with the summary counted from them. Fields it does not know are ignored,
// as a newer ofmprobe may add them within the same schema version.
func Read(r io.Reader, name string) (Document, error) {
	br, _, err := Decompress(bufio.NewReader(r))
	if err != nil {
		return Document{}, fmt.Errorf("%s: %w", name, err)
	}
	first, err := br.ReadBytes('\n')
	if err != nil && err != io.EOF {
		return Document{}, fmt.Errorf("read %s: %w", name, err)
	}
	if len(bytes.TrimSpace(first)) == 0 && err == io.EOF {
		return Document{}, fmt.Errorf("%s: %w (the file is empty)", name, ErrNotReport)
	}
	// An NDJSON report's first line is a whole object with a type; a JSON document's first line is "{" alone (or the
	// whole document, when it was compacted).
	if isNDJSONLine(first) {
		return readNDJSON(first, br, name)
	}
	return readJSON(io.MultiReader(bytes.NewReader(first), br), name)
}

// isNDJSONLine says whether the first line of a report is a whole JSON object with a "type": an NDJSON report's.
func isNDJSONLine(first []byte) bool {
	var head struct {
		Type *string `json:"type"`
	}
	return json.Unmarshal(first, &head) == nil && head.Type != nil
}

// IsNDJSONFile says whether the file at path is an NDJSON report (by its first line), for readers that stream one.
func IsNDJSONFile(path string) bool {
	f, err := OpenReport(path)
	if err != nil {
		return false
	}
	defer f.Close()
	first, _ := bufio.NewReaderSize(f, 64<<10).ReadBytes('\n')
	return isNDJSONLine(first)
}

// checkSchema checks a record's schema version.
func checkSchema(schema *int, where string) error {
	if schema == nil {
		return fmt.Errorf(`%s: %w (no "schema" field)`, where, ErrNotReport)
	}
	if *schema < oldestReadable || *schema > SchemaVersion {
		return fmt.Errorf("%s: %w: the report has schema %d, this ofmprobe reads schemas %d to %d", where, ErrSchemaVersion, *schema, oldestReadable, SchemaVersion)
	}
	return nil
}

func readJSON(r io.Reader, name string) (Document, error) {
	dec := json.NewDecoder(r)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Document{}, fmt.Errorf("%s: %w (not JSON: %v)", name, ErrNotReport, err)
		}
		return Document{}, fmt.Errorf("read %s: %w", name, err)
	}
	if raw[0] != '{' {
		return Document{}, fmt.Errorf("%s: %w (not a JSON object)", name, ErrNotReport)
	}
	var doc struct {
		Schema  *int               `json:"schema"`
		Run     *Run               `json:"run"`
		Hosts   *[]json.RawMessage `json:"hosts"`
		Summary *Summary           `json:"summary"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		// Check the version first: a report of another schema may not fit this one's types.
		var head struct {
			Schema *int `json:"schema"`
		}
		if json.Unmarshal(raw, &head) == nil {
			if err := checkSchema(head.Schema, name); err != nil {
				return Document{}, err
			}
		}
		return Document{}, fmt.Errorf("%s: %w (%v)", name, ErrNotReport, err)
	}
	if err := checkSchema(doc.Schema, name); err != nil {
		return Document{}, err
	}
	if doc.Run == nil || doc.Hosts == nil {
		return Document{}, fmt.Errorf(`%s: %w (no "run" or "hosts")`, name, ErrNotReport)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Document{}, fmt.Errorf("%s: %w (data after the report)", name, ErrNotReport)
	}
	out := Document{Schema: *doc.Schema, Run: *doc.Run, Hosts: make([]HostRecord, len(*doc.Hosts))}
	t := textsOf(doc.Run.Catalog)
	for i, raw := range *doc.Hosts {
		if err := decodeHost(raw, *doc.Schema, t, &out.Hosts[i]); err != nil {
			return Document{}, fmt.Errorf("%s: host %d: %w (%v)", name, i+1, ErrNotReport, err)
		}
	}
	if doc.Summary != nil {
		out.Summary = *doc.Summary
	} else {
		out.Summary = summarize(out.Hosts)
	}
	return out, nil
}

// ndjsonIn is one NDJSON line as the readers decode it: the host is kept as bytes, to be decoded (and given its
// requirements' texts) by the reader that wants it.
type ndjsonIn struct {
	Schema  *int            `json:"schema"`
	Type    *string         `json:"type"`
	Run     *Run            `json:"run"`
	Host    json.RawMessage `json:"host"`
	Summary *Summary        `json:"summary"`
}

// typ is the line's type; "" when it has none.
func (l *ndjsonIn) typ() string {
	if l.Type == nil {
		return ""
	}
	return *l.Type
}

// scanNDJSON calls fn with every non-blank line of an NDJSON report, decoded and checked: a JSON object, of a schema
// this ofmprobe reads, and a host line with its host. where is "name:line"; n the line number.
func scanNDJSON(r io.Reader, name string, fn func(where string, n int, l *ndjsonIn) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, n)
		var l ndjsonIn
		if err := json.Unmarshal(line, &l); err != nil {
			if rerr := sc.Err(); rerr != nil {
				// The line is what was read before the stream failed (a compressed file cut short): that is the error.
				return fmt.Errorf("read %s: %w", name, rerr)
			}
			return fmt.Errorf("%s: %w (%v)", where, ErrNotReport, err)
		}
		if err := checkSchema(l.Schema, where); err != nil {
			return err
		}
		if l.typ() == lineHost && (len(l.Host) == 0 || string(l.Host) == "null") {
			return fmt.Errorf(`%s: %w (a host line without "host")`, where, ErrNotReport)
		}
		if err := fn(where, n, &l); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

func readNDJSON(first []byte, br *bufio.Reader, name string) (Document, error) {
	doc := Document{}
	var haveRun, haveSummary bool
	// t is the texts of the latest run line: the hosts after it were graded against its catalog (joined shards
	// each start with their own run line).
	var t texts
	// at maps an address to its record's index: a resumed report may hold a host twice, an aborted record and the
	// one the resumed scan wrote after it, and the later one wins.
	at := map[string]int{}
	err := scanNDJSON(io.MultiReader(bytes.NewReader(first), br), name, func(where string, _ int, l *ndjsonIn) error {
		if doc.Schema == 0 {
			doc.Schema = *l.Schema
		}
		switch l.typ() {
		case lineRun, lineSummary:
			if l.Run != nil {
				doc.Run, haveRun = *l.Run, true
				if l.typ() == lineRun {
					t = textsOf(l.Run.Catalog)
				}
			}
			if l.Summary != nil {
				doc.Summary, haveSummary = *l.Summary, true
			}
		case lineHost:
			var h HostRecord
			if err := decodeHost(l.Host, *l.Schema, t, &h); err != nil {
				return fmt.Errorf("%s: %w (%v)", where, ErrNotReport, err)
			}
			key := h.Address + " " + h.Name
			if i, ok := at[key]; ok {
				doc.Hosts[i] = h
				return nil
			}
			at[key] = len(doc.Hosts)
			doc.Hosts = append(doc.Hosts, h)
		}
		return nil
	})
	if err != nil {
		return Document{}, err
	}
	if !haveRun {
		return Document{}, fmt.Errorf("%s: %w (no run line)", name, ErrNotReport)
	}
	if !haveSummary || doc.Summary.Hosts != len(doc.Hosts) {
		// Cut short, or several shards' streams joined: count the hosts that are there.
		doc.Summary = summarize(doc.Hosts)
	}
	sortRecords(doc.Hosts)
	return doc, nil
}

// decodeHost decodes a host record of the given schema and gives its results their requirements' texts: from the
// run's catalog t (schema 2), or from the results themselves (schema 1).
func decodeHost(raw []byte, schema int, t texts, h *HostRecord) error {
	if err := json.Unmarshal(raw, h); err != nil {
		return err
	}
	if schema == 1 {
		return fillLegacy(raw, h)
	}
	t.fill(h)
	return nil
}

func summarize(hosts []HostRecord) Summary {
	var s Summary
	for _, h := range hosts {
		s.Add(h)
	}
	return s.normalized()
}
