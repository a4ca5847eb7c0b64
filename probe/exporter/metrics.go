package exporter

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/report"
)

// probeResult is one probe of one host: the host's record and how long the probe took.
type probeResult struct {
	rec      report.HostRecord
	duration time.Duration
	finished time.Time
	// timedOut says the probe ran out of time (the scrape's, or the module's) before every step had ended.
	timedOut bool
}

// The states a port series is written for, 0 or 1 each, so that an alert can ask for state="open" == 0.
var portStates = []status.State{status.Open, status.Closed, status.Filtered, status.Unreachable, status.OpenFiltered, status.Error}

// The grades and outcomes in the order they are written.
var (
	grades   = []catalog.HostGrade{catalog.GradePass, catalog.GradeWarn, catalog.GradeIncomplete, catalog.GradeFail, catalog.GradeUnreachable}
	outcomes = []catalog.Outcome{catalog.Pass, catalog.Info, catalog.Warn, catalog.Skipped, catalog.Fail}
)

// ofmFiles are the files of OFMLOG$ the OFM UI reads, written as 0 when the share was not mounted.
var ofmFiles = []string{"OFMNT.LOG", "OFMNT.ADR"}

// probeRegistry builds the metrics of one probe in a fresh registry. No label carries evidence text: every label
// value comes from a bounded set (the catalog's IDs, the status vocabulary, the ports probed, the SMB dialects).
func probeRegistry(res probeResult, profile string, cached bool) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	vec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		reg.MustRegister(g)
		return g
	}
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	rec := res.rec
	var grading catalog.Grading
	for _, g := range rec.Profiles {
		if g.Profile == profile {
			grading = g
		}
	}
	gauge("probe_success", "1 when the host's grade for the module's profile is pass or warn: OFM can work there.").Set(b(grading.Grade.Passed()))
	gauge("probe_duration_seconds", "How long the probe took.").Set(res.duration.Seconds())
	gauge("ofmprobe_probe_cached", "1 when this is the last result again: the target was probed with this module less than min_interval ago, and was not probed for this scrape.").Set(b(cached))
	gauge("ofmprobe_probe_timed_out", "1 when the probe ran out of time (the scrape timeout or the module's) before every step ended: what is missing was not proven.").Set(b(res.timedOut))

	gv := vec("ofmprobe_grade", "The host's grade for the profile: 1 for its grade, 0 for the others (pass, warn, incomplete, fail, unreachable).", "profile", "grade")
	for _, g := range grades {
		gv.WithLabelValues(profile, string(g)).Set(b(grading.Grade == g))
	}
	okv := vec("ofmprobe_requirement_ok", "1 when the requirement passed (outcome pass or info), 0 when it failed, warned or went unverified.", "profile", "requirement", "severity")
	outv := vec("ofmprobe_requirement_outcome", "The requirement's outcome (pass, info, warn, skipped, fail); always 1.", "profile", "requirement", "severity", "outcome")
	causev := vec("ofmprobe_requirement_cause", "A root cause of a requirement that did not pass: the check and the state it ended in; always 1.", "profile", "requirement", "check", "state")
	for _, r := range grading.Results {
		if r.NotRequested {
			continue
		}
		sev := string(r.Severity)
		okv.WithLabelValues(profile, r.Requirement, sev).Set(b(r.Outcome == catalog.Pass || r.Outcome == catalog.Info))
		outv.WithLabelValues(profile, r.Requirement, sev, string(r.Outcome)).Set(1)
		if r.Cause == "" {
			continue
		}
		for _, part := range strings.Split(r.Cause, "; ") {
			check, state := causeLabels(part)
			causev.WithLabelValues(profile, r.Requirement, check, state).Set(1)
		}
	}

	portv := vec("ofmprobe_port_state", "A probed port's state: 1 for its state, 0 for the others (open, closed, filtered, unreachable, open|filtered, error).", "port", "protocol", "state")
	for _, p := range rec.Ports {
		port := strconv.Itoa(p.Port)
		for _, s := range portStates {
			portv.WithLabelValues(port, p.Protocol, string(s)).Set(b(p.State == string(s)))
		}
	}

	negv := vec("ofmprobe_smb_negotiated", "1 when an SMB2 or SMB1 negotiate succeeded over the port (445 direct, 139 through a NetBIOS session).", "port")
	infov := vec("ofmprobe_smb_info", "The dialect and signing of a successful SMB negotiate; always 1.", "port", "dialect", "signing")
	for _, s := range []*report.SMBRecord{rec.SMB, rec.SMB139} {
		if s == nil {
			continue
		}
		port := strconv.Itoa(s.Port)
		ok := s.Dialect != "" && (s.State == status.SMB2 || s.State == status.SMB1Only)
		negv.WithLabelValues(port).Set(b(ok))
		if ok {
			signing := "disabled"
			switch {
			case s.SigningRequired:
				signing = "required"
			case s.SigningEnabled:
				signing = "enabled"
			}
			infov.WithLabelValues(port, strings.TrimPrefix(s.Dialect, "SMB "), signing).Set(1)
		}
	}

	if rec.NetBIOS != nil || rec.Session != nil {
		exposed := (rec.NetBIOS != nil && rec.NetBIOS.State == string(status.Answered)) ||
			(rec.Session != nil && rec.Session.State == string(status.Positive))
		gauge("ofmprobe_netbios_exposed", "1 when the host answers NetBIOS node status on UDP 137 or accepts a NetBIOS session on TCP 139: it advertises its names without authentication.").Set(b(exposed))
		names := 0
		if rec.NetBIOS != nil {
			names = len(rec.NetBIOS.Names)
		}
		gauge("ofmprobe_netbios_names", "How many names the host's NetBIOS node status advertised.").Set(float64(names))
	}

	if sh := rec.Share; sh != nil {
		mounted := sh.State == status.Mounted
		vec("ofmprobe_share_mounted", "1 when the share was mounted (tree connect accepted).", "share").WithLabelValues(sh.Share).Set(b(mounted))
		fv := vec("ofmprobe_file_present", "1 when the OFM file is on the share; 0 when it is missing or the share was not mounted.", "share", "file")
		for _, name := range ofmFiles {
			present := false
			for _, f := range sh.Files {
				if strings.EqualFold(f.Name, name) && f.State == status.Present {
					present = true
				}
			}
			fv.WithLabelValues(sh.Share, name).Set(b(present))
		}
	}
	return reg
}

// causeStates are the states a cause part can end in (the status vocabulary), longest first so that "smb1 only"
// is found before "only" could be.
var causeStates = func() []string {
	states := []string{"open", "closed", "filtered", "unreachable", "open|filtered", "error", "timeout", "protocol error",
		"cancelled", "internal", "ok", "reset", "local resource", "denied", "missing", "answered", "positive", "negative",
		"smb2", "smb1 only", "no common dialect", "session refused", "accepted", "disabled", "bound", "rejected", "mounted",
		"access denied", "logon failure", "guest refused", "signing required", "refused", "present", "connected"}
	sort.Slice(states, func(i, j int) bool { return len(states[i]) > len(states[j]) })
	return states
}()

// causeLabels splits one part of a result's cause into the check and a bounded state: "tcp 445 filtered" into "tcp
// 445" and "filtered", "file OFMNT.LOG missing" into "file OFMNT.LOG" and "missing", "not checked: share not
// mounted" into "not checked" and the reason. The address of a firewall or router never becomes a label value: "tcp
// 445 rejected by 198.18.1.2" is "rejected", "tcp 135 dropped after 198.18.1.2" is "dropped".
func causeLabels(part string) (check, state string) {
	if reason, ok := strings.CutPrefix(part, "not checked: "); ok {
		return "not checked", reason
	}
	if i := strings.Index(part, " rejected"); i > 0 {
		return part[:i], "rejected"
	}
	if i := strings.Index(part, " dropped after "); i > 0 {
		return part[:i], "dropped"
	}
	for _, s := range causeStates {
		if c, ok := strings.CutSuffix(part, " "+s); ok {
			return c, s
		}
	}
	if i := strings.LastIndex(part, " "); i > 0 {
		return part[:i], part[i+1:]
	}
	return part, ""
}
