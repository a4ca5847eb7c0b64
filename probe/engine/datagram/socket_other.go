//go:build !linux

package datagram

import (
	"errors"
	"net/netip"
	"sync/atomic"
)

// socket is a stand-in: the mux needs Linux's error queue (IP_RECVERR) to attribute ICMP errors.
type socket struct {
	rcvbuf int
	drops  atomic.Uint64
}

func openSocket(v6 bool, rcvbuf int) (*socket, error) { return nil, errors.ErrUnsupported }

func (s *socket) close() error { return nil }

func (s *socket) send(dst netip.AddrPort, payload []byte) error { return errors.ErrUnsupported }

func (m *Mux) receive(s *socket) { m.wg.Done() }
