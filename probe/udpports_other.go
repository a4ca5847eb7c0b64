//go:build !linux

package probe

import (
	"context"
	"net/netip"
)

// udpPorts probes the host's UDP ports; outside Linux, each on its own connected socket.
func (s *Scanner) udpPorts(ctx context.Context, addr netip.Addr, ports []int) []PortResult {
	return s.udpPortsEach(ctx, addr, ports)
}
