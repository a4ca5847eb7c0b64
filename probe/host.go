package probe

import (
	"fmt"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// The host statuses. Up: something answered, even if only with refusals. Unreachable: every probe met silence or an
// unreachable answer. Internal: a probe failed inside ofmprobe (a bug); the facts gathered before it are kept.
const (
	HostUp          = "up"
	HostUnreachable = "unreachable"
	HostInternal    = "internal"
)

// notImplemented is the reason given for requirements whose checks later versions add.
const notImplemented = "check not implemented yet"

// Host is everything the probes observed about one target. It implements catalog.Facts.
type Host struct {
	Target
	Status   string        `json:"status"`
	Ports    []PortResult  `json:"ports"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"-"`
	// Aborted says the scan was aborted (a second Ctrl-C) while this host was probed: its later steps did not run.
	Aborted bool `json:"aborted,omitempty"`
	// Error is the internal failure behind StatusInternal.
	Error string `json:"error,omitempty"`
	// Stack is the goroutine stack of an internal failure, shown only in debug output.
	Stack string `json:"-"`
	// NetBIOS is what node status on UDP 137 said; nil when it was not asked.
	NetBIOS *NodeStatus `json:"netbios,omitempty"`
	// Session is the NetBIOS session request on TCP 139; nil when it was not made.
	Session *Session `json:"session,omitempty"`
	// SMB is the negotiate on 445, SMB139 the one over NetBIOS on 139 (made only when 445 gave no SMB answer).
	SMB    *SMBResult `json:"smb,omitempty"`
	SMB139 *SMBResult `json:"smb139,omitempty"`
	// Share is the OFMLOG$ mount with the OFM files and IPC$; nil when it was not attempted.
	Share *ShareResult `json:"share,omitempty"`
	// EPM is the endpoint-mapper bind on 135.
	EPM *EPMResult `json:"epm,omitempty"`

	ofmPort        int
	netbiosSkipped string
}

// Port returns the result for a TCP port, if it was probed.
func (h *Host) Port(port int) (PortResult, bool) { return h.portProto(port, "tcp") }

// UDPPort returns the result for a UDP port, if it was probed.
func (h *Host) UDPPort(port int) (PortResult, bool) { return h.portProto(port, "udp") }

func (h *Host) portProto(port int, proto string) (PortResult, bool) {
	for _, p := range h.Ports {
		if p.Port == port && p.Protocol == proto {
			return p, true
		}
	}
	return PortResult{}, false
}

// Unreachable reports whether nothing answered: every probe met silence or an unreachable answer. A refusal, an ICMP
// port unreachable or any reply means the host is there.
func (h *Host) Unreachable() bool {
	probed := false
	for _, p := range h.Ports {
		switch p.State {
		case StateFiltered, StateUnreachable, StateOpenFiltered:
			probed = true
		case StateError:
			// This machine failed to probe the port: neither an answer nor silence.
		default:
			return false
		}
	}
	if h.NetBIOS != nil && h.NetBIOS.State != StateError {
		probed = true
		if h.NetBIOS.State != NBSilent && h.NetBIOS.State != NBUnreachable {
			return false
		}
	}
	return probed
}

// Observe returns what the host's probes saw for one catalog check. A check whose protocol step needs a TCP port that
// was found not open gets that port's state: the step cannot run, and its outcome is known without it.
func (h *Host) Observe(c catalog.Check) catalog.Observation {
	switch c.Kind {
	case "tcp":
		return h.observePort(c.Port, "--ports")
	case "ofm-port":
		if h.ofmPort == 0 {
			return catalog.Observation{NotRequested: true, Skipped: "no --ofm-port given (no public source names the port OFM 9.1 uses; it is recorded in OFMNT.ADR)"}
		}
		return h.observePort(h.ofmPort, "--ofm-port")
	case "udp":
		p, ok := h.UDPPort(c.Port)
		switch {
		case !ok:
			return catalog.Observation{Skipped: fmt.Sprintf("udp %d was not probed", c.Port)}
		case p.State == StateError:
			return catalog.Observation{Skipped: p.Evidence}
		}
		return catalog.Observation{State: p.State, Evidence: p.Evidence}
	case "nbstat":
		switch {
		case h.netbiosSkipped != "":
			return catalog.Observation{Skipped: h.netbiosSkipped}
		case h.NetBIOS == nil:
			return catalog.Observation{Skipped: "node status was not asked"}
		}
		return stepObservation(h.NetBIOS.State, h.NetBIOS.Evidence)
	case "nbss":
		if h.netbiosSkipped != "" {
			return catalog.Observation{Skipped: h.netbiosSkipped}
		}
		if o, blocked := h.portNotOpen(c.Kind, c.Port); blocked {
			return o
		}
		if h.Session != nil && c.Port == 139 {
			if h.Session.State == StateError {
				return catalog.Observation{Skipped: h.Session.Evidence}
			}
			return catalog.Observation{State: h.Session.State, Evidence: h.Session.Evidence}
		}
	case "smb":
		if o, blocked := h.portNotOpen(c.Kind, c.Port); blocked {
			return o
		}
		return h.observeSMB(c.Port)
	case "smb1":
		return h.observeSMB1()
	case "epm":
		if o, blocked := h.portNotOpen(c.Kind, c.Port); blocked {
			return o
		}
		if h.EPM != nil {
			return stepObservation(h.EPM.State, h.EPM.Evidence)
		}
	case "share", "file", "ipc":
		if o, blocked := h.noSMBPort(c.Kind); blocked {
			return o
		}
		return h.observeShare(c)
	}
	return catalog.Observation{Skipped: notImplemented}
}

// stepObservation turns a step's state into an observation; an error state (cancelled, internal) is a skip.
func stepObservation(state, evidence string) catalog.Observation {
	if state == StateError || state == "" || state == "cancelled" || state == "internal" {
		return catalog.Observation{Skipped: evidence}
	}
	return catalog.Observation{State: state, Evidence: evidence}
}

func (h *Host) observeSMB(port int) catalog.Observation {
	switch {
	case port == 445 && h.SMB != nil:
		return stepObservation(h.SMB.State, h.SMB.Evidence)
	case port == 139 && h.SMB139 != nil:
		return stepObservation(h.SMB139.State, h.SMB139.Evidence)
	case port == 139 && h.SMB != nil:
		return catalog.Observation{Skipped: "not needed: SMB answered on 445"}
	case port == 139 && h.netbiosSkipped != "":
		return catalog.Observation{Skipped: h.netbiosSkipped}
	}
	return catalog.Observation{Skipped: "smb negotiate was not run"}
}

func (h *Host) observeSMB1() catalog.Observation {
	switch {
	case h.SMB == nil:
		if p, ok := h.Port(445); ok && p.State != StateOpen {
			return catalog.Observation{Skipped: "SMB on 445 is " + p.State}
		}
		return catalog.Observation{Skipped: "smb negotiate was not run"}
	case h.SMB.State == SMBStateSMB1Only:
		return catalog.Observation{State: "accepted", Evidence: "smb1 445: the host speaks only SMB1 (" + h.SMB.Evidence + ")"}
	case h.SMB.SMB1Accepted == nil:
		return catalog.Observation{Skipped: "whether SMB1 is accepted could not be learned: " + h.SMB.Evidence}
	case *h.SMB.SMB1Accepted:
		return catalog.Observation{State: "accepted", Evidence: "smb1 445: SMB1 is still accepted beside SMB2 (" + h.SMB.SMB1Evidence + ")"}
	}
	return catalog.Observation{State: "disabled", Evidence: "smb1 445: disabled (" + h.SMB.SMB1Evidence + ")"}
}

// observeShare answers the share, file and ipc checks from the share mount.
func (h *Host) observeShare(c catalog.Check) catalog.Observation {
	if h.Share == nil {
		smb1Only := func(r *SMBResult) bool { return r != nil && r.State == SMBStateSMB1Only }
		switch {
		case smb1Only(h.SMB) || smb1Only(h.SMB139):
			return catalog.Observation{Skipped: "the host speaks only SMB1 and ofmprobe checks OFMLOG$ over SMB2: check it from an OFM console"}
		case h.SMB139 != nil && h.SMB139.State != SMBStateSMB2:
			return catalog.Observation{State: StateUnreachable, Evidence: fmt.Sprintf("%s: not attempted, no SMB2 server on 445 or over NetBIOS on 139: %s", c.Kind, h.SMB139.Evidence)}
		case h.SMB != nil:
			return catalog.Observation{State: StateUnreachable, Evidence: fmt.Sprintf("%s: not attempted, no SMB2 server on 445: %s", c.Kind, h.SMB.Evidence)}
		}
		return catalog.Observation{Skipped: "the share check was not run"}
	}
	sh := h.Share
	switch c.Kind {
	case "share":
		return stepObservation(sh.State, sh.Evidence)
	case "ipc":
		if sh.IPC != nil {
			return stepObservation(sh.IPC.State, sh.IPC.Evidence)
		}
		if sh.Step == "connect" || sh.Step == "negotiate" || sh.Step == "session setup" {
			return stepObservation(sh.State, "ipc: not attempted, "+sh.Evidence)
		}
		return catalog.Observation{Skipped: "IPC$ was not reached: " + sh.Evidence}
	}
	for _, f := range sh.Files {
		if f.Name == c.File {
			return stepObservation(f.State, f.Evidence)
		}
	}
	if sh.State != "mounted" {
		return catalog.Observation{State: StateUnreachable, Evidence: fmt.Sprintf("file %s: not checked, OFMLOG$ did not mount: %s", c.File, sh.Evidence)}
	}
	return catalog.Observation{Skipped: "file " + c.File + " was not looked for"}
}

// portNotOpen reports the state of a step's TCP port when it was probed and is not open.
func (h *Host) portNotOpen(kind string, port int) (catalog.Observation, bool) {
	p, ok := h.Port(port)
	if !ok || p.State == StateOpen || p.State == StateError {
		return catalog.Observation{}, false
	}
	return catalog.Observation{State: p.State, Evidence: fmt.Sprintf("%s %d: not attempted, %s", kind, port, p.Evidence)}, true
}

// noSMBPort reports, for steps that need an SMB session, that neither SMB port (445, 139) is open, when both were
// probed.
func (h *Host) noSMBPort(kind string) (catalog.Observation, bool) {
	direct, ok1 := h.Port(445)
	nbss, ok2 := h.Port(139)
	if !ok1 || !ok2 || direct.State == StateOpen || nbss.State == StateOpen || direct.State == StateError || nbss.State == StateError {
		return catalog.Observation{}, false
	}
	return catalog.Observation{
		State:    StateUnreachable,
		Evidence: fmt.Sprintf("%s: not attempted, no SMB port is open (%s; %s)", kind, direct.Evidence, nbss.Evidence),
	}, true
}

func (h *Host) observePort(port int, flag string) catalog.Observation {
	p, ok := h.Port(port)
	if !ok {
		return catalog.Observation{Skipped: fmt.Sprintf("tcp %d was not probed (not in %s)", port, flag)}
	}
	if p.State == StateError {
		return catalog.Observation{Skipped: p.Evidence}
	}
	return catalog.Observation{State: p.State, Evidence: p.Evidence}
}
