package probe

import (
	"context"
	"net/netip"
	"sync"
)

// udpPortsEach probes each UDP port on its own connected socket, all at once. It is the "udp port" step where one
// unconnected socket cannot serve (udpports_linux.go): other systems, and IPv6 addresses with a zone.
func (s *Scanner) udpPortsEach(ctx context.Context, addr netip.Addr, ports []int) []PortResult {
	results := make([]PortResult, len(ports))
	var wg sync.WaitGroup
	for i, p := range ports {
		wg.Go(func() { results[i] = s.udpPort(ctx, addr, p) })
	}
	wg.Wait()
	return results
}
