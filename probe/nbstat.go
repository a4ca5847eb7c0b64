package probe

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/netbios"
)

// The NetBIOS node status states. Silent is never proof of filtering: the query may have been lost, or an ICMP
// answer rate-limited, so the report says "open|filtered", as nmap does for a silent UDP port, and graders treat it
// as no answer.
const (
	NBAnswered      = "answered"
	NBSilent        = "open|filtered"
	NBClosed        = "closed"
	NBProtocolError = "protocol error"
	NBUnreachable   = "unreachable"
)

// NetBIOSName is one entry of a host's NetBIOS name table.
type NetBIOSName struct {
	Name    string `json:"name"`
	Suffix  string `json:"suffix"` // two hex digits, as nbtstat shows them
	Group   bool   `json:"group"`
	Meaning string `json:"meaning"`
	Flags   string `json:"flags"`
}

// NodeStatus is what the "nbstat" step learned from UDP 137.
type NodeStatus struct {
	State    string        `json:"state"`
	Evidence string        `json:"evidence"`
	Attempts int           `json:"attempts"`
	RTT      time.Duration `json:"-"`
	Names    []NetBIOSName `json:"names,omitempty"`
	// ComputerName is the host's unique <00> or <20> name.
	ComputerName string `json:"computer_name,omitempty"`
	// Workgroup is the workgroup or domain (the group <00> name).
	Workgroup string `json:"workgroup,omitempty"`
	// FileServer says the host registered <20>: it runs the server service and shares files.
	FileServer bool `json:"file_server"`
	// MasterBrowser says the host is a (domain) master browser: <1D>, <1B> or __MSBROWSE__.
	MasterBrowser bool `json:"master_browser"`
	// MAC is the adapter address from the statistics; empty when unknown (absent or all zeros, as Samba sends).
	MAC string `json:"mac,omitempty"`
}

// nbstatBufPool holds receive buffers: a full name table of 255 entries is about 4.7 KiB.
var nbstatBufPool = sync.Pool{New: func() any { b := make([]byte, 8192); return &b }}

// nodeStatus is the "nbstat" step: it asks UDP 137 for the node's name table, up to tries times, each try waiting
// wait for an answer. Each query uses its own connected UDP socket: the kernel then drops datagrams from any other
// address or port, and an ICMP port unreachable comes back as ECONNREFUSED, which is how "closed" is told apart from
// silence. Replies are matched by a random transaction ID; strays are ignored.
func (s *Scanner) nodeStatus(ctx context.Context, addr netip.Addr) NodeStatus {
	var ns NodeStatus
	conn, err := s.dialUDP(ctx, addr, int(s.nbstatPort))
	if err != nil {
		return nbstatDialFailure(err)
	}
	defer conn.Close()

	bufp := nbstatBufPool.Get().(*[]byte)
	defer nbstatBufPool.Put(bufp)
	buf := *bufp
	txid := uint16(rand.Uint32())
	req := netbios.AppendNodeStatusRequest(make([]byte, 0, 50), txid)
	tries := s.opts.UDPRetries + 1
	for ns.Attempts < tries {
		if ctx.Err() != nil || s.pace(ctx) != nil {
			break
		}
		ns.Attempts++
		start := time.Now()
		deadline := start.Add(s.opts.UDPTimeout)
		conn.SetDeadline(deadline)
		if _, err := conn.Write(req); err != nil {
			if st, done := udpErrorState(err); done {
				return nbstatFinal(ns, st, err, time.Since(start))
			}
			continue
		}
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if st, done := udpErrorState(err); done {
					return nbstatFinal(ns, st, err, time.Since(start))
				}
				break // this try timed out: send again
			}
			msg := buf[:n]
			if n < 2 || binary.BigEndian.Uint16(msg) != txid {
				continue // a stray or spoofed datagram: not the answer to this query
			}
			status, perr := netbios.ParseNodeStatusResponse(msg)
			ns.RTT = time.Since(start)
			if perr != nil {
				ns.State = NBProtocolError
				ns.Evidence = fmt.Sprintf("nbstat 137: the answer is not a valid node status (%v): % x", perr, msg[:min(n, 24)])
				return ns
			}
			fillNodeStatus(&ns, &status)
			return ns
		}
	}
	ns.State = NBSilent
	ns.Evidence = fmt.Sprintf("nbstat 137: open|filtered, no answer to %d %s of %s (silence is not proof of filtering)", ns.Attempts, map[bool]string{true: "query", false: "queries"}[ns.Attempts == 1], s.opts.UDPTimeout)
	return ns
}

// udpErrorState maps a UDP read or write error to a final state: ICMP port unreachable is closed, host or network
// unreachable is unreachable, and so is a send the kernel refuses (EACCES: a broadcast address, which ofmprobe never
// sends to). Timeouts are not final.
func udpErrorState(err error) (string, bool) {
	switch Classify(err) {
	case StatusRefused:
		return NBClosed, true
	case StatusUnreachable, StatusAccessDenied:
		return NBUnreachable, true
	}
	return "", false
}

func nbstatFinal(ns NodeStatus, state string, err error, rtt time.Duration) NodeStatus {
	ns.State, ns.RTT = state, rtt
	switch state {
	case NBClosed:
		ns.Evidence = fmt.Sprintf("nbstat 137: closed, ICMP port unreachable after %s", formatRTT(rtt))
	default:
		ns.Evidence = "nbstat 137: unreachable, " + errnoText(err) + afterRTT(rtt)
	}
	return ns
}

func nbstatDialFailure(err error) NodeStatus {
	if st, done := udpErrorState(err); done {
		return nbstatFinal(NodeStatus{}, st, err, 0)
	}
	// This machine could not open a socket (out of descriptors after every retry, a cancelled scan): that says
	// nothing about the host, so it must not read as silence.
	return NodeStatus{State: StateError, Evidence: fmt.Sprintf("nbstat 137: not sent, this machine could not open a socket: %v", err)}
}

// fillNodeStatus copies what a node status answer says into the host's facts.
func fillNodeStatus(ns *NodeStatus, st *netbios.NodeStatus) {
	ns.State = NBAnswered
	for _, n := range st.Names {
		ns.Names = append(ns.Names, NetBIOSName{
			Name: printable(n.Name), Suffix: fmt.Sprintf("%02X", n.Suffix), Group: n.Flags.Group(),
			Meaning: n.Meaning(), Flags: n.Flags.String(),
		})
	}
	if name, ok := st.ComputerName(); ok {
		ns.ComputerName = printable(name)
	}
	if wg, ok := st.Workgroup(); ok {
		ns.Workgroup = printable(wg)
	}
	_, ns.FileServer = st.FileServer()
	_, mb := st.MasterBrowser()
	_, dmb := st.DomainMasterBrowser()
	ns.MasterBrowser = mb || dmb || st.HasMSBrowse()
	if mac, ok := st.MAC(); ok && !mac.IsZero() {
		ns.MAC = mac.String()
	}
	ns.Evidence = "nbstat 137: answered in " + formatRTT(ns.RTT) + ", leaks " + ns.Leaks()
}

// Leaks says what an answered node status gives away without authentication.
func (ns *NodeStatus) Leaks() string {
	var parts []string
	var names []string
	for _, n := range ns.Names {
		names = append(names, fmt.Sprintf("%s<%s>", n.Name, n.Suffix))
	}
	parts = append(parts, fmt.Sprintf("%d names (%s)", len(ns.Names), strings.Join(names, " ")))
	if ns.Workgroup != "" {
		parts = append(parts, "workgroup "+ns.Workgroup)
	}
	if ns.MAC != "" {
		parts = append(parts, "MAC "+ns.MAC)
	} else {
		parts = append(parts, "MAC unknown")
	}
	return strings.Join(parts, ", ")
}

// printable replaces bytes that would garble a report with '.'; NetBIOS names are bytes, not text.
func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '.'
		}
	}
	return string(b)
}
