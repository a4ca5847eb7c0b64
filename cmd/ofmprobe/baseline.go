package main

import (
	"io"

	"github.com/ofmprobe/ofmprobe/report"
)

// loadBaseline reads the report that `scan --baseline` compares with. The scan calls it before probing anything, so
// that a missing or wrong file stops it at once (exit 2), not after an hour of probing.
func loadBaseline(path string) (report.Document, error) {
	return readReport(path, nil)
}

// compareBaseline compares a finished scan's hosts with the baseline report read from path, writes the changes as a
// table to w (stderr: stdout may carry the report itself) and says whether anything regressed. The scan keeps its
// hosts for this only when --baseline is given: streaming formats otherwise hold none in memory.
func compareBaseline(path string, base report.Document, hosts []report.HostRecord, run report.Run, w io.Writer) (regressed bool, err error) {
	current := report.Document{Schema: report.SchemaVersion, Run: run, Hosts: hosts}
	for _, h := range hosts {
		current.Summary.Add(h)
	}
	c := report.Compare(path, base, "this scan", current)
	if _, err := io.WriteString(w, "ofmprobe: compared with the baseline "+path+":\n"); err != nil {
		return c.Regressed, err
	}
	return c.Regressed, c.WriteTable(w)
}
