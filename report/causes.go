package report

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// Cause is one root cause across a report: the checks and states that made requirements fail (or warn, or go
// unverified) on some hosts, every requirement it broke, how many hosts it covers and the fix.
type Cause struct {
	// Cause names the checks that did not pass, each as the check and state it follows from: "tcp 445 filtered;
	// tcp 139 closed".
	Cause string `json:"cause"`
	// Outcome is the worst outcome it caused: fail, then skipped (not verified), then warn.
	Outcome catalog.Outcome `json:"outcome"`
	// Profile and Requirement are the first requirement it broke, in profile and catalog order: the one whose fix
	// comes first. Also lists the others.
	Profile     string               `json:"profile"`
	Requirement string               `json:"requirement"`
	Also        []ProfileRequirement `json:"also,omitempty"`
	// Hosts is how many hosts it covers; Addresses the lowest of them, at most MaxCauseAddresses, with
	// AddressesTruncated set when there are more.
	Hosts              int      `json:"hosts"`
	Addresses          []string `json:"addresses"`
	AddressesTruncated bool     `json:"addresses_truncated,omitempty"`
	// Fix is the first requirement's fix.
	Fix string `json:"fix"`
	// Action is what to do on the hosts as observed from the run's vantage point: the port, who could not reach it,
	// the Windows services on it and a command to paste, where those follow from the cause (catalog.Action); empty
	// when only the fix applies.
	Action string `json:"action,omitempty"`
}

// ProfileRequirement names a requirement within its profile.
type ProfileRequirement struct {
	Profile     string `json:"profile"`
	Requirement string `json:"requirement"`
}

// MaxCauseAddresses bounds the addresses a cause lists.
const MaxCauseAddresses = 20

// causeSet gathers the causes of the hosts added to a summary. Its memory is bounded by the number of distinct
// causes, not of hosts.
type causeSet struct {
	by map[string]*causeAcc
}

type causeAcc struct {
	hosts   int
	worst   catalog.Outcome
	reqs    map[ProfileRequirement]reqAt
	addrs   []hostAddr // the lowest addresses, sorted
	more    bool
	lastKey int // the index of the last host counted, so a host counts once
}

// reqAt is where a requirement sits in a host's gradings (profile, then result), which orders a cause's
// requirements; and its fix.
type reqAt struct {
	profile, result int
	fix             string
}

// hostAddr orders addresses numerically, and what does not parse after them, as text.
type hostAddr struct {
	ip   netip.Addr
	text string
}

func (a hostAddr) compare(b hostAddr) int {
	if a.ip.IsValid() != b.ip.IsValid() {
		if a.ip.IsValid() {
			return -1
		}
		return 1
	}
	if c := a.ip.Compare(b.ip); c != 0 {
		return c
	}
	return cmp.Compare(a.text, b.text)
}

// outcomeWeight orders the outcomes a cause can have, worst last.
func outcomeWeight(o catalog.Outcome) int {
	switch o {
	case catalog.Fail:
		return 3
	case catalog.Skipped:
		return 2
	case catalog.Warn:
		return 1
	}
	return 0
}

// add counts a host's causes. Unreachable hosts (nothing answered: they have one cause, absence, which the host
// counts already show) and hosts that failed inside ofmprobe have none.
func (cs *causeSet) add(n int, r HostRecord) {
	if r.Status == "internal" || r.Status == "unreachable" {
		return
	}
	if cs.by == nil {
		cs.by = map[string]*causeAcc{}
	}
	ip, err := netip.ParseAddr(r.Address)
	addr := hostAddr{ip: ip, text: r.Address}
	if err != nil {
		addr = hostAddr{text: r.Address}
	}
	for i, g := range r.Profiles {
		if g.Grade == catalog.GradeUnreachable {
			continue
		}
		for j, res := range g.Results {
			if res.Cause == "" || outcomeWeight(res.Outcome) == 0 {
				continue
			}
			a := cs.by[res.Cause]
			if a == nil {
				a = &causeAcc{reqs: map[ProfileRequirement]reqAt{}, lastKey: -1}
				cs.by[res.Cause] = a
			}
			if outcomeWeight(res.Outcome) > outcomeWeight(a.worst) {
				a.worst = res.Outcome
			}
			key := ProfileRequirement{Profile: g.Profile, Requirement: res.Requirement}
			if _, ok := a.reqs[key]; !ok {
				a.reqs[key] = reqAt{profile: i, result: j, fix: res.Fix}
			}
			if a.lastKey == n {
				continue
			}
			a.lastKey = n
			a.hosts++
			a.keep(addr)
		}
	}
}

// keep adds an address to the lowest MaxCauseAddresses.
func (a *causeAcc) keep(addr hostAddr) {
	i, _ := slices.BinarySearchFunc(a.addrs, addr, hostAddr.compare)
	if len(a.addrs) < MaxCauseAddresses {
		a.addrs = slices.Insert(a.addrs, i, addr)
		return
	}
	a.more = true
	if i < len(a.addrs) {
		a.addrs = slices.Insert(a.addrs[:len(a.addrs)-1], i, addr)
	}
}

// list returns the causes, the most hosts first.
func (cs *causeSet) list() []Cause {
	out := make([]Cause, 0, len(cs.by))
	for text, a := range cs.by {
		reqs := make([]ProfileRequirement, 0, len(a.reqs))
		for k := range a.reqs {
			reqs = append(reqs, k)
		}
		slices.SortFunc(reqs, func(x, y ProfileRequirement) int {
			px, py := a.reqs[x], a.reqs[y]
			return cmp.Or(cmp.Compare(px.profile, py.profile), cmp.Compare(px.result, py.result),
				cmp.Compare(x.Profile, y.Profile), cmp.Compare(x.Requirement, y.Requirement))
		})
		c := Cause{Cause: text, Outcome: a.worst, Profile: reqs[0].Profile, Requirement: reqs[0].Requirement,
			Also: reqs[1:], Hosts: a.hosts, AddressesTruncated: a.more, Fix: a.reqs[reqs[0]].fix}
		if len(c.Also) == 0 {
			c.Also = nil
		}
		c.Addresses = make([]string, len(a.addrs))
		for i, ad := range a.addrs {
			c.Addresses[i] = ad.text
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(x, y Cause) int {
		return cmp.Or(cmp.Compare(y.Hosts, x.Hosts), cmp.Compare(outcomeWeight(y.Outcome), outcomeWeight(x.Outcome)),
			cmp.Compare(x.Profile, y.Profile), cmp.Compare(x.Requirement, y.Requirement), cmp.Compare(x.Cause, y.Cause))
	})
	return out
}
