// Package steps is the one registry of ofmprobe's probe steps, and the plan a scan derives from it: the steps the
// selected profiles' checks need, narrowed by --steps, with what they require. Each step lives in the package of its
// protocol family (tcp, udp, nbt, smb, rpc), which owns its result type and how that result answers the catalog's
// checks; this file only lists them, as blackbox_exporter's prober map lists its probers.
package steps

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/steps/rpc"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
	"github.com/ofmprobe/ofmprobe/probe/steps/udp"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

// Config is what the steps need besides the engine's environment.
type Config struct {
	// Ports are the TCP ports to connect to; OFMPort is the OFM service port the user named, or 0.
	Ports   []int
	OFMPort int
	// UDPPorts are the UDP ports to send an empty datagram to (no safe query exists for them).
	UDPPorts []int
	// NetBIOS, SMB and EPMPort are the protocol steps' settings; the zero values are the well-known ports.
	NetBIOS nbt.Config
	SMB     smb.Config
	EPMPort uint16
	// MaxHops is how many hops the hop finder traces a silent TCP port through (--hops); 0 turns it off.
	MaxHops int
}

// withDefaults fills the well-known ports.
func (c Config) withDefaults() Config {
	if c.NetBIOS == (nbt.Config{}) {
		c.NetBIOS = nbt.DefaultConfig
	}
	if c.SMB.DirectPort == 0 {
		c.SMB.DirectPort = smb.DefaultConfig.DirectPort
	}
	if c.SMB.SessionPort == 0 {
		c.SMB.SessionPort = c.NetBIOS.SessionPort
	}
	if c.EPMPort == 0 {
		c.EPMPort = rpc.Port
	}
	return c
}

// TCPPorts is the ports the tcp steps connect to: Ports and the OFM port, sorted, once each.
func (c Config) TCPPorts() []int {
	ports := slices.Clone(c.Ports)
	if c.OFMPort != 0 {
		ports = append(ports, c.OFMPort)
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// Registry lists every step there is, for cfg.
func Registry(cfg Config) []engine.Step {
	cfg = cfg.withDefaults()
	var all []engine.Step
	all = append(all, tcp.Steps(cfg.TCPPorts(), cfg.OFMPort, max(cfg.MaxHops, 1))...)
	all = append(all, udp.Step(cfg.UDPPorts))
	all = append(all, nbt.NodeStatusStepFor(cfg.NetBIOS), nbt.SessionStepFor(cfg.NetBIOS))
	all = append(all, smb.Steps(cfg.SMB)...)
	all = append(all, rpc.Step(cfg.EPMPort))
	all = append(all, tcp.HopsStep(cfg.TCPPorts(), max(cfg.MaxHops, 1)))
	return all
}

// Keys lists the names --steps accepts, sorted.
func Keys() []string {
	seen := map[string]bool{}
	for _, s := range Registry(Config{Ports: []int{1}, UDPPorts: []int{1}}) {
		seen[s.Key] = true
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Plan derives the steps a scan runs: those that answer a check of the profiles (every step when profiles is nil),
// narrowed to the keys in only when it is not empty, together with every step they require. A step whose required
// step cannot run (its port is not among the TCP ports) is left out. The checks of the steps left out say why.
func Plan(cfg Config, profiles []catalog.Profile, only []string) (*engine.Plan, error) {
	cfg = cfg.withDefaults()
	all := Registry(cfg)
	known := Keys()
	for _, k := range only {
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("unknown step %q (want %s)", k, strings.Join(known, ", "))
		}
	}
	byName := make(map[string]engine.Step, len(all))
	for _, s := range all {
		byName[s.Name] = s
	}
	wanted := func(s engine.Step) bool {
		if len(only) > 0 && !slices.Contains(only, s.Key) {
			return false
		}
		if profiles == nil {
			return true
		}
		for _, k := range s.Answers {
			if catalog.Uses(profiles, k) {
				return true
			}
		}
		return false
	}
	chosen := map[string]bool{}
	var add func(name string) bool
	add = func(name string) bool {
		s, ok := byName[name]
		if !ok {
			return false
		}
		if chosen[name] {
			return true
		}
		for _, r := range s.Requires {
			if !add(r) {
				return false
			}
		}
		chosen[name] = true
		return true
	}
	for _, s := range all {
		if wanted(s) {
			add(s.Name)
		}
	}
	// The hop finder answers no check: it explains the connect steps' silence, so it comes with them when asked for
	// (--hops above 0) and --steps does not leave it out.
	if cfg.MaxHops > 0 && (len(only) == 0 || slices.Contains(only, "hops")) {
		for _, s := range all {
			if s.Key == "tcp" && chosen[s.Name] {
				chosen[tcp.HopsStepName] = true
				break
			}
		}
	}
	var steps []engine.Step
	answered := map[string]bool{}
	for _, s := range all {
		if chosen[s.Name] {
			steps = append(steps, s)
			for _, k := range s.Answers {
				answered[k] = true
			}
		}
	}
	left := map[string]catalog.Observation{}
	for _, s := range all {
		for _, k := range s.Answers {
			if answered[k] {
				continue
			}
			switch {
			case k == "ofm-port" && cfg.OFMPort == 0:
				left[k] = catalog.Observation{NotRequested: true, Skipped: tcp.NoOFMPort}
			case len(only) > 0 && !slices.Contains(only, s.Key):
				left[k] = catalog.Observation{Skipped: fmt.Sprintf("check not selected (--steps %s)", strings.Join(only, ","))}
			case len(s.Requires) > 0:
				left[k] = catalog.Observation{Skipped: fmt.Sprintf("not probed: %s needs %s, which is not in this scan's ports", s.Name, strings.Join(s.Requires, ", "))}
			default:
				left[k] = catalog.Observation{Skipped: "not needed by the selected profiles"}
			}
		}
	}
	if !answered["tcp"] {
		// No TCP port at all: the ofm-port kind has no step either.
		if _, ok := left["ofm-port"]; !ok && cfg.OFMPort == 0 {
			left["ofm-port"] = catalog.Observation{NotRequested: true, Skipped: tcp.NoOFMPort}
		}
	}
	return engine.NewPlan(steps, left)
}

// Facts is a finished host's results, typed: what the report writes. A field is nil when its step did not run.
type Facts struct {
	Ports   []engine.PortResult
	NetBIOS *nbt.NodeStatus
	Session *nbt.Session
	// SMB is the negotiate on 445, SMB139 the one over NetBIOS on 139 (made only when 445 gave no SMB answer).
	SMB, SMB139 *smb.SMBResult
	Share       *smb.ShareResult
	EPM         *rpc.EPMResult
	// Paths is where the silent TCP ports are dropped, when the hop finder ran.
	Paths tcp.Paths
}

// FactsOf reads a host's results. cfg must be the scan's.
func FactsOf(h *engine.Host, cfg Config) Facts {
	cfg = cfg.withDefaults()
	f := Facts{Ports: h.Ports()}
	f.NetBIOS, _ = nbt.NodeStatusOf(h)
	f.Session, _ = nbt.SessionOf(h)
	f.SMB, _ = smb.NegotiateOf(h, cfg.SMB.DirectPort)
	f.SMB139, _ = smb.NegotiateOf(h, cfg.SMB.SessionPort)
	f.Share, _ = smb.ShareOf(h, cfg.SMB)
	f.EPM, _ = rpc.EPMOf(h)
	f.Paths, _ = tcp.PathsOf(h)
	return f
}

// HostFromFacts builds a finished host from typed facts, on the plan of every step for cfg (the scan's ports): for
// tests, and for grading a host read back from a report.
func HostFromFacts(cfg Config, t targets.Target, f Facts) *engine.Host {
	cfg = cfg.withDefaults()
	plan, err := Plan(cfg, nil, nil)
	if err != nil {
		panic("steps: the full plan is invalid: " + err.Error())
	}
	results := map[string]engine.Result{}
	var udpPorts engine.PortList
	for _, p := range f.Ports {
		if p.Protocol == "tcp" {
			results[tcp.StepName(p.Port)] = p
		} else {
			udpPorts = append(udpPorts, p)
		}
	}
	if udpPorts != nil {
		results[udp.StepName] = udpPorts
	}
	set := func(name string, ok bool, r engine.Result) {
		if ok {
			results[name] = r
		}
	}
	set(nbt.NodeStatusStep, f.NetBIOS != nil, f.NetBIOS)
	set(nbt.SessionStep, f.Session != nil, f.Session)
	set(smb.NegotiateStep(cfg.SMB.DirectPort), f.SMB != nil, f.SMB)
	set(smb.NegotiateStep(cfg.SMB.SessionPort), f.SMB139 != nil, f.SMB139)
	if f.Share != nil {
		name := smb.ShareStep(cfg.SMB.DirectPort, true)
		if f.Share.Port == int(cfg.SMB.SessionPort) {
			name = smb.ShareStep(cfg.SMB.SessionPort, false)
		}
		results[name] = f.Share
	}
	set(rpc.StepName, f.EPM != nil, f.EPM)
	skipped := map[string]string{}
	if !t.Addr.Is4() {
		skipped[nbt.NodeStatusStep] = "NetBIOS runs over IPv4 only"
		skipped[nbt.SessionStep] = "NetBIOS runs over IPv4 only"
	}
	return engine.NewHost(plan, t, results, skipped)
}
