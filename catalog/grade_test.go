package catalog

import (
	"reflect"
	"testing"
)

// facts is a table of observations keyed by check, for grading tests.
type facts struct {
	obs         map[string]Observation
	unreachable bool
}

func (f facts) Observe(c Check) Observation {
	if o, ok := f.obs[c.String()]; ok {
		return o
	}
	return Observation{Skipped: "check not implemented yet"}
}

func (f facts) Unreachable() bool { return f.unreachable }

func state(s string) Observation { return Observation{State: s} }

func TestGradeRequirement(t *testing.T) {
	tcp445 := Check{Kind: "tcp", Port: 445, Pass: []string{"open"}}
	nbss := Check{Kind: "nbss", Port: 139, Pass: []string{"positive"}}
	udp138 := Check{Kind: "udp", Port: 138, Pass: []string{"open"}, Warn: []string{"open|filtered"}}
	notExposed := Check{Kind: "tcp", Port: 139, Pass: []string{"closed", "filtered"}}
	ofmPort := Check{Kind: "ofm-port", Pass: []string{"open"}}
	notAsked := Observation{Skipped: "no --ofm-port given", NotRequested: true}
	tests := []struct {
		name    string
		req     Requirement
		obs     map[string]Observation
		outcome Outcome
		reason  string
	}{
		{"all pass", Requirement{Severity: Required, Match: MatchAll, Checks: []Check{tcp445}},
			map[string]Observation{"tcp 445": state("open")}, Pass, ""},
		{"all fail", Requirement{Severity: Required, Match: MatchAll, Checks: []Check{tcp445}},
			map[string]Observation{"tcp 445": state("filtered")}, Fail, ""},
		{"warn state", Requirement{Severity: Required, Match: MatchAll, Checks: []Check{udp138}},
			map[string]Observation{"udp 138": state("open|filtered")}, Warn, ""},
		{"any: one path is enough", Requirement{Severity: Required, Match: MatchAny, Checks: []Check{tcp445, nbss}},
			map[string]Observation{"tcp 445": state("filtered"), "nbss 139": state("positive")}, Pass, ""},
		{"any: the other path not checked is not a pass", Requirement{Severity: Required, Match: MatchAny, Checks: []Check{tcp445, nbss}},
			map[string]Observation{"tcp 445": state("filtered")}, Skipped, "nbss 139: check not implemented yet"},
		{"any: every path fails", Requirement{Severity: Required, Match: MatchAny, Checks: []Check{tcp445, nbss}},
			map[string]Observation{"tcp 445": state("closed"), "nbss 139": state("negative")}, Fail, ""},
		{"all: a failure beats a skip", Requirement{Severity: Required, Match: MatchAll, Checks: []Check{tcp445, nbss}},
			map[string]Observation{"tcp 445": state("closed")}, Fail, ""},
		{"all: a skip is never a pass", Requirement{Severity: Required, Match: MatchAll, Checks: []Check{tcp445, nbss}},
			map[string]Observation{"tcp 445": state("open")}, Skipped, "nbss 139: check not implemented yet"},
		{"recommended failure warns", Requirement{Severity: Recommended, Match: MatchAll, Checks: []Check{notExposed}},
			map[string]Observation{"tcp 139": state("open")}, Warn, ""},
		{"advisory failure informs", Requirement{Severity: Advisory, Match: MatchAll, Checks: []Check{tcp445}},
			map[string]Observation{"tcp 445": state("closed")}, Info, ""},
		// A check the user did not ask for never hides a failed check beside it (a custom catalog's any-of 445 and
		// the OFM port, without --ofm-port, once graded a host with 445 filtered as passing).
		{"any: a failure beside a check not requested fails", Requirement{Severity: Required, Match: MatchAny, Checks: []Check{tcp445, ofmPort}},
			map[string]Observation{"tcp 445": state("filtered"), "ofm-port": notAsked}, Fail, ""},
		{"all: a failure beside a check not requested fails", Requirement{Severity: Required, Match: MatchAll, Checks: []Check{tcp445, ofmPort}},
			map[string]Observation{"tcp 445": state("filtered"), "ofm-port": notAsked}, Fail, ""},
		{"all: a pass beside a check not requested passes", Requirement{Severity: Required, Match: MatchAll, Checks: []Check{tcp445, ofmPort}},
			map[string]Observation{"tcp 445": state("open"), "ofm-port": notAsked}, Pass, ""},
		{"only checks not requested: not requested", Requirement{Severity: Required, Match: MatchAny, Checks: []Check{ofmPort}},
			map[string]Observation{"ofm-port": notAsked}, Skipped, "ofm-port: no --ofm-port given"},
	}
	for _, tc := range tests {
		tc.req.ID, tc.req.Fix = "r", "the fix"
		r := gradeRequirement(tc.req, facts{obs: tc.obs})
		if r.Outcome != tc.outcome || r.Reason != tc.reason {
			t.Errorf("%s: outcome %s (reason %q), want %s (%q)", tc.name, r.Outcome, r.Reason, tc.outcome, tc.reason)
		}
		if wantFix := tc.outcome == Fail || tc.outcome == Warn || tc.outcome == Info; (r.Fix != "") != wantFix {
			t.Errorf("%s: fix %q given for outcome %s", tc.name, r.Fix, r.Outcome)
		}
	}
}

func TestGradeHost(t *testing.T) {
	p, _ := Builtin().Profile("ofm-9.1")
	open445 := map[string]Observation{
		"tcp 445": {State: "open", Evidence: "tcp 445: open, connected in 0.3 ms"},
		"tcp 139": {State: "filtered"}, "tcp 135": {State: "closed"}, "tcp 53": {State: "closed"},
	}
	g := Grade(p, facts{obs: open445})
	if g.Grade != GradeIncomplete {
		t.Errorf("445 open, share not checked: grade %s, want incomplete", g.Grade)
	}
	want := []string{
		"smb-service: skipped, smb 445: check not implemented yet",
		"ofmlog-share: skipped, share: check not implemented yet",
		"ofmnt-log: skipped, file OFMNT.LOG: check not implemented yet",
		"ofmnt-adr: skipped, file OFMNT.ADR: check not implemented yet",
		"ofm-service-port: skipped, ofm-port: check not implemented yet",
	}
	if got := g.Reasons(); !reflect.DeepEqual(got, want) {
		t.Errorf("reasons:\n got %q\nwant %q", got, want)
	}

	blocked := map[string]Observation{
		"tcp 445": {State: "filtered", Evidence: "tcp 445: filtered, no answer to 2 attempts of 1.5s"},
		"tcp 139": {State: "open"}, "tcp 135": {State: "closed"}, "tcp 53": {State: "closed"},
	}
	g = Grade(p, facts{obs: blocked})
	if g.Grade != GradeFail || g.Results[0].Outcome != Fail || g.Results[0].Fix == "" {
		t.Errorf("445 filtered: grade %s, first result %+v; want fail with a fix", g.Grade, g.Results[0])
	}
	if got := g.Reasons()[0]; got != "smb-direct: tcp 445: filtered, no answer to 2 attempts of 1.5s" {
		t.Errorf("first reason %q", got)
	}

	g = Grade(p, facts{obs: blocked, unreachable: true})
	if g.Grade != GradeUnreachable {
		t.Errorf("unreachable host graded %s", g.Grade)
	}
}
