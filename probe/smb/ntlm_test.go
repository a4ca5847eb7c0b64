package smb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// ntlmSpecChallenge is the CHALLENGE_MESSAGE of MS-NLMP §4.2.4.3 (the NTLMv2 example): target name "Server", version
// 6.0 build 6000, and the AV_PAIRs MsvAvNbDomainName "Domain" and MsvAvNbComputerName "Server".
const ntlmSpecChallenge = "4e544c4d53535000 02000000 0c000c0038000000 33828ae2 0123456789abcdef 0000000000000000" +
	" 2400240044000000 060070170000000f 530065007200760065007200" +
	" 02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000"

// challengeWith builds a CHALLENGE_MESSAGE with the given AV_PAIRs (id, value) and a version.
func challengeWith(pairs ...any) []byte {
	le := binary.LittleEndian
	var info []byte
	for i := 0; i < len(pairs); i += 2 {
		v := pairs[i+1].([]byte)
		info = le.AppendUint16(info, uint16(pairs[i].(int)))
		info = le.AppendUint16(info, uint16(len(v)))
		info = append(info, v...)
	}
	info = append(info, 0, 0, 0, 0)
	b := append([]byte(nil), ntlmSignature...)
	b = le.AppendUint32(b, ntlmChallengeMessage)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, 56)
	b = le.AppendUint32(b, ntlmFlagUnicode|ntlmFlagVersion|ntlmFlagTargetInfo)
	b = append(b, make([]byte, 16)...)
	b = le.AppendUint16(b, uint16(len(info)))
	b = le.AppendUint16(b, uint16(len(info)))
	b = le.AppendUint32(b, 56)
	b = append(b, 10, 0, 0x7c, 0x4f, 0, 0, 0, 15) // 10.0 build 20348
	return append(b, info...)
}

func u16(s string) []byte {
	var b []byte
	for _, r := range s {
		b = binary.LittleEndian.AppendUint16(b, uint16(r))
	}
	return b
}

func TestParseNTLMChallenge(t *testing.T) {
	id, err := ParseNTLMChallenge(unhex(t, ntlmSpecChallenge))
	if err != nil {
		t.Fatal(err)
	}
	want := NTLMIdentity{TargetName: "Server", NetBIOSComputer: "Server", NetBIOSDomain: "Domain", Version: &NTLMVersion{Major: 6, Minor: 0, Build: 6000, NTLMRevision: 15}}
	if id.TargetName != want.TargetName || id.NetBIOSComputer != want.NetBIOSComputer || id.NetBIOSDomain != want.NetBIOSDomain || *id.Version != *want.Version {
		t.Errorf("spec vector: %+v (version %+v), want %+v", id, id.Version, want)
	}
	if got := id.String(); got != "Server in Domain (version 6.0 build 6000)" {
		t.Errorf("String() = %q", got)
	}

	// A server's full identity: DNS names, the forest and its clock (2026-12-01T12:00:00Z as a FILETIME).
	ft := make([]byte, 8)
	binary.LittleEndian.PutUint64(ft, uint64(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).Unix()+filetimeEpochDelta)*1e7)
	full := challengeWith(avNbComputerName, u16("OFM90"), avNbDomainName, u16("OFMLAB"), avDNSComputerName, u16("ofm90.lab.example"),
		avDNSDomainName, u16("lab.example"), avDNSTreeName, u16("example"), avTimestamp, ft, 6, []byte{0, 0, 0, 0})
	id, err = ParseNTLMChallenge(full)
	if err != nil {
		t.Fatal(err)
	}
	if id.NetBIOSComputer != "OFM90" || id.NetBIOSDomain != "OFMLAB" || id.DNSComputer != "ofm90.lab.example" || id.DNSDomain != "lab.example" ||
		id.DNSTree != "example" || !id.ServerTime.Equal(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)) || id.Version == nil || id.Version.Build != 20348 {
		t.Errorf("full identity: %+v", id)
	}

	bad := map[string][]byte{
		"short":               unhex(t, ntlmSpecChallenge)[:40],
		"not NTLMSSP":         append([]byte("NTLMSSQ\x00"), unhex(t, ntlmSpecChallenge)[8:]...),
		"a negotiate message": func() []byte { b := unhex(t, ntlmSpecChallenge); b[8] = 1; return b }(),
		"target info past the end": func() []byte {
			b := unhex(t, ntlmSpecChallenge)
			binary.LittleEndian.PutUint16(b[40:], 200)
			return b
		}(),
		"an AV_PAIR longer than what is left": func() []byte {
			b := challengeWith(avNbComputerName, u16("OFM90"))
			binary.LittleEndian.PutUint16(b[58:], 400)
			return b
		}(),
		"odd UTF-16":           challengeWith(avNbComputerName, []byte("ABC")),
		"a 4-byte timestamp":   challengeWith(avTimestamp, []byte{1, 2, 3, 4}),
		"pairs without an end": bytes.Repeat([]byte{9, 0, 0, 0}, 100),
	}
	for name, b := range bad {
		if name == "pairs without an end" {
			b = challengeWith()
			b = append(b[:len(b)-4], bytes.Repeat([]byte{9, 0, 0, 0}, 100)...)
			binary.LittleEndian.PutUint16(b[40:], 400)
		}
		if id, err := ParseNTLMChallenge(b); err == nil {
			t.Errorf("%s: parsed as %+v", name, id)
		}
	}
}

// TestSessionSetupNegotiate checks the request's layout (MS-SMB2 §2.2.5) and that the answer parser finds the
// challenge inside an SPNEGO NegTokenResp, and refuses other answers.
func TestSessionSetupNegotiate(t *testing.T) {
	req := AppendSessionSetupNegotiate(nil, 2)
	if err := CheckFrame(req); err != nil {
		t.Fatal(err)
	}
	msg := req[PrefixLen:]
	le := binary.LittleEndian
	off, n := le.Uint16(msg[HeaderLen+12:]), le.Uint16(msg[HeaderLen+14:])
	if le.Uint16(msg[12:]) != commandSessionSetup || le.Uint64(msg[24:]) != 2 || le.Uint16(msg[HeaderLen:]) != 25 ||
		int(off) != HeaderLen+24 || int(off)+int(n) != len(msg) || msg[0x40+3] != byte(SigningEnabled) {
		t.Fatalf("session setup request: % x", msg)
	}
	blob := msg[off:]
	if blob[0] != 0x60 || int(blob[1]) != len(blob)-2 || !bytes.Contains(blob, ntlmSignature) {
		t.Errorf("security buffer is not a GSS-API token around NTLMSSP: % x", blob)
	}

	answer := func(status uint32, blob []byte) []byte {
		b, start := beginFrame(nil)
		b = appendHeader(b, commandSessionSetup, 1, 2)
		le.PutUint32(b[start+PrefixLen+8:], status)
		b = le.AppendUint16(b, 9)
		b = le.AppendUint16(b, 0)
		b = le.AppendUint16(b, HeaderLen+8)
		b = le.AppendUint16(b, uint16(len(blob)))
		b = append(b, blob...)
		return endFrame(b, start)
	}
	// A NegTokenResp: the challenge after a few bytes of DER.
	resp := append([]byte{0xa1, 0x81, 0x90, 0x30, 0x81, 0x8d, 0xa2, 0x81, 0x8a, 0x04, 0x81, 0x87}, unhex(t, ntlmSpecChallenge)...)
	id, err := ParseSessionSetupChallenge(answer(statusMoreProcessingRequired, resp))
	if err != nil || id.NetBIOSComputer != "Server" {
		t.Errorf("challenge answer: %+v, %v", id, err)
	}
	var se *StatusError
	if _, err := ParseSessionSetupChallenge(answer(0xC00000BB, nil)); !errors.As(err, &se) || se.Status != 0xC00000BB {
		t.Errorf("STATUS_NOT_SUPPORTED: %v", err)
	}
	if _, err := ParseSessionSetupChallenge(answer(statusMoreProcessingRequired, []byte{0xa1, 0x03, 0x30, 0x01, 0x00})); !errors.Is(err, ErrNoChallenge) {
		t.Errorf("no NTLMSSP in the blob: %v", err)
	}
	cut := answer(statusMoreProcessingRequired, resp)
	if _, err := ParseSessionSetupChallenge(cut[:len(cut)-20]); err == nil {
		t.Error("a cut frame parsed")
	}
}

func FuzzParseNTLMChallenge(f *testing.F) {
	f.Add(unhex(f, ntlmSpecChallenge))
	f.Add(challengeWith(avNbComputerName, u16("OFM90"), avTimestamp, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseNTLMChallenge(b)
		if err != nil {
			return
		}
		if len(id.NetBIOSComputer)+len(id.NetBIOSDomain)+len(id.DNSComputer)+len(id.DNSDomain)+len(id.DNSTree) > 3*len(b) {
			t.Fatalf("names longer than the input: %+v from %d bytes", id, len(b))
		}
		_ = id.String()
	})
}

func FuzzParseSessionSetupChallenge(f *testing.F) {
	f.Add(AppendSessionSetupNegotiate(nil, 2))
	addVectors(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, err := ParseSessionSetupChallenge(b); err == nil {
			_ = id.String()
		}
	})
}
