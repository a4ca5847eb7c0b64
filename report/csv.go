package report

import (
	"encoding/csv"
	"io"
	"strings"
)

// CSVHeader is the CSV report's header row. Every later row is one host and one requirement of one profile; a host
// that was graded against no profile gets one row with the profile columns empty. The columns only ever grow at the
// end; docs/reports.md describes each.
var CSVHeader = []string{
	"address", "name", "netbios_name", "status", "error",
	"profile", "grade", "requirement", "severity", "outcome",
	"title", "evidence", "reason", "why", "fix",
	"smb_name", "smb_domain", "smb_dns_name", "smb_version", "name_mismatch",
}

// csvListSeparator joins a requirement's evidence lines in one cell.
const csvListSeparator = "; "

// writeCSV writes the report as RFC 4180 CSV (CRLF line ends, fields quoted where needed).
func writeCSV(w io.Writer, doc streamDocument) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for h := range doc.Hosts {
		netbiosName := ""
		if h.NetBIOS != nil {
			netbiosName = h.NetBIOS.ComputerName
		}
		host := []string{h.Address, h.Name, netbiosName, h.Status, h.Error}
		identity := make([]string, 4, 5)
		if id := h.Identity(); id != nil {
			identity = []string{id.NetBIOSComputer, id.NetBIOSDomain, id.DNSComputer, ""}
			if id.Version != nil {
				identity[3] = id.Version.String()
			}
		}
		identity = append(identity, h.NameMismatch)
		if len(h.Profiles) == 0 {
			row := append(append(host, make([]string, len(CSVHeader)-len(host)-len(identity))...), identity...)
			if err := cw.Write(csvRow(row)); err != nil {
				return err
			}
		}
		for _, g := range h.Profiles {
			for _, r := range g.Results {
				row := append(append([]string{}, host...),
					g.Profile, string(g.Grade), r.Requirement, string(r.Severity), string(r.Outcome),
					r.Title, strings.Join(r.Evidence, csvListSeparator), r.Reason, r.Why, r.Fix)
				row = append(row, identity...)
				if err := cw.Write(csvRow(row)); err != nil {
					return err
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvRow defuses cells a spreadsheet would run as a formula. Names and evidence come from the network: a NetBIOS name
// "=HYPERLINK(...)" must stay text. Such a cell gets a leading apostrophe, which spreadsheets hide.
func csvRow(row []string) []string {
	for i, s := range row {
		if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
			row[i] = "'" + s
		}
	}
	return row
}
