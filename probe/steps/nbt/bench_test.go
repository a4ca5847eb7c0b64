package nbt_test

// Benchmarks of the nbstat and nbss steps. The first two time the per-host decoding between a socket and the wire
// codec: readSessionMessage (the answer to a session request) and fillNodeStatus (a decoded node status answer turned
// into the host's facts); they run once per host that answers, are fed from memory, and check their result before
// the timed loop. The last three time one node status query to a loopback responder: through the scan's shared mux
// (what the nbstat step does), and two designs it replaced or was measured against, a connected socket per query
// and one shared unconnected socket demultiplexed by transaction ID, hand-written here as baselines.

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/netbios"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
)

// benchReplayConn is a net.Conn whose reads come from a bytes.Reader; only Read is implemented.
type benchReplayConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *benchReplayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// BenchmarkReadSessionMessage times reading the answer to a session request: a positive response (4 bytes) and a
// negative one (5 bytes, called name not present).
func BenchmarkReadSessionMessage(b *testing.B) {
	for _, bc := range []struct {
		name string
		in   []byte
		want netbios.SessionType
	}{
		{"positive", []byte{0x82, 0, 0, 0}, netbios.SessionPositiveResponse},
		{"negative", []byte{0x83, 0, 0, 1, 0x82}, netbios.SessionNegativeResponse},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := bytes.NewReader(bc.in)
			var conn net.Conn = &benchReplayConn{r: r} // converted once, so the loop times only the read
			msg, err := nbt.ReadSessionMessage(conn)
			if err != nil {
				b.Fatal(err)
			}
			resp, err := netbios.ParseSessionResponse(msg)
			if err != nil || resp.Type != bc.want {
				b.Fatalf("answer decodes as %v, %v; want %v", resp.Type, err, bc.want)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				r.Reset(bc.in)
				msg, err = nbt.ReadSessionMessage(conn)
			}
			if err != nil || len(msg) != len(bc.in) {
				b.Fatalf("last iteration: %x, %v", msg, err)
			}
		})
	}
}

// benchNodeStatusAnswer is the node status answer of a Samba file server that is master browser of its workgroup:
// six names and complete statistics with a MAC address.
func benchNodeStatusAnswer(b *testing.B) []byte {
	b.Helper()
	const active = 0x0400
	st := &netbios.NodeStatus{
		TxID:  0x1337,
		Flags: netbios.FlagResponse | netbios.FlagAuthoritative,
		Name:  netbios.Wildcard,
		Names: []netbios.NodeName{
			{Name: "OFM90", Suffix: 0x00, Flags: active},
			{Name: "OFM90", Suffix: 0x03, Flags: active},
			{Name: "OFM90", Suffix: 0x20, Flags: active},
			{Name: "OFMLAB", Suffix: 0x00, Flags: active | netbios.NameGroup},
			{Name: "OFMLAB", Suffix: 0x1D, Flags: active},
			{Name: netbios.MSBrowse, Suffix: 0x01, Flags: active | netbios.NameGroup},
		},
		StatisticsLen: netbios.StatisticsSize,
	}
	st.Statistics.UnitID = netbios.MAC{0x02, 0x00, 0x5e, 0x10, 0x00, 0x0a}
	out, err := netbios.AppendNodeStatusResponse(nil, st)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkNodeStatusFacts times what the nbstat step does with an answer once it arrives: decode it and fill the
// host's NodeStatus (names with their meanings and flags, computer name, workgroup, MAC and the evidence line).
func BenchmarkNodeStatusFacts(b *testing.B) {
	in := benchNodeStatusAnswer(b)
	decodeAndFill := func() (nbt.NodeStatus, error) {
		var ns nbt.NodeStatus
		st, err := netbios.ParseNodeStatusResponse(in)
		if err != nil {
			return ns, err
		}
		nbt.FillNodeStatus(&ns, &st)
		return ns, nil
	}
	ns, err := decodeAndFill()
	if err != nil {
		b.Fatal(err)
	}
	if ns.State != status.Answered || len(ns.Names) != 6 || ns.ComputerName != "OFM90" || ns.Workgroup != "OFMLAB" ||
		!ns.FileServer || !ns.MasterBrowser || ns.MAC != "02:00:5e:10:00:0a" {
		b.Fatalf("facts %+v", ns)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		ns, err = decodeAndFill()
	}
	if err != nil || len(ns.Names) != 6 {
		b.Fatalf("last iteration: %d names, %v", len(ns.Names), err)
	}
}

// benchResponder is a loopback node status responder that answers every query with nbstatAnswer under its ID.
func benchResponder(b *testing.B) int {
	b.Helper()
	answer := nbstatAnswer(b, 0)
	port, _ := probetest.UDPFake(b, func(_ int, q []byte) [][]byte {
		a := append([]byte(nil), answer...)
		copy(a, q[:2])
		return [][]byte{a}
	})
	return port
}

// BenchmarkNBSTATMux times one node status query through the scan's shared mux: what the nbstat step does.
func BenchmarkNBSTATMux(b *testing.B) {
	port := benchResponder(b)
	env := probetest.NewEnv(b, engine.Options{UDPTimeout: time.Second, Timeout: time.Second, Sockets: 8, PerHost: 1})
	dst := netip.AddrPortFrom(probetest.Loopback, uint16(port))
	ch := make(chan *nbt.NodeStatus, 1)
	b.ReportAllocs()
	for b.Loop() {
		nbt.QueryNodeStatus(env, dst, func(ns *nbt.NodeStatus) { ch <- ns })
		if ns := <-ch; ns.State != status.Answered {
			b.Fatalf("state %s", ns.State)
		}
	}
}

// BenchmarkNBSTATSocketPerQuery times one query on a connected socket of its own, the nbstat step's design before
// the mux: a baseline.
func BenchmarkNBSTATSocketPerQuery(b *testing.B) {
	port := benchResponder(b)
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	buf := make([]byte, 8192)
	var id uint16
	b.ReportAllocs()
	for b.Loop() {
		id++
		conn, err := net.DialUDP("udp4", nil, to)
		if err != nil {
			b.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write(netbios.AppendNodeStatusRequest(nil, id)); err != nil {
			b.Fatal(err)
		}
		for {
			n, err := conn.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			if binary.BigEndian.Uint16(buf) == id {
				if _, err := netbios.ParseNodeStatusResponse(buf[:n]); err != nil {
					b.Fatal(err)
				}
				break
			}
		}
		conn.Close()
	}
}

// BenchmarkNBSTATSharedSocket times one query on a shared unconnected socket whose replies are matched by
// transaction ID: a baseline.
func BenchmarkNBSTATSharedSocket(b *testing.B) {
	port := benchResponder(b)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	buf := make([]byte, 8192)
	var id uint16
	b.ReportAllocs()
	for b.Loop() {
		id++
		if _, err := conn.WriteToUDP(netbios.AppendNodeStatusRequest(nil, id), to); err != nil {
			b.Fatal(err)
		}
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				b.Fatal(err)
			}
			if binary.BigEndian.Uint16(buf) == id {
				if _, err := netbios.ParseNodeStatusResponse(buf[:n]); err != nil {
					b.Fatal(err)
				}
				break
			}
		}
	}
}
