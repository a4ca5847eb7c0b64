package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"
)

// The scan's load controls live here: the socket budget (a weighted semaphore, shrunk when the kernel pushes back),
// and the rate of new connections and datagrams (--rate).

var errNotUDP = errors.New("not a UDP socket")

// minBudget is the smallest socket budget pushback shrinks the scan to: below it a scan of any size would crawl.
const minBudget = 32

// shrinkInterval spaces budget cuts: one burst of EMFILE errors from probes started together is one signal, not many.
const shrinkInterval = 100 * time.Millisecond

// acquire takes one socket from the budget.
func (s *Scanner) acquire(ctx context.Context) error { return s.sockets.Acquire(ctx, 1) }

// release returns one socket to the budget, unless the budget owes sockets after pushback: then the socket is kept
// back for the rest of the run, which is how the budget shrinks without waiting for sockets in use to come back.
func (s *Scanner) release() {
	for {
		d := s.debt.Load()
		if d <= 0 {
			s.sockets.Release(1)
			return
		}
		if s.debt.CompareAndSwap(d, d-1) {
			return
		}
	}
}

// pace waits for the rate limit, if one is set, before a connection attempt or a datagram.
func (s *Scanner) pace(ctx context.Context) error {
	if s.limiter == nil {
		return nil
	}
	return s.limiter.Wait(ctx)
}

// pushedBack records that the kernel refused a socket for want of resources (EMFILE, ENFILE, ENOBUFS,
// EADDRNOTAVAIL, ENOMEM) on the caller's tries-th local failure, shrinks the budget by an eighth (at most once per
// shrinkInterval, never below minBudget), and waits before the caller tries again. It returns false when ctx ended.
// The probe that met the error is not charged an attempt: the host did nothing.
func (s *Scanner) pushedBack(ctx context.Context, tries int) bool {
	s.pushback.Add(1)
	now := time.Now().UnixNano()
	last := s.lastShrink.Load()
	if now-last >= int64(shrinkInterval) && s.lastShrink.CompareAndSwap(last, now) {
		for {
			b := s.budget.Load()
			cut := b / 8
			if b-cut < minBudget {
				cut = b - minBudget
			}
			if cut <= 0 {
				break
			}
			if s.budget.CompareAndSwap(b, b-cut) {
				s.debt.Add(cut)
				break
			}
		}
	}
	t := time.NewTimer(min(time.Duration(tries)*10*time.Millisecond, 200*time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// dialTCP connects to addr:port within the scan timeout, paced by the rate limit. A connect the kernel refuses for
// want of local resources waits and tries again (up to maxLocalRetries times) rather than failing the step.
func (s *Scanner) dialTCP(ctx context.Context, addr netip.Addr, port uint16) (net.Conn, error) {
	conn, _, err := s.dialTCPTimed(ctx, addr, port)
	return conn, err
}

// dialTCPTimed is dialTCP that also returns how long the last connect took, the round trip a connect probe reports:
// the rate limit's and pushback's waits are not in it.
func (s *Scanner) dialTCPTimed(ctx context.Context, addr netip.Addr, port uint16) (net.Conn, time.Duration, error) {
	target := netip.AddrPortFrom(addr, port).String()
	for tries := 1; ; tries++ {
		if err := s.pace(ctx); err != nil {
			return nil, 0, err
		}
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		conn, err := s.dialer.DialContext(dctx, "tcp", target)
		rtt := time.Since(start)
		cancel()
		if err == nil || Classify(err) != StatusLocal || tries > maxLocalRetries || !s.pushedBack(ctx, tries) {
			return conn, rtt, err
		}
	}
}

// tcpOpener opens plain TCP connections for an SMB exchange, or says why it could not.
func (s *Scanner) tcpOpener(addr netip.Addr, port uint16) smbOpen {
	return func(ctx context.Context) (net.Conn, string, string) {
		conn, err := s.dialTCP(ctx, addr, port)
		if err != nil {
			return nil, dialFailureState(err), s.connectFailure(err)
		}
		return conn, "", ""
	}
}

// dialUDP opens a connected UDP socket to addr:port (no datagram is sent), retrying local resource shortages as
// dialTCP does.
func (s *Scanner) dialUDP(ctx context.Context, addr netip.Addr, port int) (*net.UDPConn, error) {
	target := netip.AddrPortFrom(addr, uint16(port)).String()
	for tries := 1; ; tries++ {
		c, err := s.udpDialer.DialContext(ctx, "udp", target)
		if err == nil {
			uc, ok := c.(*net.UDPConn)
			if !ok {
				c.Close()
				return nil, errNotUDP
			}
			return uc, nil
		}
		if Classify(err) != StatusLocal || tries > maxLocalRetries || !s.pushedBack(ctx, tries) {
			return nil, err
		}
	}
}
