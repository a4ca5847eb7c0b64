//go:build !linux

package engine

import "net"

// retransmitted cannot tell outside Linux; no host is marked lossy from its connections.
func retransmitted(net.Conn) bool { return false }
