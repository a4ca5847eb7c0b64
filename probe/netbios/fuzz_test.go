package netbios

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// nameSeeds are encoded names and damaged ones.
var nameSeeds = [][]byte{
	cat(x("20"), lettersSMBServer, x("00")),
	cat(x("20"), lettersWildcard, x("00")),
	cat(x("20"), lettersLabSamba, x("03"), "ofm", x("03"), "lab", x("00")),
	longScopeVector(28),
	longScopeVector(29),
	x0("c00c"),
	x0("40"),
	x0("00"),
	cat(x("20"), "cKFDENECFDEFFCFGEFFCCACACACACACA", x("00")),
	cat(x("20"), lettersSMBServer, x("03"), "ofm", x("c00c")),
	{},
}

// nodeStatusSeeds are the node status vectors, good and hostile.
var nodeStatusSeeds = [][]byte{
	respFull, respZeroMAC, respShortStats, respCutStats, respNoStats, requestNBSTAT,
	cat(hdrResponse, rrWildcard, rrNBSTAT, x("ffff 02"), entryLabSamba20, entryOFMLab00[:10]),
	cat(hdrResponse, rrWildcard, rrNBSTAT, x("0013 ff"), entryLabSamba20),
	cat(hdrResponse, x("c00c"), rrNBSTAT, x("0001 00")),
	cat(x("beef 8400 0001 0001 0000 0000"), x("20"), lettersWildcard, x("00"), x("0021 0001"),
		x("20"), lettersLabSamba, x("00"), x("0021 0001 0000012c 0013 01"), entryLabSamba20),
	cat(hdrResponse, x("20"), lettersWildcard, x("03"), "ofm", x("03"), "lab", x("00"), rrNBSTAT, x("0013 01"), entryOFMLab00),
	cat(x("1337 8403 0000 0000 0000 0000")),
	respFull[:11],
}

// sessionSeeds are session service answers, good and hostile.
var sessionSeeds = [][]byte{
	x0("82 00 0000"), x0("85 00 0000"), x0("83 00 0001 80"), x0("83 00 0001 8f"),
	x0("84 00 0006 c0a80a05 008b"), x0("82 01 0000"), x0("83 00 0001"), x0("82 00 0000 ff53 4d42"),
	x0("00 01 ffff"), sessionRequestSMBServer, []byte("HTTP/1.0 400"), {},
}

// isSentinel reports whether err wraps one of the package's sentinels.
func isSentinel(err error) bool {
	for _, s := range []error{
		ErrShort, ErrBadName, ErrNamePointer, ErrNotResponse, ErrOpcode, ErrRCode, ErrNoAnswer,
		ErrWrongType, ErrWrongClass, ErrTooMany, ErrNotSessionAnswer, ErrBadFlags, ErrBadLength, ErrNotIPv4,
	} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func FuzzParseName(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, used, err := ParseName(data)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			if n != (Name{}) || used != 0 {
				t.Fatalf("ParseName returned %+q, %d with error %v", n, used, err)
			}
			return
		}
		if used < EncodedNameLen || used > len(data) || used > maxEncodedLen || data[used-1] != 0 {
			t.Fatalf("ParseName consumed %d of %d bytes", used, len(data))
		}
		if len(n.Name) > NameLen-1 {
			t.Fatalf("name %q longer than 15 bytes", n.Name)
		}
		// The exact encoder gives back a name that decodes the same. It may
		// refuse only a scope whose labels themselves contain dots.
		enc, err := appendName(nil, n.Name, n.Suffix, n.Scope, false)
		if err != nil {
			if !errors.Is(err, ErrBadName) || !strings.Contains(n.Scope, ".") {
				t.Fatalf("re-encoding %+q: %v", n, err)
			}
			return
		}
		n2, used2, err := ParseName(enc)
		if err != nil || n2 != n || used2 != len(enc) {
			t.Fatalf("round trip: %+q -> %x -> %+q, %d, %v", n, enc, n2, used2, err)
		}
		if n.Scope == "" && !bytes.Equal(enc, data[:used]) && canonicalPadding(data[1:33]) {
			t.Fatalf("canonical name %x re-encoded as %x", data[:used], enc)
		}
	})
}

// canonicalPadding reports whether 32 letters decode to a name padded the
// way the encoder pads: with spaces, or with NULs after a lone "*".
func canonicalPadding(letters []byte) bool {
	var raw [NameLen]byte
	for i := range raw {
		raw[i] = (letters[2*i]-'A')<<4 | (letters[2*i+1] - 'A')
	}
	name := trimName(raw[:NameLen-1])
	pad := byte(' ')
	if name == "*" {
		pad = 0
	}
	for i := len(name); i < NameLen-1; i++ {
		if raw[i] != pad {
			return false
		}
	}
	return string(raw[:len(name)]) == name
}

func FuzzAppendName(f *testing.F) {
	f.Add("*SMBSERVER", byte(0x20), "")
	f.Add("*", byte(0), "")
	f.Add("lab-samba", byte(0x20), "ofm.lab")
	f.Add(MSBrowse, byte(1), "")
	f.Add("* ", byte(0), "")
	f.Add("*\x00", byte(0x1b), "a..b")
	f.Fuzz(func(t *testing.T, name string, suffix byte, scope string) {
		enc, err := AppendName(nil, Name{Name: name, Suffix: suffix, Scope: scope})
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("error %v is not ErrBadName", err)
			}
			return
		}
		if len(enc) != EncodedNameLen+len(scope)+boolInt(scope != "") {
			t.Fatalf("encoded %q/%q as %d bytes", name, scope, len(enc))
		}
		got, used, err := ParseName(enc)
		if err != nil || used != len(enc) {
			t.Fatalf("ParseName(%x) = %+q, %d, %v", enc, got, used, err)
		}
		// Expect the name upper-cased and padded as the encoder pads it, then
		// trimmed as the decoder trims it.
		var raw [NameLen - 1]byte
		pad := byte(' ')
		if name == "*" {
			pad = 0
		}
		for i := range raw {
			raw[i] = pad
			if i < len(name) {
				raw[i] = upperASCII(name[i])
			}
		}
		want := Name{Name: trimName(raw[:]), Suffix: suffix, Scope: scope}
		if got != want {
			t.Fatalf("round trip of %+q gave %+q, want %+q", Name{name, suffix, scope}, got, want)
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func FuzzParseNodeStatusResponse(f *testing.F) {
	for _, s := range nodeStatusSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseNodeStatusResponse(data)
		if len(data) >= HeaderLen {
			if s.TxID != binary.BigEndian.Uint16(data) || s.Flags != binary.BigEndian.Uint16(data[2:]) {
				t.Fatalf("header fields %04x %04x not kept (err %v)", s.TxID, s.Flags, err)
			}
		}
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			if s.Names != nil || s.StatisticsLen != 0 {
				t.Fatalf("names or statistics returned with error %v", err)
			}
			return
		}
		for _, n := range s.Names {
			if len(n.Name) > NameLen-1 || strings.HasSuffix(n.Name, " ") {
				t.Fatalf("table name %q not trimmed to 15 bytes", n.Name)
			}
		}
		if s.StatisticsLen > len(data) {
			t.Fatalf("StatisticsLen %d beyond %d bytes", s.StatisticsLen, len(data))
		}
		if _, known := s.MAC(); known != (s.StatisticsLen >= 6) {
			t.Fatalf("MAC known %v with %d bytes of statistics", known, s.StatisticsLen)
		}
		// Re-encode and decode again: the same status, except that the
		// re-encoded RDLENGTH is always right.
		enc, err := AppendNodeStatusResponse(nil, &s)
		if err != nil {
			if !errors.Is(err, ErrBadName) || !strings.Contains(s.Name.Scope, ".") {
				t.Fatalf("re-encoding %+v: %v", s, err)
			}
			return
		}
		s2, err := ParseNodeStatusResponse(enc)
		if err != nil {
			t.Fatalf("re-encoded response %x does not parse: %v", enc, err)
		}
		want := s
		want.RDataTruncated = false
		if !reflect.DeepEqual(s2, want) {
			t.Fatalf("round trip\n%+v\nwant\n%+v", s2, want)
		}
	})
}

func FuzzParseSessionResponse(f *testing.F) {
	for _, s := range sessionSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseSessionResponse(data)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			if r != (SessionResponse{}) {
				t.Fatalf("response %+v with error %v", r, err)
			}
			return
		}
		// Parsing is strict, so every accepted answer is canonical.
		enc, err := AppendSessionResponse(nil, r)
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatalf("round trip of %x: %+v -> %x, %v", data, r, enc, err)
		}
	})
}

func FuzzParseSessionHeader(f *testing.F) {
	for _, s := range sessionSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseSessionHeader(data)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if h.Length > MaxSessionLength {
			t.Fatalf("length %d over 17 bits", h.Length)
		}
		enc, err := AppendSessionHeader(nil, h)
		if err != nil || !bytes.Equal(enc, data[:SessionHeaderLen]) {
			t.Fatalf("round trip of %x: %+v -> %x, %v", data[:SessionHeaderLen], h, enc, err)
		}
	})
}
