package probe

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/netbios"
)

// nbstatAnswer builds a node status answer like Samba's for the given transaction ID.
func nbstatAnswer(t *testing.T, txid uint16) []byte {
	t.Helper()
	const active = 0x0400
	st := &netbios.NodeStatus{
		TxID:  txid,
		Flags: 0x8400,
		Name:  netbios.Wildcard,
		Names: []netbios.NodeName{
			{Name: "OFM90", Suffix: 0x00, Flags: active},
			{Name: "OFM90", Suffix: 0x03, Flags: active},
			{Name: "OFM90", Suffix: 0x20, Flags: active},
			{Name: "OFMLAB", Suffix: 0x00, Flags: active | 0x8000},
			{Name: "OFMLAB", Suffix: 0x1E, Flags: active | 0x8000},
		},
		StatisticsLen: 46,
	}
	copy(st.Statistics.UnitID[:], []byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x0a})
	b, err := netbios.AppendNodeStatusResponse(nil, st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// udpFake is a loopback UDP responder scripted per received query: it returns the datagrams to send back.
func udpFake(t *testing.T, script func(n int, query []byte) [][]byte) (port int, queries *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { pc.Close() })
	queries = &atomic.Int64{}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			k := int(queries.Add(1))
			for _, d := range script(k, append([]byte(nil), buf[:n]...)) {
				pc.WriteTo(d, from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port, queries
}

func nbstatScanner(t *testing.T, port int) *Scanner {
	s := newTestScanner(t, Options{NodeStatus: true, UDPTimeout: 150 * time.Millisecond, UDPRetries: 2})
	s.nbstatPort = uint16(port)
	return s
}

func TestNodeStatus(t *testing.T) {
	tests := []struct {
		name     string
		script   func(t *testing.T) func(int, []byte) [][]byte
		state    string
		attempts int
		evidence string
	}{
		{"answer", func(t *testing.T) func(int, []byte) [][]byte {
			return func(_ int, q []byte) [][]byte { return [][]byte{nbstatAnswer(t, binary.BigEndian.Uint16(q))} }
		}, NBAnswered, 1, "nbstat 137: answered in "},
		{"lost twice, answered on the third try", func(t *testing.T) func(int, []byte) [][]byte {
			return func(n int, q []byte) [][]byte {
				if n < 3 {
					return nil
				}
				return [][]byte{nbstatAnswer(t, binary.BigEndian.Uint16(q))}
			}
		}, NBAnswered, 3, "nbstat 137: answered in "},
		{"stray answers with other transaction IDs are ignored", func(t *testing.T) func(int, []byte) [][]byte {
			return func(_ int, q []byte) [][]byte {
				id := binary.BigEndian.Uint16(q)
				return [][]byte{nbstatAnswer(t, id+1), {0x01}, nbstatAnswer(t, id)}
			}
		}, NBAnswered, 1, "nbstat 137: answered in "},
		{"silence", func(t *testing.T) func(int, []byte) [][]byte {
			return func(int, []byte) [][]byte { return nil }
		}, NBSilent, 3, "nbstat 137: open|filtered, no answer to 3 queries of 150ms (silence is not proof of filtering)"},
		{"garbage with the right ID", func(t *testing.T) func(int, []byte) [][]byte {
			return func(_ int, q []byte) [][]byte { return [][]byte{append(q[:2:2], 0x84, 0x00, 0xff, 0xff)} }
		}, NBProtocolError, 1, "nbstat 137: the answer is not a valid node status"},
		{"truncated answer with the right ID", func(t *testing.T) func(int, []byte) [][]byte {
			return func(_ int, q []byte) [][]byte {
				a := nbstatAnswer(t, binary.BigEndian.Uint16(q))
				return [][]byte{a[:70]}
			}
		}, NBProtocolError, 1, "nbstat 137: the answer is not a valid node status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port, _ := udpFake(t, tc.script(t))
			ns := nbstatScanner(t, port).nodeStatus(context.Background(), netip.MustParseAddr("127.0.0.1"))
			if ns.State != tc.state || ns.Attempts != tc.attempts || !strings.HasPrefix(ns.Evidence, tc.evidence) {
				t.Errorf("got %s after %d attempts (%q), want %s after %d (%q...)", ns.State, ns.Attempts, ns.Evidence, tc.state, tc.attempts, tc.evidence)
			}
			if tc.state == NBAnswered {
				want := NodeStatus{ComputerName: "OFM90", Workgroup: "OFMLAB", FileServer: true, MAC: "02:00:5e:10:00:0a"}
				if ns.ComputerName != want.ComputerName || ns.Workgroup != want.Workgroup || !ns.FileServer || ns.MAC != want.MAC || len(ns.Names) != 5 {
					t.Errorf("facts %+v", ns)
				}
				if ns.Names[3] != (NetBIOSName{Name: "OFMLAB", Suffix: "00", Group: true, Meaning: ns.Names[3].Meaning, Flags: ns.Names[3].Flags}) || ns.Names[3].Meaning == "" {
					t.Errorf("workgroup entry %+v", ns.Names[3])
				}
				if !strings.Contains(ns.Evidence, "leaks 5 names (OFM90<00> OFM90<03> OFM90<20> OFMLAB<00> OFMLAB<1E>), workgroup OFMLAB, MAC 02:00:5e:10:00:0a") {
					t.Errorf("evidence does not say what leaks: %q", ns.Evidence)
				}
			}
		})
	}
}

// TestNodeStatusClosed: a port nobody listens on answers with ICMP port unreachable, which is "closed", at once.
func TestNodeStatusClosed(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	must(t, err)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	start := time.Now()
	ns := nbstatScanner(t, port).nodeStatus(context.Background(), netip.MustParseAddr("127.0.0.1"))
	if ns.State != NBClosed || ns.Attempts != 1 || time.Since(start) > 100*time.Millisecond {
		t.Errorf("got %+v in %s, want closed at the first try", ns, time.Since(start))
	}
}

// TestNodeStatusIgnoresOtherSources: an answer from another address (a spoofer) never reaches the query's socket.
func TestNodeStatusIgnoresOtherSources(t *testing.T) {
	// The real responder on 127.0.0.1 stays silent; a second socket on 127.0.0.2 sends a perfect answer to the client.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	must(t, err)
	defer pc.Close()
	spoof, err := net.ListenPacket("udp4", "127.0.0.2:0")
	must(t, err)
	defer spoof.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			spoof.WriteTo(nbstatAnswer(t, binary.BigEndian.Uint16(buf[:n])), from)
		}
	}()
	ns := nbstatScanner(t, pc.LocalAddr().(*net.UDPAddr).Port).nodeStatus(context.Background(), netip.MustParseAddr("127.0.0.1"))
	if ns.State != NBSilent {
		t.Errorf("got %s, want silent: a spoofed answer was accepted", ns.State)
	}
}

func TestUDPPortStates(t *testing.T) {
	answering, _ := udpFake(t, func(int, []byte) [][]byte { return [][]byte{{0}} })
	silent, _ := udpFake(t, func(int, []byte) [][]byte { return nil })
	pc, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	closed := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	s := newTestScanner(t, Options{UDPPorts: []int{answering, silent, closed}, UDPTimeout: 100 * time.Millisecond, UDPRetries: 1})
	h := scanOne(t, s, "127.0.0.1")
	want := map[int]string{answering: StateOpen, silent: StateOpenFiltered, closed: StateClosed}
	for _, p := range h.Ports {
		if p.Protocol != "udp" || p.State != want[p.Port] {
			t.Errorf("udp %d: %s (%s), want %s", p.Port, p.State, p.Evidence, want[p.Port])
		}
	}
	if p, _ := h.UDPPort(silent); p.Attempts != 2 || !strings.Contains(p.Evidence, "no safe query exists") {
		t.Errorf("silent port: %+v", p)
	}
}

// tcpFake serves each connection on a loopback port with a scripted handler.
func tcpFake(t *testing.T, handle func(n int, c net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			k := int(n.Add(1))
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(3 * time.Second))
				handle(k, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// readRequest reads one 72-byte session request and returns the called name.
func readRequest(c net.Conn) string {
	req := make([]byte, 72)
	if _, err := io.ReadFull(c, req); err != nil {
		return ""
	}
	name, _, err := netbios.ParseName(req[4:])
	if err != nil {
		return ""
	}
	return name.String()
}

func TestSessionRequest(t *testing.T) {
	positive := []byte{0x82, 0, 0, 0}
	tests := []struct {
		name     string
		server   string // name node status gave
		handle   func(n int, c net.Conn)
		state    string
		called   int
		evidence string
	}{
		{"positive to the real name", "OFM90", func(_ int, c net.Conn) {
			if readRequest(c) == "OFM90<20>" {
				c.Write(positive)
			}
		}, SessionPositive, 1, "nbss 139 (OFM90<20>): positive session response in "},
		{"real name refused, *SMBSERVER accepted", "WRONG", func(_ int, c net.Conn) {
			if readRequest(c) == "*SMBSERVER<20>" {
				c.Write(positive)
			} else {
				c.Write([]byte{0x83, 0, 0, 1, 0x82})
			}
		}, SessionPositive, 2, "nbss 139 (*SMBSERVER<20>): positive session response in "},
		{"negative with the reason", "", func(_ int, c net.Conn) {
			readRequest(c)
			c.Write([]byte{0x83, 0, 0, 1, 0x80})
		}, SessionNegative, 1, "nbss 139 (*SMBSERVER<20>): negative session response: "},
		{"keepalives skipped", "", func(_ int, c net.Conn) {
			readRequest(c)
			c.Write([]byte{0x85, 0, 0, 0, 0x85, 0, 0, 0})
			c.Write(positive)
		}, SessionPositive, 1, "nbss 139 (*SMBSERVER<20>): positive session response in "},
		{"silence", "", func(_ int, c net.Conn) {
			readRequest(c)
			time.Sleep(time.Second)
		}, SessionTimeout, 1, "nbss 139 (*SMBSERVER<20>): connected, but no answer to the session request in 300ms"},
		{"SMB instead of NetBIOS", "", func(_ int, c net.Conn) {
			readRequest(c)
			c.Write([]byte{0x00, 0x00, 0x00, 0x04, 0xfe, 'S', 'M', 'B'})
		}, SessionProtocolError, 1, "nbss 139 (*SMBSERVER<20>): not a NetBIOS answer"},
		{"claims a huge body", "", func(_ int, c net.Conn) {
			readRequest(c)
			c.Write([]byte{0x82, 0x01, 0xff, 0xff})
		}, SessionProtocolError, 1, "nbss 139 (*SMBSERVER<20>): not a NetBIOS answer"},
		{"closes without a word", "", func(_ int, c net.Conn) {
			readRequest(c)
		}, SessionProtocolError, 1, "nbss 139 (*SMBSERVER<20>): the connection ended without an answer"},
		{"half a header", "", func(_ int, c net.Conn) {
			readRequest(c)
			c.Write([]byte{0x82, 0x00})
		}, SessionProtocolError, 1, "nbss 139 (*SMBSERVER<20>): not a NetBIOS answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestScanner(t, Options{Ports: []int{1}})
			s.nbssPort = uint16(tcpFake(t, tc.handle))
			sess := s.nbssSession(context.Background(), netip.MustParseAddr("127.0.0.1"), tc.server)
			if sess.State != tc.state || len(sess.Called) != tc.called || !strings.HasPrefix(sess.Evidence, tc.evidence) {
				t.Errorf("got %s, called %q, %q; want %s after %d names, %q...", sess.State, sess.Called, sess.Evidence, tc.state, tc.called, tc.evidence)
			}
		})
	}
}

// TestNetBIOSSkippedOnIPv6: NetBIOS runs over IPv4 only; an IPv6 host says so instead of reporting silence.
func TestNetBIOSSkippedOnIPv6(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{closedPort(t)}, NodeStatus: true, Session: true, UDPTimeout: time.Second})
	h := scanOne(t, s, "::1")
	if h.NetBIOS != nil || h.Session != nil {
		t.Fatalf("NetBIOS probed over IPv6: %+v %+v", h.NetBIOS, h.Session)
	}
	if o := h.Observe(catalogCheck("nbstat", 137)); o.Skipped != "NetBIOS runs over IPv4 only" {
		t.Errorf("observation %+v", o)
	}
}

func catalogCheck(kind string, port int) catalog.Check { return catalog.Check{Kind: kind, Port: port} }

// TestUDPPortsErrorsStayWithTheirPort: every UDP port of a host shares one socket, and an ICMP error about one port
// also sets the socket's pending error, which the next send would report. Closed ports before and after a silent
// and an answering one must not make those look closed.
func TestUDPPortsErrorsStayWithTheirPort(t *testing.T) {
	answering, _ := udpFake(t, func(int, []byte) [][]byte { return [][]byte{{0}} })
	silent, _ := udpFake(t, func(int, []byte) [][]byte { return nil })
	var closed []int
	for range 3 {
		pc, _ := net.ListenPacket("udp4", "127.0.0.1:0")
		closed = append(closed, pc.LocalAddr().(*net.UDPAddr).Port)
		pc.Close()
	}
	ports := []int{closed[0], silent, closed[1], answering, closed[2]}
	s := newTestScanner(t, Options{UDPPorts: ports, UDPTimeout: 100 * time.Millisecond, UDPRetries: 2})
	for range 5 {
		h := scanOne(t, s, "127.0.0.1")
		want := map[int]string{closed[0]: StateClosed, closed[1]: StateClosed, closed[2]: StateClosed, silent: StateOpenFiltered, answering: StateOpen}
		for _, p := range h.Ports {
			if p.State != want[p.Port] {
				t.Fatalf("udp %d: %s (%s), want %s", p.Port, p.State, p.Evidence, want[p.Port])
			}
		}
		if p, _ := h.UDPPort(silent); p.Attempts != 3 {
			t.Errorf("silent port: %d attempts, want 3", p.Attempts)
		}
	}
}
