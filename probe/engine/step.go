package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// Result is what a step returns: its own type, which the step's package documents and reads back.
type Result any

// Step is one registered probe step: what it is called, what it needs, how it runs and which catalog checks its
// result answers. The engine reads these declarations and never knows what a step speaks.
//
// A step runs in one of two ways. Run steps hold one socket of the scan's budget and a worker goroutine while they
// run (a TCP connect, an SMB exchange). Start steps hand their I/O to the engine's datagram mux and return at once:
// while they wait for answers they hold no socket and no goroutine, and done is called when they are decided.
type Step struct {
	// Name identifies the step in the plan and in evidence: "tcp 445", "nbstat", "smb negotiate 139".
	Name string
	// Key is the name --steps selects it by ("tcp", "smb"); several steps may share one.
	Key string
	// Connect marks a step that connects to one TCP port of the host: Host.Peers tells such a step, about to call
	// its port's silence final, whether the host's other connects are still running.
	Connect bool
	// Answers lists the catalog check kinds the step's result answers.
	Answers []string
	// Requires names the steps that must run before this one: the plan includes them when it includes this step.
	Requires []string
	// After names steps whose results this step reads when they are in the plan; they are decided first.
	After []string
	// When, if set, is asked once every step in Requires and After is decided: false skips the step, with the
	// reason (port 139 not open, an IPv6 host).
	When func(h *Host) (bool, string)
	// Run probes and returns the result; it holds a socket while it runs. Exactly one of Run and Start is set.
	Run func(ctx context.Context, env *Env, h *Host) Result
	// Start begins the step and returns; done is called exactly once with the result, from any goroutine.
	Start func(ctx context.Context, env *Env, h *Host, done func(Result))
	// Internal is the result to record when the step panicked; nil records none.
	Internal func(reason string) Result
	// Observe answers a check of one of the kinds in Answers from the host's results.
	Observe func(h *Host, c catalog.Check) catalog.Observation
}

// Plan is the steps a scan runs, in an order where every step comes after those it requires or reads.
type Plan struct {
	steps []Step
	index map[string]int
	// deps[i] lists the steps that step i waits for (Requires, and After when in the plan).
	deps [][]int
	// observer maps a check kind to the step that answers it.
	observer map[string]int
	// left answers the checks of kinds whose steps are not in the plan, with the reason the registry gave.
	left map[string]catalog.Observation
	// roots counts the steps that wait for no other: the first probes of a host (its ports, node status); tcpRoots
	// those of them that connect to a TCP port (Step.Connect).
	roots, tcpRoots int
}

// NewPlan checks the steps and orders them. Every name must be unique, every Requires must name a step of the plan,
// and the dependencies must not form a cycle. left answers the check kinds whose steps are not in the plan (a skip
// with the reason: "not selected by --steps"), so that their checks say why they did not run.
func NewPlan(steps []Step, left map[string]catalog.Observation) (*Plan, error) {
	p := &Plan{index: make(map[string]int, len(steps)), observer: make(map[string]int), left: left}
	byName := make(map[string]Step, len(steps))
	for _, s := range steps {
		switch {
		case s.Name == "":
			return nil, errors.New("a step has no name")
		case (s.Run == nil) == (s.Start == nil):
			return nil, fmt.Errorf("step %s: exactly one of Run and Start must be set", s.Name)
		}
		if _, dup := byName[s.Name]; dup {
			return nil, fmt.Errorf("step %s is registered twice", s.Name)
		}
		byName[s.Name] = s
	}
	// Order depth-first, dependencies first, keeping the given order where nothing forces another.
	const (
		unvisited = iota
		visiting
		placed
	)
	mark := make(map[string]int, len(steps))
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch mark[name] {
		case placed:
			return nil
		case visiting:
			return fmt.Errorf("steps depend on each other in a cycle: %v", append(path, name))
		}
		mark[name] = visiting
		s := byName[name]
		for _, r := range s.Requires {
			if _, ok := byName[r]; !ok {
				return fmt.Errorf("step %s requires %s, which is not in the plan", name, r)
			}
			if err := visit(r, append(path, name)); err != nil {
				return err
			}
		}
		for _, a := range s.After {
			if _, ok := byName[a]; ok {
				if err := visit(a, append(path, name)); err != nil {
					return err
				}
			}
		}
		mark[name] = placed
		p.index[name] = len(p.steps)
		p.steps = append(p.steps, s)
		return nil
	}
	for _, s := range steps {
		if err := visit(s.Name, nil); err != nil {
			return nil, err
		}
	}
	p.deps = make([][]int, len(p.steps))
	for i, s := range p.steps {
		for _, d := range slices.Concat(s.Requires, s.After) {
			if j, ok := p.index[d]; ok && !slices.Contains(p.deps[i], j) {
				p.deps[i] = append(p.deps[i], j)
			}
		}
		if len(p.deps[i]) == 0 {
			p.roots++
			if s.Connect {
				p.tcpRoots++
			}
		}
		for _, k := range s.Answers {
			if _, ok := p.observer[k]; !ok && s.Observe != nil {
				p.observer[k] = i
			}
		}
	}
	return p, nil
}

// Steps lists the plan's step names in the order they are considered.
func (p *Plan) Steps() []string {
	names := make([]string, len(p.steps))
	for i, s := range p.steps {
		names[i] = s.Name
	}
	return names
}

// Connects reports whether the plan has a step that connects to a TCP port of the host (Step.Connect).
func (p *Plan) Connects() bool { return p.tcpRoots > 0 }

// Has reports whether the plan includes the named step.
func (p *Plan) Has(name string) bool { _, ok := p.index[name]; return ok }

// Answers reports whether some step of the plan answers checks of kind.
func (p *Plan) Answers(kind string) bool { _, ok := p.observer[kind]; return ok }
