package probe

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/ofmprobe/ofmprobe/probe/netbios"
)

// The two benchmarks below measure the choice the nbstat step makes: a connected socket per query (what ofmprobe
// does) against one shared unconnected socket with replies demultiplexed by transaction ID (the alternative). Both
// query the same loopback responder, so the difference is the per-query socket cost.

func benchResponder(b *testing.B) int {
	b.Helper()
	t := &testing.T{}
	answer := nbstatAnswer(t, 0)
	port, _ := udpFakeB(b, func(q []byte) []byte {
		a := append([]byte(nil), answer...)
		copy(a, q[:2])
		return a
	})
	return port
}

func udpFakeB(b *testing.B, reply func([]byte) []byte) (int, net.PacketConn) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(reply(buf[:n]), from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port, pc
}

func BenchmarkNBSTATSocketPerQuery(b *testing.B) {
	port := benchResponder(b)
	s, err := NewScanner(Options{NodeStatus: true, UDPTimeout: 1e9, Timeout: 1e9, Concurrency: 8, PerHost: 1})
	if err != nil {
		b.Fatal(err)
	}
	s.nbstatPort = uint16(port)
	addr := netip.MustParseAddr("127.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		if ns := s.nodeStatus(context.Background(), addr); ns.State != NBAnswered {
			b.Fatalf("state %s", ns.State)
		}
	}
}

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
