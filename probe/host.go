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
	// Error is the internal failure behind StatusInternal.
	Error string `json:"error,omitempty"`
	// Stack is the goroutine stack of an internal failure, shown only in debug output.
	Stack string `json:"-"`

	ofmPort int
}

// Port returns the result for a TCP port, if it was probed.
func (h *Host) Port(port int) (PortResult, bool) {
	for _, p := range h.Ports {
		if p.Port == port && p.Protocol == "tcp" {
			return p, true
		}
	}
	return PortResult{}, false
}

// Unreachable reports whether nothing answered: every TCP probe met silence or an unreachable answer.
func (h *Host) Unreachable() bool {
	if len(h.Ports) == 0 {
		return false
	}
	for _, p := range h.Ports {
		if p.State != StateFiltered && p.State != StateUnreachable {
			return false
		}
	}
	return true
}

// Observe returns what the host's probes saw for one catalog check.
func (h *Host) Observe(c catalog.Check) catalog.Observation {
	switch c.Kind {
	case "tcp":
		return h.observePort(c.Port, "--ports")
	case "ofm-port":
		if h.ofmPort == 0 {
			return catalog.Observation{Skipped: "no --ofm-port given (no public source names the port OFM 9.1 uses; it is recorded in OFMNT.ADR)"}
		}
		return h.observePort(h.ofmPort, "--ofm-port")
	}
	return catalog.Observation{Skipped: notImplemented}
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
