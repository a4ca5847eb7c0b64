package netbios

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestAppendNodeStatusRequest(t *testing.T) {
	got := AppendNodeStatusRequest(nil, 0x1337)
	if !bytes.Equal(got, requestNBSTAT) {
		t.Errorf("AppendNodeStatusRequest(nil, 0x1337) =\n%x\nwant\n%x", got, requestNBSTAT)
	}
	if len(got) != NodeStatusRequestLen || NodeStatusRequestLen != 50 {
		t.Errorf("request is %d bytes, NodeStatusRequestLen %d, want 50", len(got), NodeStatusRequestLen)
	}

	// Appending keeps what was there and writes the ID big-endian.
	got = AppendNodeStatusRequest([]byte("ab"), 0x80F0)
	want := cat("ab", x("80f0"), string(requestNBSTAT[2:]))
	if !bytes.Equal(got, want) {
		t.Errorf("AppendNodeStatusRequest(ab, 0x80F0) =\n%x\nwant\n%x", got, want)
	}
}

func TestParseNodeStatusResponse(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want NodeStatus
	}{
		{
			name: "six names and complete statistics",
			in:   respFull,
			want: NodeStatus{
				TxID: 0x1337, Flags: 0x8400, Name: Wildcard,
				Names:         respFullNames,
				Statistics:    statsCountingDecoded,
				StatisticsLen: 46,
			},
		},
		{
			name: "all-zero MAC",
			in:   respZeroMAC,
			want: NodeStatus{
				TxID: 0x1337, Flags: 0x8400, Name: Wildcard,
				Names:         []NodeName{{Name: "LAB-SAMBA", Suffix: 0x20, Flags: 0x0400}},
				StatisticsLen: 46,
			},
		},
		{
			name: "statistics too short for the MAC",
			in:   respShortStats,
			want: NodeStatus{
				TxID: 0x1337, Flags: 0x8400, Name: Wildcard,
				Names:         []NodeName{respFullNames[0], respFullNames[2], respFullNames[4]},
				Statistics:    Statistics{UnitID: MAC{0x52, 0x54, 0x00, 0x12}}, // the bytes sent, not a MAC
				StatisticsLen: 4,
			},
		},
		{
			name: "statistics cut by the end of the datagram",
			in:   respCutStats,
			want: NodeStatus{
				TxID: 0x1337, Flags: 0x8400, Name: Wildcard,
				Names: []NodeName{respFullNames[0], respFullNames[2], respFullNames[4]},
				Statistics: Statistics{
					UnitID:  MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
					Jumpers: 1, TestResult: 2, VersionNumber: 0x0304,
				},
				StatisticsLen:  10,
				RDataTruncated: true,
			},
		},
		{
			name: "no statistics",
			in:   respNoStats,
			want: NodeStatus{
				TxID: 0x1337, Flags: 0x8400, Name: Wildcard,
				Names: []NodeName{{Name: "LAB-SAMBA", Suffix: 0x20, Flags: 0x0400}},
			},
		},
		{
			name: "empty name table",
			in:   cat(hdrResponse, rrWildcard, rrNBSTAT, x("0001 00")),
			want: NodeStatus{TxID: 0x1337, Flags: 0x8400, Name: Wildcard},
		},
		{
			name: "question section is skipped, extra bytes after rdata ignored",
			in: cat(x("beef 8400 0001 0001 0000 0000"),
				x("20"), lettersWildcard, x("00"), x("0021 0001"),
				x("20"), lettersLabSamba, x("00"), x("0021 0001 0000012c 0013 01"), entryLabSamba20,
				"trailing"),
			want: NodeStatus{
				TxID: 0xbeef, Flags: 0x8400, Name: Name{Name: "LAB-SAMBA", Suffix: 0x20}, TTL: 300,
				Names: []NodeName{{Name: "LAB-SAMBA", Suffix: 0x20, Flags: 0x0400}},
			},
		},
		{
			name: "scope on the answer name",
			in: cat(hdrResponse, x("20"), lettersWildcard, x("03"), "ofm", x("03"), "lab", x("00"),
				rrNBSTAT, x("0013 01"), entryOFMLab00),
			want: NodeStatus{
				TxID: 0x1337, Flags: 0x8400, Name: Name{Name: "*", Scope: "ofm.lab"},
				Names: []NodeName{{Name: "OFMLAB", Suffix: 0x00, Flags: 0x8400}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNodeStatusResponse(tt.in)
			if err != nil {
				t.Fatalf("ParseNodeStatusResponse error: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseNodeStatusResponse =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseNodeStatusResponseErrors(t *testing.T) {
	full := string(respFull)
	answer := full[HeaderLen:] // RR_NAME onwards
	tests := []struct {
		name    string
		in      []byte
		wantIs  error
		wantErr string
		want    NodeStatus // the partial result
	}{
		{"zero length", nil, ErrShort, "message too short: header is 0 bytes, need 12", NodeStatus{}},
		{"truncated header", respFull[:11], ErrShort, "message too short: header is 11 bytes, need 12", NodeStatus{}},
		{"header only", respFull[:12], ErrShort, "answer name: message too short: name: no length byte",
			NodeStatus{TxID: 0x1337, Flags: 0x8400}},
		{"our own request", requestNBSTAT, ErrNotResponse, "not a name service response: flags 0x0000",
			NodeStatus{TxID: 0x1337}},
		{"registration opcode", cat(x("1337 a800 0000 0001 0000 0000"), answer), ErrOpcode,
			"unexpected name service opcode: opcode 5, want 0 (query)", NodeStatus{TxID: 0x1337, Flags: 0xa800}},
		{"rcode name error", cat(x("1337 8403 0000 0000 0000 0000")), ErrRCode,
			"name service error response: rcode 3 (name error: name does not exist)", NodeStatus{TxID: 0x1337, Flags: 0x8403}},
		{"rcode unknown", cat(x("1337 840f 0000 0001 0000 0000"), answer), ErrRCode,
			"name service error response: rcode 15 (unknown rcode 15)", NodeStatus{TxID: 0x1337, Flags: 0x840f}},
		{"no answer", cat(x("1337 8400 0000 0000 0000 0000"), answer), ErrNoAnswer,
			"no answer record: ancount 0", NodeStatus{TxID: 0x1337, Flags: 0x8400}},
		{"compression pointer", cat(hdrResponse, x("c00c"), rrNBSTAT, x("0001 00")), ErrNamePointer,
			"answer name: compressed netbios name not supported: label string pointer at byte 0",
			NodeStatus{TxID: 0x1337, Flags: 0x8400}},
		{"bad letters", cat(hdrResponse, x("20"), "CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAZ", x("00"), rrNBSTAT, x("0001 00")), ErrBadName,
			`answer name: bad netbios name: byte 31 ("AZ") is not a letter 'A'..'P'`,
			NodeStatus{TxID: 0x1337, Flags: 0x8400}},
		{"question cut", cat(x("1337 8400 0001 0001 0000 0000"), rrWildcard, x("00")), ErrShort,
			"message too short: question 1: 1 bytes for type and class, need 4", NodeStatus{TxID: 0x1337, Flags: 0x8400}},
		{"question count beyond data", cat(x("1337 8400 0002 0001 0000 0000"), rrWildcard, x("0021 0001")), ErrShort,
			"question 2 name: message too short: name: no length byte", NodeStatus{TxID: 0x1337, Flags: 0x8400}},
		{"record header cut", cat(hdrResponse, rrWildcard, x("0021 0001 00")), ErrShort,
			"message too short: answer record: 5 bytes for type, class, ttl and rdlength, need 10",
			NodeStatus{TxID: 0x1337, Flags: 0x8400, Name: Wildcard}},
		{"NB record, not NBSTAT", cat(hdrResponse, rrWildcard, x("0020 0001 00000000 0006 0000 c0a80001")), ErrWrongType,
			"answer is not a node status record: type 0x0020, want 0x0021",
			NodeStatus{TxID: 0x1337, Flags: 0x8400, Name: Wildcard}},
		{"class CHAOS", cat(hdrResponse, rrWildcard, x("0021 0003 00000000 0001 00")), ErrWrongClass,
			"answer class is not internet: class 0x0003, want 0x0001",
			NodeStatus{TxID: 0x1337, Flags: 0x8400, Name: Wildcard}},
		{"rdlength zero", cat(hdrResponse, rrWildcard, rrNBSTAT, x("0000"), x("01"), entryLabSamba20), ErrShort,
			"message too short: rdata has no NUM_NAMES byte (rdlength 0, 19 bytes present)",
			NodeStatus{TxID: 0x1337, Flags: 0x8400, Name: Wildcard}},
		{"rdata missing", cat(hdrResponse, rrWildcard, rrNBSTAT, x("0013")), ErrShort,
			"message too short: rdata has no NUM_NAMES byte (rdlength 19, 0 bytes present)",
			NodeStatus{TxID: 0x1337, Flags: 0x8400, Name: Wildcard, RDataTruncated: true}},
		{"rdlength too large, names cut", cat(hdrResponse, rrWildcard, rrNBSTAT, x("ffff 02"), entryLabSamba20, entryOFMLab00[:10]),
			ErrShort, "message too short: 2 names need 37 bytes of rdata, have 29 (rdlength 65535)",
			NodeStatus{TxID: 0x1337, Flags: 0x8400, Name: Wildcard, RDataTruncated: true}},
		{"num_names larger than data", cat(hdrResponse, rrWildcard, rrNBSTAT, x("0013 0a"), entryLabSamba20),
			ErrShort, "message too short: 10 names need 181 bytes of rdata, have 19 (rdlength 19)",
			NodeStatus{TxID: 0x1337, Flags: 0x8400, Name: Wildcard}},
		{"num_names 255 with little data", cat(hdrResponse, rrWildcard, rrNBSTAT, x("0013 ff"), entryLabSamba20),
			ErrShort, "message too short: 255 names need 4591 bytes of rdata, have 19 (rdlength 19)",
			NodeStatus{TxID: 0x1337, Flags: 0x8400, Name: Wildcard}},
		{"rdlength shorter than the names", cat(hdrResponse, rrWildcard, rrNBSTAT, x("000a 01"), entryLabSamba20),
			ErrShort, "message too short: 1 names need 19 bytes of rdata, have 10 (rdlength 10)",
			NodeStatus{TxID: 0x1337, Flags: 0x8400, Name: Wildcard}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNodeStatusResponse(tt.in)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("ParseNodeStatusResponse error = %v, want %v", err, tt.wantIs)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error text\n%s\nwant\n%s", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("partial result\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestNodeStatusHelpers(t *testing.T) {
	full, err := ParseNodeStatusResponse(respFull)
	if err != nil {
		t.Fatal(err)
	}
	onlyServer := NodeStatus{Names: []NodeName{
		{Name: "OFMLAB", Suffix: 0x20, Flags: NameGroup | NameActive}, // a group <20> is not a server
		{Name: "FILER", Suffix: 0x20, Flags: NameActive},
		{Name: "OFMLAB", Suffix: 0x1B, Flags: NameActive},
		{Name: MSBrowse, Suffix: 0x01, Flags: NameActive}, // unique: not the browse master group
	}}
	type result struct {
		Workgroup, FileServer, ComputerName, MasterBrowser, DomainMasterBrowser  string
		HasWorkgroup, HasFileServer, HasComputerName, HasMaster, HasDomainMaster bool
		MSBrowse                                                                 bool
	}
	collect := func(s NodeStatus) result {
		var r result
		r.Workgroup, r.HasWorkgroup = s.Workgroup()
		r.FileServer, r.HasFileServer = s.FileServer()
		r.ComputerName, r.HasComputerName = s.ComputerName()
		r.MasterBrowser, r.HasMaster = s.MasterBrowser()
		r.DomainMasterBrowser, r.HasDomainMaster = s.DomainMasterBrowser()
		r.MSBrowse = s.HasMSBrowse()
		return r
	}
	tests := []struct {
		name string
		in   NodeStatus
		want result
	}{
		{"samba host", full, result{
			Workgroup: "OFMLAB", HasWorkgroup: true,
			FileServer: "LAB-SAMBA", HasFileServer: true,
			ComputerName: "LAB-SAMBA", HasComputerName: true,
			MasterBrowser: "OFMLAB", HasMaster: true,
			MSBrowse: true,
		}},
		{"server name only", onlyServer, result{
			FileServer: "FILER", HasFileServer: true,
			ComputerName: "FILER", HasComputerName: true,
			DomainMasterBrowser: "OFMLAB", HasDomainMaster: true,
		}},
		{"empty table", NodeStatus{}, result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := collect(tt.in); got != tt.want {
				t.Errorf("helpers =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestNodeStatusMAC(t *testing.T) {
	tests := []struct {
		name         string
		in           []byte
		wantMAC      MAC
		wantKnown    bool
		wantZero     bool
		wantComplete bool
		wantString   string
	}{
		{"complete", respFull, MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, true, false, true, "52:54:00:12:34:56"},
		{"all zero", respZeroMAC, MAC{}, true, true, true, "00:00:00:00:00:00"},
		{"cut after the MAC", respCutStats, MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, true, false, false, "52:54:00:12:34:56"},
		{"too short for the MAC", respShortStats, MAC{}, false, true, false, "00:00:00:00:00:00"},
		{"no statistics", respNoStats, MAC{}, false, true, false, "00:00:00:00:00:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseNodeStatusResponse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			mac, known := s.MAC()
			if mac != tt.wantMAC || known != tt.wantKnown || mac.IsZero() != tt.wantZero ||
				s.StatisticsComplete() != tt.wantComplete || mac.String() != tt.wantString {
				t.Errorf("MAC() = %v, %v; IsZero %v; StatisticsComplete %v; want %v, %v; %v; %v",
					mac, known, mac.IsZero(), s.StatisticsComplete(), tt.wantMAC, tt.wantKnown, tt.wantZero, tt.wantComplete)
			}
		})
	}
}

func TestNameFlags(t *testing.T) {
	type decoded struct {
		Group, Deregistering, Conflict, Active, Permanent bool
		NodeType                                          NodeType
		String                                            string
	}
	tests := []struct {
		in   NameFlags
		want decoded
	}{
		{0x0400, decoded{Active: true, NodeType: BNode, String: "UNIQUE B ACTIVE"}},
		{0x8400, decoded{Group: true, Active: true, NodeType: BNode, String: "GROUP B ACTIVE"}},
		{0x2400, decoded{Active: true, NodeType: PNode, String: "UNIQUE P ACTIVE"}},
		{0x4400, decoded{Active: true, NodeType: MNode, String: "UNIQUE M ACTIVE"}},
		{0x6600, decoded{Active: true, Permanent: true, NodeType: HNode, String: "UNIQUE H ACTIVE PERMANENT"}},
		{0xFE00, decoded{Group: true, Deregistering: true, Conflict: true, Active: true, Permanent: true, NodeType: HNode,
			String: "GROUP H ACTIVE PERMANENT CONFLICT DEREGISTERING"}},
		{0x1800, decoded{Deregistering: true, Conflict: true, NodeType: BNode, String: "UNIQUE B CONFLICT DEREGISTERING"}},
		{0x01FF, decoded{NodeType: BNode, String: "UNIQUE B"}}, // reserved bits only
	}
	for _, tt := range tests {
		f := tt.in
		got := decoded{f.Group(), f.Deregistering(), f.Conflict(), f.Active(), f.Permanent(), f.NodeType(), f.String()}
		if got != tt.want {
			t.Errorf("NameFlags(0x%04x) = %+v, want %+v", uint16(f), got, tt.want)
		}
	}
	if got := []string{BNode.String(), PNode.String(), MNode.String(), HNode.String()}; strings.Join(got, "") != "BPMH" {
		t.Errorf("node type strings = %q", got)
	}
}

func TestNodeNameString(t *testing.T) {
	tests := []struct {
		in          NodeName
		want        string
		wantMeaning string
	}{
		{respFullNames[0], "LAB-SAMBA<00> UNIQUE H ACTIVE PERMANENT", "workstation service"},
		{respFullNames[3], `\x01\x02__MSBROWSE__\x02<01> GROUP B ACTIVE`, "master browser (__MSBROWSE__)"},
		{respFullNames[4], "OFMLAB<00> GROUP B ACTIVE", "domain or workgroup name"},
		{respFullNames[5], "OFMLAB<1D> UNIQUE B ACTIVE", "master browser"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
		if got := tt.in.Meaning(); got != tt.wantMeaning {
			t.Errorf("%v Meaning() = %q, want %q", tt.in, got, tt.wantMeaning)
		}
	}
}

func TestRCodeString(t *testing.T) {
	want := []string{
		"no error",
		"format error: request was invalidly formatted",
		"server failure: cannot process name",
		"name error: name does not exist",
		"unsupported request",
		"refused",
		"active error: name is owned by another node",
		"name in conflict",
		"unknown rcode 8",
	}
	for i, w := range want {
		if got := RCode(i).String(); got != w {
			t.Errorf("RCode(%d) = %q, want %q", i, got, w)
		}
	}
}

func TestAppendNodeStatusResponse(t *testing.T) {
	// Each well-formed vector decodes and re-encodes to the same bytes.
	for name, vec := range map[string][]byte{
		"full":        respFull,
		"zero MAC":    respZeroMAC,
		"short stats": respShortStats,
		"no stats":    respNoStats,
	} {
		s, err := ParseNodeStatusResponse(vec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := AppendNodeStatusResponse(nil, &s)
		if err != nil {
			t.Fatalf("%s: AppendNodeStatusResponse: %v", name, err)
		}
		if !bytes.Equal(got, vec) {
			t.Errorf("%s: re-encoded\n%x\nwant\n%x", name, got, vec)
		}
	}

	// Statistics longer than 46 bytes are padded with zeros.
	s := NodeStatus{TxID: 1, Flags: 0x8400, Name: Wildcard, StatisticsLen: 48, Statistics: Statistics{UnitID: MAC{1, 2, 3, 4, 5, 6}}}
	got, err := AppendNodeStatusResponse(nil, &s)
	want := cat(x("0001 8400 0000 0001 0000 0000"), rrWildcard, rrNBSTAT, x("0031 00 010203040506"), strings.Repeat("\x00", 42))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("long statistics: %x, %v\nwant %x", got, err, want)
	}

	errTests := []struct {
		name    string
		in      NodeStatus
		wantIs  error
		wantErr string
	}{
		{"too many names", NodeStatus{Name: Wildcard, Names: make([]NodeName, 256)}, ErrTooMany,
			"too many items for field: 256 names, at most 255 fit NUM_NAMES"},
		{"long table name", NodeStatus{Name: Wildcard, Names: []NodeName{{Name: "ABCDEFGHIJKLMNOP"}}}, ErrBadName,
			`bad netbios name: name 1 "ABCDEFGHIJKLMNOP" is 16 bytes, at most 15 allowed`},
		{"bad scope", NodeStatus{Name: Name{Name: "*", Scope: "."}}, ErrBadName,
			`answer name: bad netbios name: scope "." has a label of 0 bytes, want 1 to 63`},
		{"negative statistics", NodeStatus{Name: Wildcard, StatisticsLen: -1}, ErrBadLength,
			"bad length: negative statistics length -1"},
		{"rdata too long", NodeStatus{Name: Wildcard, StatisticsLen: 0xFFFF}, ErrTooMany,
			"too many items for field: rdata is 65536 bytes, at most 65535 fit RDLENGTH"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendNodeStatusResponse([]byte("x"), &tt.in)
			if !errors.Is(err, tt.wantIs) || err.Error() != tt.wantErr {
				t.Errorf("error = %v, want %v: %s", err, tt.wantIs, tt.wantErr)
			}
			if string(got) != "x" {
				t.Errorf("b changed on error: %q", got)
			}
		})
	}
}
