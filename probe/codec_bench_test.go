package probe

// Benchmarks for the per-host decoding helpers of package probe that sit between a socket and the wire codecs:
// readSMBFrame (one negotiate answer from TCP 445, or from TCP 139 behind a NetBIOS keepalive), readSessionMessage
// (the answer to a session request) and fillNodeStatus (a decoded node status answer turned into the host's facts).
// Each runs once per host that answers, so a sweep of 65,536 hosts pays it up to 65,536 times. The readers are fed
// from memory, so no packet is sent. Every benchmark checks its result before the timed loop, so an input that is
// refused fails the benchmark instead of timing the error path.

import (
	"bytes"
	"encoding/hex"
	"net"
	"strings"
	"testing"

	"github.com/ofmprobe/ofmprobe/probe/netbios"
	"github.com/ofmprobe/ofmprobe/probe/smb"
)

// benchHex decodes hex digits written with spaces and newlines.
func benchHex(b *testing.B, s string) []byte {
	b.Helper()
	out, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		b.Fatalf("bad vector: %v", err)
	}
	return out
}

// benchWildcardAnswer is the SMB2 NEGOTIATE response with DialectRevision 0x02FF that an SMB2 server sends to the
// multi-protocol NEGOTIATE (MS-SMB2 §3.3.5.3.1): the 4-byte prefix, the 64-byte header and the 65-byte body.
const benchWildcardAnswer = `00000080
fe534d42 4000 0100 00000000 0000 0100 01000000 00000000 0000000000000000
00000000 00000000 0000000000000000 00000000000000000000000000000000
4100 0100 ff02 0000 000102030405060708090a0b0c0d0e0f 07000000
00000100 00000100 00000100 0060ba17bf9bda01 0000000000000000
0000 0000 00000000`

// BenchmarkReadSMBFrame times reading one negotiate answer frame, prefix included, from a reader: straight from
// TCP 445, and from TCP 139 where a NetBIOS keepalive comes first and is skipped.
func BenchmarkReadSMBFrame(b *testing.B) {
	frame := benchHex(b, benchWildcardAnswer)
	a, err := smb.ParseMultiProtocolAnswer(frame, smb.MultiProtocolDialects)
	if err != nil || a.Kind != smb.AnswerSMB2 {
		b.Fatalf("vector decodes as %v, %v; want an SMB2 answer", a.Kind, err)
	}
	keepalive := []byte{byte(netbios.SessionKeepAlive), 0, 0, 0}
	for _, bc := range []struct {
		name string
		in   []byte
		nbss bool
	}{
		{"direct-445", frame, false},
		{"nbss-139-keepalive", append(append([]byte(nil), keepalive...), frame...), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := bytes.NewReader(bc.in)
			got, err := readSMBFrame(r, negotiateFrameLimit, bc.nbss)
			if err != nil {
				b.Fatal(err)
			}
			if !bytes.Equal(got, frame) {
				b.Fatalf("read %x, want %x", got, frame)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				r.Reset(bc.in)
				got, err = readSMBFrame(r, negotiateFrameLimit, bc.nbss)
			}
			if err != nil || len(got) != len(frame) {
				b.Fatalf("last iteration: %d bytes, %v", len(got), err)
			}
		})
	}
}

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
			msg, err := readSessionMessage(conn)
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
				msg, err = readSessionMessage(conn)
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
	decodeAndFill := func() (NodeStatus, error) {
		var ns NodeStatus
		st, err := netbios.ParseNodeStatusResponse(in)
		if err != nil {
			return ns, err
		}
		fillNodeStatus(&ns, &st)
		return ns, nil
	}
	ns, err := decodeAndFill()
	if err != nil {
		b.Fatal(err)
	}
	if ns.State != NBAnswered || len(ns.Names) != 6 || ns.ComputerName != "OFM90" || ns.Workgroup != "OFMLAB" ||
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
