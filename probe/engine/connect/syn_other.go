//go:build !linux

package connect

import (
	"errors"
	"net/netip"
)

// SYN is the raw-socket connect path; it is Linux only.
type SYN struct{}

// OpenSYN fails outside Linux: the connector (itself Linux only) or a dialer does the connects.
func OpenSYN(Config) (*SYN, error) { return nil, errors.ErrUnsupported }

func (s *SYN) Handles(netip.Addr, int) bool { return false }
func (s *SYN) Connect(a Attempt)            { a.Done(Result{Outcome: Canceled, Err: ErrClosed}) }
func (s *SYN) Stats() Stats                 { return Stats{} }
func (s *SYN) Queued() int                  { return 0 }
func (s *SYN) Lost()                        {}
func (s *SYN) Close() error                 { return nil }
