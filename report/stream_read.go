package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
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
	err := f.lines(func(n int, line []byte) error {
		where := fmt.Sprintf("%s:%d", path, n)
		var l struct {
			Schema *int    `json:"schema"`
			Type   *string `json:"type"`
			Run    *Run    `json:"run"`
			Host   *struct {
				Address string `json:"address"`
				Name    string `json:"name"`
			} `json:"host"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			return fmt.Errorf("%s: %w (%v)", where, ErrNotReport, err)
		}
		if l.Type == nil {
			return fmt.Errorf("%s: %w (not an NDJSON line: no \"type\")", where, ErrNotReport)
		}
		if err := checkSchema(l.Schema, where); err != nil {
			return err
		}
		if f.Schema == 0 {
			f.Schema = *l.Schema
		}
		switch *l.Type {
		case lineRun, lineSummary:
			if l.Run != nil {
				f.Run, haveRun = *l.Run, true
			}
		case lineHost:
			if l.Host == nil {
				return fmt.Errorf(`%s: %w (a host line without "host")`, where, ErrNotReport)
			}
			f.latest[l.Host.Address+" "+l.Host.Name] = n
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
		err := f.lines(func(n int, line []byte) error {
			var l struct {
				Schema int             `json:"schema"`
				Type   string          `json:"type"`
				Run    *Run            `json:"run"`
				Host   json.RawMessage `json:"host"`
			}
			if err := json.Unmarshal(line, &l); err != nil {
				return fmt.Errorf("%s:%d: %w", f.path, n, err)
			}
			switch l.Type {
			case lineRun:
				if l.Run != nil {
					t = textsOf(l.Run.Catalog)
				}
			case lineHost:
				var h HostRecord
				if err := decodeHost(l.Host, l.Schema, t, &h); err != nil {
					return fmt.Errorf("%s:%d: %w (%v)", f.path, n, ErrNotReport, err)
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

// lines calls fn with each non-blank line of the file and its number.
func (f *NDJSONFile) lines(fn func(n int, line []byte) error) error {
	file, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(bufio.NewReaderSize(file, 1<<20))
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w", f.path, err)
	}
	return nil
}
