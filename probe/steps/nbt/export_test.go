package nbt

import (
	"net"

	"github.com/ofmprobe/ofmprobe/probe/netbios"
)

// Internals the benchmarks use.

// ReadSessionMessage is readSessionMessage.
func ReadSessionMessage(conn net.Conn) ([]byte, error) { return readSessionMessage(conn) }

// FillNodeStatus is fillNodeStatus.
func FillNodeStatus(ns *NodeStatus, st *netbios.NodeStatus) { fillNodeStatus(ns, st) }
