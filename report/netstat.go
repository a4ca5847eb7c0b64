package report

import (
	"strings"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/netstat"
)

// ExplainNetstat explains each probed port of the host with the host's own netstat output: listening there but
// filtered from the vantage point, not listening, or both fine. The node status query counts as UDP 137.
func (r *HostRecord) ExplainNetstat(t netstat.Table, vantage []string, ports []catalog.Port) {
	addr := r.addr()
	if !addr.IsValid() {
		return
	}
	from := "this probe"
	if len(vantage) > 0 {
		from = strings.Join(vantage, ", ")
	}
	r.Netstat = nil
	for _, p := range r.Ports {
		if p.State == "error" {
			continue
		}
		r.Netstat = append(r.Netstat, netstat.Explain(t, addr, p.Protocol, p.Port, p.State, from, catalog.WindowsServices(ports, p.Port, p.Protocol)))
	}
	if nb := r.NetBIOS; nb != nil && nb.State != "error" {
		state := nb.State
		if state == "answered" {
			state = "open"
		}
		r.Netstat = append(r.Netstat, netstat.Explain(t, addr, "udp", 137, state, from, catalog.WindowsServices(ports, 137, "udp")))
	}
}
