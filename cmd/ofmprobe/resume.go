package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"

	"github.com/ofmprobe/ofmprobe/report"
)

// resumeState is what a resumed scan learns from the report it appends to.
type resumeState struct {
	// done holds the addresses the report has a complete record for: they are not scanned again.
	done map[netip.Addr]bool
	// failing holds those of them whose latest record does not pass (a grade other than pass or warn, or an
	// internal error): the resumed scan's exit status is the whole file's.
	failing map[netip.Addr]bool
}

// readResume reads the NDJSON report a resumed scan appends to and returns the addresses it already holds a
// complete record for, and which of them fail. A host record of a scan that was aborted (second Ctrl-C) is not complete: the host is probed
// again, and the reader of the report keeps the later record. A last line the interrupted run left half written is
// cut off, so the appended lines start on a line of their own. A missing file is an empty report: the scan starts.
func readResume(path string) (resumeState, error) {
	st := resumeState{done: map[netip.Addr]bool{}, failing: map[netip.Addr]bool{}}
	done := st.done
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return resumeState{}, fmt.Errorf("--resume: %w", err)
	}
	defer f.Close()
	raw := bufio.NewReaderSize(f, 64<<10)
	_, peekErr := raw.Peek(1)
	br, compressed, err := report.Decompress(raw)
	if err != nil {
		return resumeState{}, usageErrorf("--resume: %s: %v", path, err)
	}
	if peekErr == nil && compressed != report.IsCompressedName(path) {
		// The appended lines would be written the other way (by the name) and the file would read as garbage.
		how := map[bool]string{true: "is gzip, but its name does not end in .gz", false: "is plain text, but its name ends in .gz"}
		return resumeState{}, usageErrorf("--resume: %s %s: rename it to match", path, how[compressed])
	}
	var offset, good int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		offset += int64(len(line))
		if compressed && errors.Is(err, report.ErrCutShort) {
			return resumeState{}, usageErrorf("--resume: %s: %v: a resumed scan cannot append to it; "+
				"zcat it into a plain .ndjson file and resume that", path, report.ErrCutShort)
		}
		if err == io.EOF {
			if len(bytes.TrimSpace(line)) > 0 {
				if compressed {
					return resumeState{}, usageErrorf("--resume: %s: the last line is unfinished: a resumed scan "+
						"cannot append to it; zcat it into a plain .ndjson file and resume that", path)
				}
				// A half-written last line: cut it.
				if terr := f.Truncate(good); terr != nil {
					return resumeState{}, fmt.Errorf("--resume: cut the unfinished last line of %s: %w", path, terr)
				}
			}
			return st, nil
		}
		if err != nil {
			return resumeState{}, fmt.Errorf("--resume: read %s: %w", path, err)
		}
		good = offset
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var l struct {
			Schema *int               `json:"schema"`
			Type   string             `json:"type"`
			Host   *report.HostRecord `json:"host"`
		}
		if err := json.Unmarshal(line, &l); err != nil || l.Type == "" {
			return resumeState{}, usageErrorf("--resume: %s:%d is not a line of an ofmprobe NDJSON report", path, n)
		}
		if l.Schema == nil || *l.Schema != report.SchemaVersion {
			return resumeState{}, usageErrorf("--resume: %s:%d has another report schema than %d", path, n, report.SchemaVersion)
		}
		if l.Type != "host" || l.Host == nil {
			continue
		}
		addr, err := netip.ParseAddr(l.Host.Address)
		if err != nil {
			return resumeState{}, usageErrorf("--resume: %s:%d: bad address %q", path, n, l.Host.Address)
		}
		if l.Host.Aborted {
			delete(done, addr) // the host's latest record decides
			delete(st.failing, addr)
		} else {
			done[addr] = true
			st.failing[addr] = !passed(*l.Host)
		}
	}
}

// passed says whether a host record passes every profile it was graded against, as the exit status counts it.
func passed(h report.HostRecord) bool {
	var s report.Summary
	s.Add(h)
	return s.AllPassed()
}
