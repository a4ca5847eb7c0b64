package report

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
)

// NDJSONFile is an NDJSON report on disk, read host by host in two passes rather than held whole: a /16's report
// is hundreds of megabytes, its records a gigabyte in memory.
type NDJSONFile struct {
	path string
	// Schema and Run are those of the first line and of the last run or summary line.
	Schema int
	Run    Run
	// latest maps a host's address and name to the line number of its last record: a resumed report may hold a host
	// twice, and the later record wins, as Read decides.
	latest map[string]int
	err    error
}

// OpenNDJSON checks an NDJSON report line by line (each a JSON object of a schema this ofmprobe reads) and notes
// where each host's last record is. It returns ErrNotReport, wrapped, for a file that is not an NDJSON report
// (a JSON document included: read it with ReadFile).
func OpenNDJSON(path string) (*NDJSONFile, error) {
	f := &NDJSONFile{path: path, latest: map[string]int{}}
	haveRun := false
	err := f.lines(func(where string, n int, l *ndjsonIn) error {
		if l.Type == nil {
			return fmt.Errorf("%s: %w (not an NDJSON line: no \"type\")", where, ErrNotReport)
		}
		if f.Schema == 0 {
			f.Schema = *l.Schema
		}
		switch l.typ() {
		case lineRun, lineSummary:
			if l.Run != nil {
				f.Run, haveRun = *l.Run, true
			}
		case lineHost:
			var key struct {
				Address string `json:"address"`
				Name    string `json:"name"`
			}
			if err := json.Unmarshal(l.Host, &key); err != nil {
				return fmt.Errorf("%s: %w (%v)", where, ErrNotReport, err)
			}
			f.latest[key.Address+" "+key.Name] = n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveRun {
		return nil, fmt.Errorf("%s: %w (no run line)", path, ErrNotReport)
	}
	return f, nil
}

// Len is the number of hosts.
func (f *NDJSONFile) Len() int { return len(f.latest) }

// Hosts yields each host's last record in file order (not sorted), given its requirements' texts from the run line
// before it. It stops at the first error, which Err returns.
func (f *NDJSONFile) Hosts() iter.Seq[HostRecord] {
	return func(yield func(HostRecord) bool) {
		var t texts
		stop := errors.New("stop")
		err := f.lines(func(where string, n int, l *ndjsonIn) error {
			switch l.typ() {
			case lineRun:
				if l.Run != nil {
					t = textsOf(l.Run.Catalog)
				}
			case lineHost:
				var h HostRecord
				if err := decodeHost(l.Host, *l.Schema, t, &h); err != nil {
					return fmt.Errorf("%s: %w (%v)", where, ErrNotReport, err)
				}
				if f.latest[h.Address+" "+h.Name] != n {
					return nil // a later record of this host follows
				}
				if !yield(h) {
					return stop
				}
			}
			return nil
		})
		if err != nil && err != stop {
			f.err = err
		}
	}
}

// Err is the error that ended Hosts, if any.
func (f *NDJSONFile) Err() error { return f.err }

// lines reads the file's lines through scanNDJSON.
func (f *NDJSONFile) lines(fn func(where string, n int, l *ndjsonIn) error) error {
	file, err := OpenReport(f.path)
	if err != nil {
		return err
	}
	defer file.Close()
	return scanNDJSON(bufio.NewReaderSize(file, 1<<20), f.path, fn)
}
