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

// readResume reads the NDJSON report a resumed scan appends to and returns the addresses it already holds a
// complete record for. A host record of a scan that was aborted (second Ctrl-C) is not complete: the host is probed
// again, and the reader of the report keeps the later record. A last line the interrupted run left half written is
// cut off, so the appended lines start on a line of their own. A missing file is an empty report: the scan starts.
func readResume(path string) (map[netip.Addr]bool, error) {
	done := map[netip.Addr]bool{}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--resume: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var offset, good int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		offset += int64(len(line))
		if err == io.EOF {
			if len(bytes.TrimSpace(line)) > 0 {
				// A half-written last line: cut it.
				if terr := f.Truncate(good); terr != nil {
					return nil, fmt.Errorf("--resume: cut the unfinished last line of %s: %w", path, terr)
				}
			}
			return done, nil
		}
		if err != nil {
			return nil, fmt.Errorf("--resume: read %s: %w", path, err)
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
			return nil, usageErrorf("--resume: %s:%d is not a line of an ofmprobe NDJSON report", path, n)
		}
		if l.Schema == nil || *l.Schema != report.SchemaVersion {
			return nil, usageErrorf("--resume: %s:%d has another report schema than %d", path, n, report.SchemaVersion)
		}
		if l.Type != "host" || l.Host == nil {
			continue
		}
		addr, err := netip.ParseAddr(l.Host.Address)
		if err != nil {
			return nil, usageErrorf("--resume: %s:%d: bad address %q", path, n, l.Host.Address)
		}
		if l.Host.Aborted {
			delete(done, addr) // the host's latest record decides
		} else {
			done[addr] = true
		}
	}
}
