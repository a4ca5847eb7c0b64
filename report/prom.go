package report

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The Prometheus report is the text exposition format, for node_exporter's textfile collector: write it with
// --output to a *.prom file in the collector's directory (ofmprobe renames it into place when complete). Every
// family is a gauge without timestamps. States are labels on a gauge of value 1, one series per host and thing, in
// the style of kube-state-metrics (`ofmprobe_port_state{state="open"} 1`): the state a series names is the current
// one, and since each run replaces the file, a state that changed does not linger. Times are in seconds.

// promFamily is one metric family: its samples, which all carry the same label names, are written to buf as they are
// added, and the family is copied to the report when all are known (a family without samples is left out). The
// families about the scan are small and stay in memory; those with a sample per host go to a scratch file each, so
// one pass over the hosts fills them all.
type promFamily struct {
	name, help string
	labels     []string
	buf        interface {
		io.Writer
		io.WriterTo
	}
	samples int
	line    []byte // the sample being written, kept for its capacity
}

// add writes a sample. A write error is kept by the buffer and returned by WriteTo.
func (f *promFamily) add(value float64, labelValues ...string) {
	b := append(f.line[:0], f.name...)
	if len(f.labels) > 0 {
		b = append(b, '{')
		for i, l := range f.labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, l...)
			b = append(b, `="`...)
			b = append(b, escapeLabel(labelValues[i])...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = strconv.AppendFloat(b, value, 'f', -1, 64)
	b = append(b, '\n')
	f.buf.Write(b)
	f.line = b
	f.samples++
}

// writeProm writes the report as Prometheus metrics; docs/reports.md lists them.
func writeProm(w io.Writer, doc streamDocument) error {
	run := doc.Run
	boolValue := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	scan := func(name, help string, labels ...string) *promFamily {
		return &promFamily{name: name, help: help, labels: labels, buf: &bytes.Buffer{}}
	}
	info := scan("ofmprobe_scan_info", "The scan's ofmprobe version, report schema and vantage point (the scanning machine's addresses); always 1.",
		"version", "schema", "vantage")
	info.add(1, run.Version, strconv.Itoa(doc.Schema), strings.Join(run.Vantage, " "))
	start := scan("ofmprobe_scan_start_timestamp_seconds", "When the scan started, in seconds since the Unix epoch.")
	start.add(float64(run.Started.UnixMilli()) / 1000)
	end := scan("ofmprobe_scan_end_timestamp_seconds", "When the scan finished, in seconds since the Unix epoch.")
	if !run.Finished.IsZero() {
		end.add(float64(run.Finished.UnixMilli()) / 1000)
	}
	duration := scan("ofmprobe_scan_duration_seconds", "How long the scan took.")
	duration.add(run.Duration().Seconds())
	interrupted := scan("ofmprobe_scan_interrupted", "1 if the scan was interrupted and the report holds only the hosts finished by then.")
	interrupted.add(boolValue(run.Interrupted))
	hostsTotal := scan("ofmprobe_scan_hosts", "Hosts in the report.")
	hostsTotal.add(float64(doc.Summary.Hosts))
	internal := scan("ofmprobe_scan_internal_errors", "Hosts whose probes failed inside ofmprobe (a bug: see --debug).")
	internal.add(float64(doc.Summary.Internal))
	hostsPerGrade := scan("ofmprobe_hosts", "Hosts per grade and profile; every grade is listed, 0 included.", "profile", "grade")
	for _, p := range run.Profiles {
		for _, g := range gradeOrder {
			hostsPerGrade.add(float64(doc.Summary.Grades[p][g]), p, string(g))
		}
	}

	hostFamily := func(name, help string, extra ...string) *promFamily {
		return &promFamily{name: name, help: help, labels: append([]string{"address", "name"}, extra...)}
	}
	status := hostFamily("ofmprobe_host_status", "The host's status (up, unreachable, internal); always 1.", "status")
	hostDuration := hostFamily("ofmprobe_host_duration_seconds", "How long probing the host took.")
	grade := hostFamily("ofmprobe_host_grade", "The host's grade for a profile (pass, warn, incomplete, fail, unreachable); always 1.",
		"profile", "grade")
	outcome := hostFamily("ofmprobe_requirement_outcome", "A requirement's outcome for the host (pass, info, warn, skipped, fail); always 1.",
		"profile", "requirement", "severity", "outcome")
	portState := hostFamily("ofmprobe_port_state", "A port's state (open, closed, filtered, open|filtered, unreachable, error); always 1.",
		"protocol", "port", "state")
	portRTT := hostFamily("ofmprobe_port_rtt_seconds", "The round trip of the attempt that decided a port's state, when it got an answer.",
		"protocol", "port")
	nodeStatus := hostFamily("ofmprobe_netbios_node_status_state", "The NetBIOS node status answer on UDP 137 (answered, open|filtered, closed, protocol error, unreachable); always 1.",
		"state")
	netbiosInfo := hostFamily("ofmprobe_netbios_info", "The names a host gave in its NetBIOS node status; always 1.",
		"computer_name", "workgroup", "mac")
	session := hostFamily("ofmprobe_netbios_session_state", "The NetBIOS session request on TCP 139 (positive, negative, timeout, protocol error, ...); always 1.",
		"state")
	identity := hostFamily("ofmprobe_smb_identity_info", "Who the host's SMB server says it is in the NTLM challenge of an anonymous session setup; always 1.",
		"netbios_computer", "netbios_domain", "dns_computer", "version")
	hostFamilies := []*promFamily{status, hostDuration, grade, outcome, portState, portRTT, nodeStatus, netbiosInfo, session, identity}
	for _, f := range hostFamilies {
		s, err := newScratch()
		if err != nil {
			return err
		}
		defer s.Close()
		f.buf = s
	}
	for h := range doc.Hosts {
		status.add(1, h.Address, h.Name, h.Status)
		hostDuration.add(h.DurationMS/1000, h.Address, h.Name)
		for _, g := range h.Profiles {
			grade.add(1, h.Address, h.Name, g.Profile, string(g.Grade))
			for _, r := range g.Results {
				outcome.add(1, h.Address, h.Name, g.Profile, r.Requirement, string(r.Severity), string(r.Outcome))
			}
		}
		for _, p := range h.Ports {
			portState.add(1, h.Address, h.Name, p.Protocol, strconv.Itoa(p.Port), p.State)
			if p.RTTMS > 0 {
				portRTT.add(p.RTTMS/1000, h.Address, h.Name, p.Protocol, strconv.Itoa(p.Port))
			}
		}
		if nb := h.NetBIOS; nb != nil {
			nodeStatus.add(1, h.Address, h.Name, nb.State)
			if nb.State == "answered" {
				netbiosInfo.add(1, h.Address, h.Name, nb.ComputerName, nb.Workgroup, nb.MAC)
			}
		}
		if ss := h.Session; ss != nil {
			session.add(1, h.Address, h.Name, ss.State)
		}
		if id := h.Identity(); id != nil {
			version := ""
			if id.Version != nil {
				version = id.Version.String()
			}
			identity.add(1, h.Address, h.Name, id.NetBIOSComputer, id.NetBIOSDomain, id.DNSComputer, version)
		}
	}
	families := append([]*promFamily{info, start, end, duration, interrupted, hostsTotal, internal, hostsPerGrade}, hostFamilies...)
	bw := bufio.NewWriter(w)
	for _, f := range families {
		if f.samples == 0 {
			continue
		}
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s gauge\n", f.name, escapeHelp(f.help), f.name)
		if _, err := f.buf.WriteTo(bw); err != nil {
			return err
		}
	}
	return bw.Flush()
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// escapeHelp escapes a HELP text as the exposition format requires.
func escapeHelp(s string) string { return helpEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD")) }

// escapeLabel escapes a label value: backslash, double quote and line feed; bytes that are not UTF-8 become U+FFFD.
func escapeLabel(s string) string { return labelEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD")) }
