package netbios

import "testing"

func BenchmarkAppendNodeStatusRequest(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, NodeStatusRequestLen)
	var txid uint16
	for b.Loop() {
		txid++
		buf = AppendNodeStatusRequest(buf[:0], txid)
	}
	b.SetBytes(NodeStatusRequestLen)
}

func BenchmarkParseNodeStatusResponse(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(respFull)))
	for b.Loop() {
		if _, err := ParseNodeStatusResponse(respFull); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseName(b *testing.B) {
	b.ReportAllocs()
	in := cat(x("20"), lettersSMBServer, x("00"))
	for b.Loop() {
		if _, _, err := ParseName(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSessionResponse(b *testing.B) {
	b.ReportAllocs()
	in := x0("84 00 0006 c0a80a05 008b")
	for b.Loop() {
		if _, err := ParseSessionResponse(in); err != nil {
			b.Fatal(err)
		}
	}
}
