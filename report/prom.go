package report

import (
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

// promFamily is one metric family and its samples, which all carry the same label names.
type promFamily struct {
	name, help string
	labels     []string
	samples    []promSample
}

type promSample struct {
	values []string // label values, in the order of the family's labels
	value  float64
}

func (f *promFamily) add(value float64, labelValues ...string) {
	f.samples = append(f.samples, promSample{values: labelValues, value: value})
}

// writeProm writes the report as Prometheus metrics; docs/reports.md lists them.
func writeProm(w io.Writer, doc Document) error {
	run := doc.Run
	boolValue := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	info := &promFamily{name: "ofmprobe_scan_info", help: "The scan's ofmprobe version, report schema and vantage point (the scanning machine's addresses); always 1.",
		labels: []string{"version", "schema", "vantage"}}
	info.add(1, run.Version, strconv.Itoa(doc.Schema), strings.Join(run.Vantage, " "))
	start := &promFamily{name: "ofmprobe_scan_start_timestamp_seconds", help: "When the scan started, in seconds since the Unix epoch."}
	start.add(float64(run.Started.UnixMilli()) / 1000)
	end := &promFamily{name: "ofmprobe_scan_end_timestamp_seconds", help: "When the scan finished, in seconds since the Unix epoch."}
	if !run.Finished.IsZero() {
		end.add(float64(run.Finished.UnixMilli()) / 1000)
	}
	duration := &promFamily{name: "ofmprobe_scan_duration_seconds", help: "How long the scan took."}
	duration.add(run.Duration().Seconds())
	interrupted := &promFamily{name: "ofmprobe_scan_interrupted", help: "1 if the scan was interrupted and the report holds only the hosts finished by then."}
	interrupted.add(boolValue(run.Interrupted))
	hostsTotal := &promFamily{name: "ofmprobe_scan_hosts", help: "Hosts in the report."}
	hostsTotal.add(float64(doc.Summary.Hosts))
	internal := &promFamily{name: "ofmprobe_scan_internal_errors", help: "Hosts whose probes failed inside ofmprobe (a bug: see --debug)."}
	internal.add(float64(doc.Summary.Internal))
	hostsPerGrade := &promFamily{name: "ofmprobe_hosts", help: "Hosts per grade and profile; every grade is listed, 0 included.",
		labels: []string{"profile", "grade"}}
	for _, p := range run.Profiles {
		for _, g := range gradeOrder {
			hostsPerGrade.add(float64(doc.Summary.Grades[p][g]), p, string(g))
		}
	}

	hostLabels := []string{"address", "name"}
	with := func(extra ...string) []string { return append(append([]string{}, hostLabels...), extra...) }
	status := &promFamily{name: "ofmprobe_host_status", help: "The host's status (up, unreachable, internal); always 1.", labels: with("status")}
	hostDuration := &promFamily{name: "ofmprobe_host_duration_seconds", help: "How long probing the host took.", labels: with()}
	grade := &promFamily{name: "ofmprobe_host_grade", help: "The host's grade for a profile (pass, warn, incomplete, fail, unreachable); always 1.",
		labels: with("profile", "grade")}
	outcome := &promFamily{name: "ofmprobe_requirement_outcome", help: "A requirement's outcome for the host (pass, info, warn, skipped, fail); always 1.",
		labels: with("profile", "requirement", "severity", "outcome")}
	portState := &promFamily{name: "ofmprobe_port_state", help: "A port's state (open, closed, filtered, open|filtered, unreachable, error); always 1.",
		labels: with("protocol", "port", "state")}
	portRTT := &promFamily{name: "ofmprobe_port_rtt_seconds", help: "The round trip of the attempt that decided a port's state, when it got an answer.",
		labels: with("protocol", "port")}
	nodeStatus := &promFamily{name: "ofmprobe_netbios_node_status_state", help: "The NetBIOS node status answer on UDP 137 (answered, open|filtered, closed, protocol error, unreachable); always 1.",
		labels: with("state")}
	netbiosInfo := &promFamily{name: "ofmprobe_netbios_info", help: "The names a host gave in its NetBIOS node status; always 1.",
		labels: with("computer_name", "workgroup", "mac")}
	session := &promFamily{name: "ofmprobe_netbios_session_state", help: "The NetBIOS session request on TCP 139 (positive, negative, timeout, protocol error, ...); always 1.",
		labels: with("state")}
	for _, h := range doc.Hosts {
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
	}
	families := []*promFamily{info, start, end, duration, interrupted, hostsTotal, internal, hostsPerGrade,
		status, hostDuration, grade, outcome, portState, portRTT, nodeStatus, netbiosInfo, session}
	var b strings.Builder
	for _, f := range families {
		if len(f.samples) == 0 {
			continue
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", f.name, escapeHelp(f.help), f.name)
		for _, s := range f.samples {
			b.WriteString(f.name)
			if len(f.labels) > 0 {
				b.WriteByte('{')
				for i, l := range f.labels {
					if i > 0 {
						b.WriteByte(',')
					}
					b.WriteString(l)
					b.WriteString(`="`)
					b.WriteString(escapeLabel(s.values[i]))
					b.WriteByte('"')
				}
				b.WriteByte('}')
			}
			b.WriteByte(' ')
			b.WriteString(strconv.FormatFloat(s.value, 'f', -1, 64))
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// escapeHelp escapes a HELP text as the exposition format requires.
func escapeHelp(s string) string { return helpEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD")) }

// escapeLabel escapes a label value: backslash, double quote and line feed; bytes that are not UTF-8 become U+FFFD.
func escapeLabel(s string) string { return labelEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD")) }
