package catalog

import (
	"fmt"
	"slices"
	"strings"
)

// Observation is what a probe saw for one check: the state it reached and the evidence for it, or why it did not run.
type Observation struct {
	// State is one of the states Kinds lists for the check's kind; empty when the check did not run.
	State string
	// Evidence says what the peer did, in the user's terms ("tcp 445: open in 0.4 ms").
	Evidence string
	// Skipped, when set, says why the check did not run ("check not implemented yet", "no --ofm-port given").
	Skipped string
	// NotRequested marks a skip the user chose (a check that needs an input they did not give): it is reported, but
	// does not make the host incomplete.
	NotRequested bool
	// Cause, when set, names the check and state this observation follows from, when that is another check's: "tcp
	// 445 filtered" for an SMB negotiate that was not attempted because of it. Empty: the check's own state.
	Cause string
}

// Facts is what a host's probes observed. The probe package implements it.
type Facts interface {
	// Observe returns the observation for one check.
	Observe(Check) Observation
	// Unreachable reports whether the host answered nothing at all.
	Unreachable() bool
}

// Outcome is the result of grading one requirement.
type Outcome string

// The outcomes, from best to worst. Info is an advisory requirement that did not pass: reported, never counted.
const (
	Pass    Outcome = "pass"
	Info    Outcome = "info"
	Warn    Outcome = "warn"
	Skipped Outcome = "skipped"
	Fail    Outcome = "fail"
)

// HostGrade is a host's overall grade for one profile.
type HostGrade string

// The host grades, from best to worst. Incomplete means nothing failed, but a required check could not run, so the host
// is not proven to pass. Unreachable means the host answered nothing at all.
const (
	GradePass        HostGrade = "pass"
	GradeWarn        HostGrade = "warn"
	GradeIncomplete  HostGrade = "incomplete"
	GradeFail        HostGrade = "fail"
	GradeUnreachable HostGrade = "unreachable"
)

// Passed reports whether the grade counts as passing (pass or warn).
func (g HostGrade) Passed() bool { return g == GradePass || g == GradeWarn }

// Result is one requirement's outcome for one host, with the evidence behind it and what to do about it.
//
// Title, Severity, Why and Fix are the requirement's own, the same for every host: a report writes them once, in its
// run record's catalog, and fills them in again when it reads a host back, so they have no JSON of their own.
type Result struct {
	Requirement string   `json:"requirement"`
	Title       string   `json:"-"`
	Severity    Severity `json:"-"`
	Outcome     Outcome  `json:"outcome"`
	// Evidence is what the checks observed, one line per check.
	Evidence []string `json:"evidence"`
	// Reason says why the requirement was skipped.
	Reason string `json:"reason,omitempty"`
	// NotRequested says the requirement was skipped because the user did not ask for its check.
	NotRequested bool `json:"not_requested,omitempty"`
	// Cause is the root of an outcome other than pass and info: the checks that did not pass, each as the check and
	// state it follows from ("tcp 445 filtered; tcp 139 closed"). Requirements that fail for the same cause, on
	// any host, fail for one reason with one fix: a report groups them.
	Cause string `json:"cause,omitempty"`
	Why   string `json:"-"`
	// Fix is the requirement's fix when the outcome calls for one (fail, warn, info).
	Fix string `json:"-"`
}

// NeedsFix says whether an outcome calls for the requirement's fix.
func NeedsFix(o Outcome) bool { return o == Fail || o == Warn || o == Info }

// Grading is a host's grade for one profile and every requirement's result.
type Grading struct {
	Profile string    `json:"profile"`
	Grade   HostGrade `json:"grade"`
	Results []Result  `json:"results"`
}

// Reasons returns the titles of the requirements that failed, then those that warned, with their first evidence.
func (g Grading) Reasons() []string {
	var out []string
	for _, want := range []Outcome{Fail, Warn, Skipped} {
		for _, r := range g.Results {
			if r.Outcome != want || (want == Skipped && r.Severity != Required) {
				continue
			}
			s := r.Requirement
			switch {
			case r.Outcome == Skipped:
				s += ": skipped, " + r.Reason
			case len(r.Evidence) > 0:
				s += ": " + r.Evidence[0]
			}
			out = append(out, s)
		}
	}
	return out
}

// Grade grades a host's facts against a profile. Every requirement gets a result; the host's grade is the worst
// outcome of its required and recommended requirements, or unreachable when the host answered nothing.
func Grade(p Profile, facts Facts) Grading {
	g := Grading{Profile: p.ID, Grade: GradePass, Results: make([]Result, 0, len(p.Requirements))}
	for _, req := range p.Requirements {
		r := gradeRequirement(req, facts)
		g.Results = append(g.Results, r)
		if !r.NotRequested {
			g.Grade = worse(g.Grade, hostEffect(req.Severity, r.Outcome))
		}
	}
	if facts.Unreachable() {
		g.Grade = GradeUnreachable
	}
	return g
}

// gradeNote is what one check adds to a requirement's cause or skip reasons; the strings are built only when the
// outcome shows them (most requirements pass, and their checks' notes are never read).
type gradeNote struct {
	check  *Check
	text   string // a skip's reason, or a failed check's own cause
	state  string // a failed check's state, when it has no cause of its own
	skip   bool
	counts bool // a skip that counts (the user asked for the check): it is a cause too
}

func gradeRequirement(req Requirement, facts Facts) Result {
	r := Result{Requirement: req.ID, Title: req.Title, Severity: req.Severity, Why: req.Why}
	var pass, warn, fail, skipped, notRequested int
	var buf [8]gradeNote
	notes := buf[:0]
	for i := range req.Checks {
		c := &req.Checks[i]
		o := facts.Observe(*c)
		if o.Skipped != "" || o.State == "" {
			reason := o.Skipped
			if reason == "" {
				reason = "no observation"
			}
			skipped++
			if o.NotRequested {
				notRequested++
			}
			notes = append(notes, gradeNote{check: c, text: reason, skip: true, counts: !o.NotRequested})
			continue
		}
		ev := o.Evidence
		if ev == "" {
			ev = c.String() + ": " + o.State
		}
		r.Evidence = append(r.Evidence, ev)
		switch {
		case slices.Contains(c.Pass, o.State):
			pass++
			continue
		case slices.Contains(c.Warn, o.State):
			warn++
		default:
			fail++
		}
		notes = append(notes, gradeNote{check: c, text: o.Cause, state: o.State})
	}
	// A check the user did not ask for is left out: it never counts, and never hides a failed check beside it.
	requestedSkips := skipped - notRequested
	var out Outcome
	switch {
	case pass+warn+fail+requestedSkips == 0:
		out = Skipped
		r.NotRequested = true
	case req.Match == MatchAny && pass > 0:
		out = Pass
	case req.Match == MatchAny && warn > 0:
		out = Warn
	case req.Match == MatchAny && requestedSkips > 0:
		out = Skipped
	case req.Match == MatchAny:
		out = Fail
	case fail > 0:
		out = Fail
	case requestedSkips > 0:
		out = Skipped
	case warn > 0:
		out = Warn
	default:
		out = Pass
	}
	if out == Skipped {
		var reasons []string
		for _, n := range notes {
			if n.skip {
				reasons = append(reasons, n.check.String()+": "+n.text)
			}
		}
		r.Reason = strings.Join(reasons, "; ")
	}
	// The severity decides what a failure means: required fails, recommended warns, advisory informs.
	switch {
	case out == Fail && req.Severity == Recommended:
		out = Warn
	case (out == Fail || out == Warn) && req.Severity == Advisory:
		out = Info
	}
	r.Outcome = out
	if NeedsFix(out) {
		r.Fix = req.Fix
	}
	if out == Fail || out == Warn || (out == Skipped && !r.NotRequested && req.Severity == Required) {
		r.Cause = joinCauses(notes)
	}
	if r.Evidence == nil {
		r.Evidence = []string{}
	}
	return r
}

// joinCauses is a requirement's cause: each failed check's own cause (or its check and state), and for each skip
// the user asked for, the reason's class ("not checked: ..."; the share, IPC$ and file checks a share mount that
// never ran would have answered are one cause), in the checks' order, each once.
func joinCauses(notes []gradeNote) string {
	var causes []string
	for _, n := range notes {
		var s string
		switch {
		case n.skip && !n.counts:
			continue
		case n.skip:
			s = "not checked: " + reasonClass(n.text)
		case n.text != "":
			s = n.text
		default:
			s = n.check.String() + " " + n.state
		}
		if !slices.Contains(causes, s) {
			causes = append(causes, s)
		}
	}
	return strings.Join(causes, "; ")
}

// hostEffect is what a requirement's outcome does to the host's grade.
func hostEffect(sev Severity, o Outcome) HostGrade {
	switch o {
	case Fail:
		return GradeFail
	case Warn:
		return GradeWarn
	case Skipped:
		if sev == Required {
			return GradeIncomplete
		}
	}
	return GradePass
}

var gradeRank = map[HostGrade]int{GradePass: 0, GradeWarn: 1, GradeIncomplete: 2, GradeFail: 3, GradeUnreachable: 4}

func worse(a, b HostGrade) HostGrade {
	if gradeRank[b] > gradeRank[a] {
		return b
	}
	return a
}

// ParseGrade checks a grade name from a report.
func ParseGrade(s string) (HostGrade, error) {
	g := HostGrade(s)
	if _, ok := gradeRank[g]; !ok {
		return "", fmt.Errorf("unknown grade %q", s)
	}
	return g, nil
}

// reasonClass is the part of a skip reason that is the same on every host it applies to: what comes before the
// evidence that follows a colon ("IPC$ was not reached: share mount 445: ..." is "IPC$ was not reached").
func reasonClass(reason string) string {
	if i := strings.Index(reason, ": "); i >= 0 {
		reason = reason[:i]
	}
	if len(reason) > 80 {
		reason = reason[:80]
	}
	return reason
}
