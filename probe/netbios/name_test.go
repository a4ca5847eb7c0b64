package netbios

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestAppendName(t *testing.T) {
	tests := []struct {
		name string
		in   Name
		want []byte
	}{
		{"smbserver", Name{Name: "*SMBSERVER", Suffix: 0x20}, cat(x("20"), lettersSMBServer, x("00"))},
		{"wildcard", Wildcard, cat(x("20"), lettersWildcard, x("00"))},
		{"host", Name{Name: "LAB-SAMBA", Suffix: 0x20}, cat(x("20"), lettersLabSamba, x("00"))},
		{"lower case is folded", Name{Name: "lab-samba", Suffix: 0x20}, cat(x("20"), lettersLabSamba, x("00"))},
		{"workstation", Name{Name: "OFMPROBE"}, cat(x("20"), lettersOFMProbe, x("00"))},
		{"fifteen bytes", Name{Name: "ABCDEFGHIJKLMNO", Suffix: 0x1D},
			cat(x("20"), "EBECEDEEEFEGEHEIEJEKELEMENEOEPBN", x("00"))},
		{"msbrowse", Name{Name: MSBrowse, Suffix: 0x01},
			cat(x("20"), "ABACFPFPENFDECFCEPFHFDEFFPFPACAB", x("00"))},
		{"scope", Name{Name: "LAB-SAMBA", Suffix: 0x20, Scope: "ofm.lab"},
			cat(x("20"), lettersLabSamba, x("03"), "ofm", x("03"), "lab", x("00"))},
		{"longest scope", Name{Name: "OFMPROBE", Scope: longScope(28)}, longScopeVector(28)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{0xEE}
			got, err := AppendName(prefix, tt.in)
			if err != nil {
				t.Fatalf("AppendName(%v) error: %v", tt.in, err)
			}
			if want := append([]byte{0xEE}, tt.want...); !bytes.Equal(got, want) {
				t.Errorf("AppendName(%v) =\n%x\nwant\n%x", tt.in, got, want)
			}
			enc, err := EncodeName(tt.in)
			if err != nil || !bytes.Equal(enc, tt.want) {
				t.Errorf("EncodeName(%v) = %x, %v; want %x", tt.in, enc, err, tt.want)
			}
		})
	}
}

func TestAppendNameErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      Name
		wantErr string
	}{
		{"empty", Name{}, "bad netbios name: empty name"},
		{"sixteen bytes", Name{Name: "ABCDEFGHIJKLMNOP"}, `bad netbios name: "ABCDEFGHIJKLMNOP" is 16 bytes, at most 15 allowed`},
		{"empty scope label", Name{Name: "A", Scope: "ofm..lab"}, `bad netbios name: scope "ofm..lab" has a label of 0 bytes, want 1 to 63`},
		{"scope label too long", Name{Name: "A", Scope: strings.Repeat("s", 64)},
			`bad netbios name: scope "` + strings.Repeat("s", 64) + `" has a label of 64 bytes, want 1 to 63`},
		{"scope too long", Name{Name: "A", Scope: longScope(29)},
			`bad netbios name: encoded name with scope "` + longScope(29) + `" is 256 bytes, at most 255 allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{1, 2, 3}
			got, err := AppendName(prefix, tt.in)
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("AppendName(%v) error = %v, want ErrBadName", tt.in, err)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error text\n%s\nwant\n%s", err, tt.wantErr)
			}
			if !bytes.Equal(got, prefix) {
				t.Errorf("AppendName changed b on error: %x", got)
			}
		})
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    Name
		wantLen int
	}{
		{"smbserver", cat(x("20"), lettersSMBServer, x("00")), Name{Name: "*SMBSERVER", Suffix: 0x20}, 34},
		{"wildcard", cat(x("20"), lettersWildcard, x("00")), Wildcard, 34},
		{"wildcard with suffix", cat(x("20"), "CKAAAAAAAAAAAAAAAAAAAAAAAAAAAACA", x("00")), Name{Name: "*", Suffix: 0x20}, 34},
		{"wildcard padded with spaces", cat(x("20"), "CKCACACACACACACACACACACACACACAAA", x("00")), Wildcard, 34},
		{"trailing data is not consumed", cat(x("20"), lettersOFMProbe, x("00"), x("0021 0001")), Name{Name: "OFMPROBE"}, 34},
		{"msbrowse", cat(x("20"), "ABACFPFPENFDECFCEPFHFDEFFPFPACAB", x("00")), Name{Name: MSBrowse, Suffix: 0x01}, 34},
		{"lower-case bytes are kept", cat(x("20"), "GMGBGCCNHDGBGNGCGBCACACACACACACA", x("00")), Name{Name: "lab-samba", Suffix: 0x20}, 34},
		{"inner spaces are kept", cat(x("20"), "EBCAECCACACACACACACACACACACACAAA", x("00")), Name{Name: "A B"}, 34},
		{"scope", cat(x("20"), lettersLabSamba, x("03"), "ofm", x("03"), "lab", x("00"), "tail"),
			Name{Name: "LAB-SAMBA", Suffix: 0x20, Scope: "ofm.lab"}, 42},
		{"longest scope", longScopeVector(28), Name{Name: "OFMPROBE", Scope: longScope(28)}, 255},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := ParseName(tt.in)
			if err != nil {
				t.Fatalf("ParseName error: %v", err)
			}
			if got != tt.want || n != tt.wantLen {
				t.Errorf("ParseName = %+q, %d; want %+q, %d", got, n, tt.want, tt.wantLen)
			}
		})
	}
}

func TestParseNameErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		wantIs  error
		wantErr string
	}{
		{"zero length", nil, ErrShort, "message too short: name: no length byte"},
		{"root label only", x0("00"), ErrBadName, "bad netbios name: first label is 0 bytes, want 32"},
		{"first label too short", cat(x("10"), "CKAAAAAAAAAAAAAA", x("00")), ErrBadName, "bad netbios name: first label is 16 bytes, want 32"},
		{"first label too long", cat(x("21"), lettersSMBServer, "A", x("00")), ErrBadName, "bad netbios name: first label is 33 bytes, want 32"},
		{"compression pointer", x0("c00c"), ErrNamePointer, "compressed netbios name not supported: label string pointer at byte 0"},
		{"reserved label type", x0("40"), ErrBadName, "bad netbios name: reserved label type 0x40 at byte 0"},
		{"letters cut", cat(x("20"), "CKFDENECFDEF"), ErrShort, "message too short: name: 13 bytes, need 34"},
		{"no root label", cat(x("20"), lettersSMBServer), ErrShort, "message too short: name: no root label after 33 bytes"},
		{"letter Q", cat(x("20"), "CKFDENECFDEFFCFGEFFCCACACACACAQA", x("00")), ErrBadName, `bad netbios name: byte 31 ("QA") is not a letter 'A'..'P'`},
		{"lower-case letter", cat(x("20"), "cKFDENECFDEFFCFGEFFCCACACACACACA", x("00")), ErrBadName, `bad netbios name: byte 1 ("cK") is not a letter 'A'..'P'`},
		{"digit", cat(x("20"), "CKFDENECFDEFFCFGEFFCCACACACACAC0", x("00")), ErrBadName, `bad netbios name: byte 31 ("C0") is not a letter 'A'..'P'`},
		{"scope pointer", cat(x("20"), lettersSMBServer, x("03"), "ofm", x("c00c")), ErrNamePointer, "compressed netbios name not supported: label string pointer at byte 37"},
		{"scope label cut", cat(x("20"), lettersSMBServer, x("05"), "ofm"), ErrShort, "message too short: scope label at byte 33 is 5 bytes, 3 left"},
		{"scope without root", cat(x("20"), lettersSMBServer, x("03"), "ofm"), ErrShort, "message too short: name: no root label after 37 bytes"},
		{"name over 255 bytes", longScopeVector(29), ErrBadName, "bad netbios name: name longer than 255 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := ParseName(tt.in)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("ParseName error = %v, want %v", err, tt.wantIs)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error text\n%s\nwant\n%s", err, tt.wantErr)
			}
			if got != (Name{}) || n != 0 {
				t.Errorf("ParseName returned %+q, %d with an error", got, n)
			}
		})
	}
}

// longScope returns a scope of three 63-byte labels and one of last bytes.
// With last = 28 the encoded name is exactly 255 bytes, the limit.
func longScope(last int) string {
	return strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", last)
}

// longScopeVector is the encoding of OFMPROBE<00> with longScope(last).
func longScopeVector(last int) []byte {
	return cat(x("20"), lettersOFMProbe, x("3f"), strings.Repeat("a", 63), x("3f"), strings.Repeat("b", 63),
		x("3f"), strings.Repeat("c", 63), string(rune(last)), strings.Repeat("d", last), x("00"))
}

// x0 is x as a byte slice.
func x0(s string) []byte { return []byte(x(s)) }

func TestNameString(t *testing.T) {
	tests := []struct {
		in   Name
		want string
	}{
		{Name{Name: "*SMBSERVER", Suffix: 0x20}, "*SMBSERVER<20>"},
		{Wildcard, "*<00>"},
		{Name{Name: MSBrowse, Suffix: 0x01}, `\x01\x02__MSBROWSE__\x02<01>`},
		{Name{Name: "OFMLAB", Suffix: 0x1D}, "OFMLAB<1D>"},
		{Name{Name: `A\B`, Suffix: 0xFF, Scope: "ofm.lab"}, `A\x5cB<FF>.ofm.lab`},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%+q.String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSuffixMeaning(t *testing.T) {
	tests := []struct {
		suffix byte
		group  bool
		want   string
	}{
		{0x00, false, "workstation service"},
		{0x03, false, "messenger service"},
		{0x1B, false, "domain master browser"},
		{0x1D, false, "master browser"},
		{0x1F, false, "NetDDE service"},
		{0x20, false, "file server service"},
		{0x00, true, "domain or workgroup name"},
		{0x01, true, "master browser (__MSBROWSE__)"},
		{0x1C, true, "domain controllers"},
		{0x1E, true, "browser service elections"},
		{0x20, true, ""},
		{0x1C, false, ""},
		{0x42, false, ""},
	}
	for _, tt := range tests {
		if got := SuffixMeaning(tt.suffix, tt.group); got != tt.want {
			t.Errorf("SuffixMeaning(0x%02x, %v) = %q, want %q", tt.suffix, tt.group, got, tt.want)
		}
	}
}
