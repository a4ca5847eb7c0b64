package netbios

// Benchmarks for the NetBIOS codecs that run once per probed host: the node status request and its answer on UDP
// 137, and the session request and its answer on TCP 139. A sweep of 65,536 hosts pays each of these 65,536 times,
// so their time and allocations per call bound the CPU cost of the NetBIOS steps. Every benchmark checks its result
// before the timed loop, so an input that fails to parse fails the benchmark instead of timing the error path.

import (
	"net/netip"
	"testing"
)

// BenchmarkNodeStatusRequest times building the 50-byte wildcard node status request into a reused buffer.
func BenchmarkNodeStatusRequest(b *testing.B) {
	buf := AppendNodeStatusRequest(make([]byte, 0, NodeStatusRequestLen), 0x1337)
	if string(buf) != string(requestNBSTAT) {
		b.Fatalf("request = %x, want %x", buf, requestNBSTAT)
	}
	b.ReportAllocs()
	b.SetBytes(NodeStatusRequestLen)
	var txid uint16
	for b.Loop() {
		txid++
		buf = AppendNodeStatusRequest(buf[:0], txid)
	}
}

// BenchmarkNodeStatusAnswer times decoding node status answers: a six-name table with full statistics (a Samba host
// that is also master browser for its workgroup) and the one-name, zero-MAC answer Samba sends by default.
func BenchmarkNodeStatusAnswer(b *testing.B) {
	for _, bc := range []struct {
		name  string
		in    []byte
		names int
	}{
		{"six-names", respFull, 6},
		{"one-name-zero-mac", respZeroMAC, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st, err := ParseNodeStatusResponse(bc.in)
			if err != nil {
				b.Fatal(err)
			}
			if len(st.Names) != bc.names || !st.StatisticsComplete() {
				b.Fatalf("decoded %d names, statistics complete %v; want %d names, complete", len(st.Names),
					st.StatisticsComplete(), bc.names)
			}
			if _, ok := st.FileServer(); !ok {
				b.Fatal("no file server name in the answer")
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				st, err = ParseNodeStatusResponse(bc.in)
			}
			if err != nil || len(st.Names) != bc.names {
				b.Fatalf("last iteration: %d names, %v", len(st.Names), err)
			}
		})
	}
}

// BenchmarkSessionRequest times building the session request that calls *SMBSERVER<20> from OFMPROBE<00>, which
// encodes two names, into a reused buffer.
func BenchmarkSessionRequest(b *testing.B) {
	called := Name{Name: "*SMBSERVER", Suffix: SuffixFileServer}
	calling := Name{Name: "OFMPROBE", Suffix: SuffixWorkstation}
	buf, err := AppendSessionRequest(make([]byte, 0, len(sessionRequestSMBServer)), called, calling)
	if err != nil {
		b.Fatal(err)
	}
	if string(buf) != string(sessionRequestSMBServer) {
		b.Fatalf("request = %x, want %x", buf, sessionRequestSMBServer)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf, err = AppendSessionRequest(buf[:0], called, calling)
	}
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSessionAnswer times decoding the three answers a session request gets: positive, negative (called name
// not present) and retarget.
func BenchmarkSessionAnswer(b *testing.B) {
	for _, bc := range []struct {
		name string
		in   []byte
		want SessionResponse
	}{
		{"positive", x0("82 00 0000"), SessionResponse{Type: SessionPositiveResponse}},
		{"negative", x0("83 00 0001 82"), SessionResponse{Type: SessionNegativeResponse, Error: CalledNameNotPresent}},
		{"retarget", x0("84 00 0006 c0a80a05 008b"), SessionResponse{Type: SessionRetargetResponse,
			Retarget: netip.MustParseAddrPort("192.168.10.5:139")}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			got, err := ParseSessionResponse(bc.in)
			if err != nil {
				b.Fatal(err)
			}
			if got != bc.want {
				b.Fatalf("decoded %+v, want %+v", got, bc.want)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				got, err = ParseSessionResponse(bc.in)
			}
			if err != nil || got != bc.want {
				b.Fatalf("last iteration: %+v, %v", got, err)
			}
		})
	}
}
