// Package netstat reads the output of Windows' "netstat -an" (or "netstat -ano"), the host's own view of its
// sockets, so that a port seen from the probe can be explained from both ends: listening on the host but filtered
// from here is a firewall between; not listening is a service to start.
//
// The parser does not depend on the language of the output. A TCP socket listens when its foreign address is the
// wildcard ("0.0.0.0:0", "[::]:0"), which every language writes the same way, whatever it calls the state
// (LISTENING, ABHÖREN, ESCUCHANDO, ...); a UDP socket has no state and is bound. Files saved by PowerShell
// ("netstat -an > file" writes UTF-16 with a byte-order mark) and by cmd.exe (the OEM code page) both read.
package netstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf16"
)

// Socket is one listening TCP socket or bound UDP socket of the host.
type Socket struct {
	Protocol string         // "tcp" or "udp"
	Local    netip.AddrPort // the local address; 0.0.0.0 or :: for every address
}

// Table is what a netstat output says the host listens on.
type Table struct {
	Sockets []Socket
	// Lines is how many socket lines were read (listening or not), for the evidence.
	Lines int
}

// ErrNotNetstat is returned for input without a single socket line.
var ErrNotNetstat = errors.New("not the output of netstat -an: no TCP or UDP socket line")

// maxInput bounds what Parse reads: a busy server's netstat -ano is a few MB.
const maxInput = 64 << 20

// Parse reads netstat -an output. Lines that are not socket lines (headers in any language, blank lines, the
// process names of netstat -b) are skipped; a socket line whose addresses do not parse is an error naming the line.
func Parse(r io.Reader) (Table, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return Table{}, err
	}
	if len(b) > maxInput {
		return Table{}, fmt.Errorf("netstat output longer than %d bytes", maxInput)
	}
	b = decode(b)
	var t Table
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		proto := strings.ToLower(f[0])
		if proto != "tcp" && proto != "udp" {
			continue
		}
		t.Lines++
		local, err := parseAddr(f[1])
		if err != nil {
			return Table{}, fmt.Errorf("line %d: local address %q: %w", n, f[1], err)
		}
		switch proto {
		case "udp":
			t.Sockets = append(t.Sockets, Socket{Protocol: "udp", Local: local})
		case "tcp":
			if len(f) < 4 {
				return Table{}, fmt.Errorf("line %d: a TCP socket line without a state: %q", n, sc.Text())
			}
			if wildcardForeign(f[2]) {
				t.Sockets = append(t.Sockets, Socket{Protocol: "tcp", Local: local})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Table{}, err
	}
	if t.Lines == 0 {
		return Table{}, ErrNotNetstat
	}
	return t, nil
}

// decode turns UTF-16 (with a byte-order mark, as PowerShell redirection writes it) into UTF-8, and drops a UTF-8
// byte-order mark. Other bytes pass as they are: the addresses are ASCII in every code page.
func decode(b []byte) []byte {
	switch {
	case bytes.HasPrefix(b, []byte{0xff, 0xfe}), bytes.HasPrefix(b, []byte{0xfe, 0xff}):
		big := b[0] == 0xfe
		b = b[2:]
		u := make([]uint16, len(b)/2)
		for i := range u {
			if big {
				u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
			} else {
				u[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
			}
		}
		return []byte(string(utf16.Decode(u)))
	case bytes.HasPrefix(b, []byte{0xef, 0xbb, 0xbf}):
		return b[3:]
	}
	return b
}

// parseAddr reads "0.0.0.0:445", "[::]:445", "[fe80::1%4]:139" or, for UDP foreign addresses, "*:*".
func parseAddr(s string) (netip.AddrPort, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return netip.AddrPort{}, errors.New("no port")
	}
	host, port := s[:i], s[i+1:]
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if z := strings.IndexByte(host, '%'); z >= 0 {
		host = host[:z] // the zone: a local interface index, which says nothing here
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := parsePort(port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, p), nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("port %q", s)
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("port %q", s)
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, fmt.Errorf("port %q", s)
	}
	return uint16(n), nil
}

// wildcardForeign says whether a TCP foreign address is the wildcard of a listening socket.
func wildcardForeign(s string) bool {
	return s == "0.0.0.0:0" || s == "[::]:0" || s == "*:*"
}

// Listening returns the host's sockets on a port and protocol that accept from the network: bound to the wildcard
// or to addr (the address the probe used). Loopback-only sockets are returned in loopback.
func (t Table) Listening(proto string, port int, addr netip.Addr) (network, loopback []netip.AddrPort) {
	for _, s := range t.Sockets {
		if s.Protocol != proto || int(s.Local.Port()) != port {
			continue
		}
		a := s.Local.Addr().Unmap()
		switch {
		case a.IsUnspecified() || a == addr.Unmap():
			network = append(network, s.Local)
		case a.IsLoopback():
			loopback = append(loopback, s.Local)
		}
	}
	return network, loopback
}

// Verdict explains one port of the host from both ends: what the probe saw (state, as the report's states) and what
// the host's netstat says.
type Verdict struct {
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`
	// Listening says the host listens on the port for the network; Local lists the sockets that do (or, when it
	// listens on loopback only, those).
	Listening bool     `json:"listening"`
	Local     []string `json:"local,omitempty"`
	// Probe is the port's state as probed from the vantage point.
	Probe string `json:"probe"`
	// Agrees is false when the two ends disagree: the case that needs a fix.
	Agrees bool `json:"agrees"`
	// Explanation says what the two ends together mean, and what to do.
	Explanation string `json:"explanation"`
}

// Explain compares a probed port with the host's netstat. from names the vantage point; services the Windows
// services that own the port (the catalog's port table), for the "start it" advice.
func Explain(t Table, addr netip.Addr, proto string, port int, probe, from, services string) Verdict {
	network, loopback := t.Listening(proto, port, addr)
	v := Verdict{Protocol: proto, Port: port, Listening: len(network) > 0, Probe: probe}
	for _, s := range slices.Concat(network, loopback) {
		v.Local = append(v.Local, s.String())
	}
	label := fmt.Sprintf("%s %d", proto, port)
	owner := ""
	if services != "" {
		owner = " (" + services + ")"
	}
	switch open := probe == "open"; {
	case v.Listening && open:
		v.Agrees, v.Explanation = true, fmt.Sprintf("%s: listening on the host and open from %s: fine", label, from)
	case v.Listening && (probe == "filtered" || probe == "open|filtered"):
		v.Explanation = fmt.Sprintf("%s: listening on the host (%s) but %s from %s: a firewall between drops it, on the host (Windows Defender Firewall) or in the network", label, strings.Join(v.Local, ", "), probe, from)
		if proto == "udp" && probe == "open|filtered" {
			// A UDP service that listens may simply not answer the probe's query.
			v.Agrees, v.Explanation = true, fmt.Sprintf("%s: listening on the host (%s); silence from %s means a firewall drops it or the service ignores the query", label, strings.Join(v.Local, ", "), from)
		}
	case v.Listening && probe == "closed":
		v.Explanation = fmt.Sprintf("%s: listening on the host (%s) but refused from %s: a firewall rejects it, or the netstat output is older than the scan", label, strings.Join(v.Local, ", "), from)
	case v.Listening:
		v.Explanation = fmt.Sprintf("%s: listening on the host (%s); from %s it is %s: check the route and the firewalls between", label, strings.Join(v.Local, ", "), from, probe)
	case len(loopback) > 0:
		v.Explanation = fmt.Sprintf("%s: the host listens on loopback only (%s), so nothing from the network reaches it (%s from %s): bind the service%s to the host's address", label, strings.Join(v.Local, ", "), probe, from, owner)
		v.Agrees = !open
	case open:
		v.Explanation = fmt.Sprintf("%s: open from %s but not listening in the host's netstat: something between answers for it (a proxy or load balancer), or the netstat output is not this host's or not current", label, from)
	default:
		v.Agrees = true
		v.Explanation = fmt.Sprintf("%s: not listening on the host (%s from %s): start the service that owns it%s", label, probe, from, owner)
	}
	return v
}
