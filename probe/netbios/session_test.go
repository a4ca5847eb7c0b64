package netbios

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// sessionRequestSMBServer is the session request of PROTOCOLS.md calling
// *SMBSERVER<20> from OFMPROBE<00>.
var sessionRequestSMBServer = cat(
	x("81 00 0044"),
	x("20"), lettersSMBServer, x("00"),
	x("20"), lettersOFMProbe, x("00"),
)

func TestAppendSessionRequest(t *testing.T) {
	tests := []struct {
		name            string
		called, calling Name
		want            []byte
	}{
		{"smbserver", Name{Name: "*SMBSERVER", Suffix: 0x20}, Name{Name: "ofmprobe"}, sessionRequestSMBServer},
		{"real name", Name{Name: "LAB-SAMBA", Suffix: 0x20}, Name{Name: "OFMPROBE"},
			cat(x("81 00 0044 20"), lettersLabSamba, x("00 20"), lettersOFMProbe, x("00"))},
		{"scoped", Name{Name: "LAB-SAMBA", Suffix: 0x20, Scope: "ofm"}, Name{Name: "OFMPROBE", Scope: "ofm"},
			cat(x("81 00 004c 20"), lettersLabSamba, x("03"), "ofm", x("00 20"), lettersOFMProbe, x("03"), "ofm", x("00"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendSessionRequest([]byte("pre"), tt.called, tt.calling)
			if err != nil {
				t.Fatal(err)
			}
			if want := cat("pre", string(tt.want)); !bytes.Equal(got, want) {
				t.Errorf("AppendSessionRequest =\n%x\nwant\n%x", got, want)
			}
		})
	}

	errTests := []struct {
		name            string
		called, calling Name
		wantErr         string
	}{
		{"empty called", Name{}, Name{Name: "OFMPROBE"}, "called name: bad netbios name: empty name"},
		{"long calling", Name{Name: "*SMBSERVER", Suffix: 0x20}, Name{Name: "A-VERY-LONG-CLIENT"},
			`calling name: bad netbios name: "A-VERY-LONG-CLIENT" is 18 bytes, at most 15 allowed`},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendSessionRequest([]byte("pre"), tt.called, tt.calling)
			if !errors.Is(err, ErrBadName) || err.Error() != tt.wantErr {
				t.Errorf("error = %v, want %s", err, tt.wantErr)
			}
			if string(got) != "pre" {
				t.Errorf("b changed on error: %q", got)
			}
		})
	}
}

func TestParseSessionHeader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want SessionHeader
	}{
		{"positive", x0("82 00 0000"), SessionHeader{Type: SessionPositiveResponse}},
		{"request", sessionRequestSMBServer, SessionHeader{Type: SessionRequest, Length: 0x44}},
		{"message, 16-bit", x0("00 00 ffff"), SessionHeader{Type: SessionMessage, Length: 0xFFFF}},
		{"message, 17-bit", x0("00 01 0000"), SessionHeader{Type: SessionMessage, Flags: 1, Length: 0x10000}},
		{"message, largest", x0("00 01 ffff"), SessionHeader{Type: SessionMessage, Flags: 1, Length: MaxSessionLength}},
		{"unknown type", x0("42 00 0001"), SessionHeader{Type: 0x42, Length: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSessionHeader(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseSessionHeader = %+v, want %+v", got, tt.want)
			}
			enc, err := AppendSessionHeader(nil, got)
			if err != nil || !bytes.Equal(enc, tt.in[:SessionHeaderLen]) {
				t.Errorf("AppendSessionHeader(%+v) = %x, %v; want %x", got, enc, err, tt.in[:SessionHeaderLen])
			}
		})
	}

	errTests := []struct {
		name    string
		in      []byte
		wantIs  error
		wantErr string
	}{
		{"empty", nil, ErrShort, "message too short: session header is 0 bytes, need 4"},
		{"three bytes", x0("82 00 00"), ErrShort, "message too short: session header is 3 bytes, need 4"},
		{"reserved flag", x0("00 02 0000"), ErrBadFlags, "reserved session header flags set: flags 0x02"},
		{"all flags", x0("00 ff 0000"), ErrBadFlags, "reserved session header flags set: flags 0xff"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSessionHeader(tt.in)
			if !errors.Is(err, tt.wantIs) || err.Error() != tt.wantErr {
				t.Errorf("error = %v, want %s", err, tt.wantErr)
			}
			if got != (SessionHeader{}) {
				t.Errorf("header %+v returned with an error", got)
			}
		})
	}

	if _, err := AppendSessionHeader(nil, SessionHeader{Length: MaxSessionLength + 1}); !errors.Is(err, ErrBadLength) ||
		err.Error() != "bad length: length 131072 exceeds 131071" {
		t.Errorf("AppendSessionHeader(too long) error = %v", err)
	}
}

func TestParseSessionResponse(t *testing.T) {
	tests := []struct {
		name       string
		in         []byte
		want       SessionResponse
		wantString string
	}{
		{"positive", x0("82 00 0000"), SessionResponse{Type: SessionPositiveResponse}, "positive session response"},
		{"keepalive", x0("85 00 0000"), SessionResponse{Type: SessionKeepAlive}, "session keepalive"},
		{"negative, not listening on called name", x0("83 00 0001 80"),
			SessionResponse{Type: SessionNegativeResponse, Error: NotListeningOnCalledName},
			"negative session response: not listening on called name (0x80)"},
		{"negative, not listening for calling name", x0("83 00 0001 81"),
			SessionResponse{Type: SessionNegativeResponse, Error: NotListeningForCallingName},
			"negative session response: not listening for calling name (0x81)"},
		{"negative, called name not present", x0("83 00 0001 82"),
			SessionResponse{Type: SessionNegativeResponse, Error: CalledNameNotPresent},
			"negative session response: called name not present (0x82)"},
		{"negative, insufficient resources", x0("83 00 0001 83"),
			SessionResponse{Type: SessionNegativeResponse, Error: InsufficientResources},
			"negative session response: called name present, but insufficient resources (0x83)"},
		{"negative, unspecified", x0("83 00 0001 8f"),
			SessionResponse{Type: SessionNegativeResponse, Error: UnspecifiedError},
			"negative session response: unspecified error (0x8f)"},
		{"negative, unknown code", x0("83 00 0001 00"),
			SessionResponse{Type: SessionNegativeResponse, Error: 0},
			"negative session response: unknown session error 0x00 (0x00)"},
		{"retarget", x0("84 00 0006 c0a80a05 008b"),
			SessionResponse{Type: SessionRetargetResponse, Retarget: netip.MustParseAddrPort("192.168.10.5:139")},
			"retarget session response to 192.168.10.5:139"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSessionResponse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseSessionResponse = %+v, want %+v", got, tt.want)
			}
			if got.String() != tt.wantString {
				t.Errorf("String() = %q, want %q", got.String(), tt.wantString)
			}
			enc, err := AppendSessionResponse(nil, got)
			if err != nil || !bytes.Equal(enc, tt.in) {
				t.Errorf("AppendSessionResponse(%+v) = %x, %v; want %x", got, enc, err, tt.in)
			}
		})
	}
}

func TestParseSessionResponseErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		wantIs  error
		wantErr string
	}{
		{"empty", nil, ErrShort, "message too short: empty session message"},
		{"one byte", x0("82"), ErrShort, "positive session response: message too short: session header is 1 bytes, need 4"},
		{"negative without code", x0("83 00 0001"), ErrShort,
			"message too short: negative session response body is 0 bytes, need 1"},
		{"retarget cut", x0("84 00 0006 c0a80a05"), ErrShort,
			"message too short: retarget session response body is 4 bytes, need 6"},
		{"positive with length 1", x0("82 00 0001 00"), ErrBadLength,
			"bad length: positive session response has length 1, want 0"},
		{"positive with 17-bit length", x0("82 01 0000"), ErrBadLength,
			"bad length: positive session response has length 65536, want 0"},
		{"negative with length 2", x0("83 00 0002 80 00"), ErrBadLength,
			"bad length: negative session response has length 2, want 1"},
		{"retarget with length 18 (IPv6)", cat(x("84 00 0012"), strings.Repeat("\x00", 18)), ErrBadLength,
			"bad length: retarget session response has length 18, want 6"},
		{"positive with trailing bytes", x0("82 00 0000 ff53 4d42"), ErrBadLength,
			"bad length: 4 bytes after a 0-byte positive session response"},
		{"keepalive then positive", x0("85 00 0000 82 00 0000"), ErrBadLength,
			"bad length: 4 bytes after a 0-byte session keepalive"},
		{"reserved flags", x0("82 80 0000"), ErrBadFlags,
			"positive session response: reserved session header flags set: flags 0x80"},
		{"session message", x0("00 00 0004 ff534d42"), ErrNotSessionAnswer,
			"not a NetBIOS session answer: session message"},
		{"session request echoed", sessionRequestSMBServer, ErrNotSessionAnswer,
			"not a NetBIOS session answer: session request"},
		{"HTTP", []byte("HTTP/1.0 400 Bad Request\r\n"), ErrNotSessionAnswer,
			"not a NetBIOS session answer: session type 0x48"},
		{"SMB1 on the bare port", x0("ff 53 4d 42"), ErrNotSessionAnswer,
			"not a NetBIOS session answer: session type 0xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSessionResponse(tt.in)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("error = %v, want %v", err, tt.wantIs)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error text\n%s\nwant\n%s", err, tt.wantErr)
			}
			if got != (SessionResponse{}) {
				t.Errorf("response %+v returned with an error", got)
			}
		})
	}
}

func TestAppendSessionResponseErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      SessionResponse
		wantIs  error
		wantErr string
	}{
		{"session message", SessionResponse{Type: SessionMessage}, ErrNotSessionAnswer,
			"not a NetBIOS session answer: session message"},
		{"IPv6 retarget", SessionResponse{Type: SessionRetargetResponse, Retarget: netip.MustParseAddrPort("[2001:db8::1]:139")},
			ErrNotIPv4, "address is not IPv4: retarget address 2001:db8::1"},
		{"no retarget address", SessionResponse{Type: SessionRetargetResponse}, ErrNotIPv4,
			"address is not IPv4: retarget address invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendSessionResponse([]byte("pre"), tt.in)
			if !errors.Is(err, tt.wantIs) || err.Error() != tt.wantErr {
				t.Errorf("error = %v, want %s", err, tt.wantErr)
			}
			if string(got) != "pre" {
				t.Errorf("b changed on error: %q", got)
			}
		})
	}
	// An IPv4-mapped IPv6 address is written as IPv4.
	got, err := AppendSessionResponse(nil, SessionResponse{Type: SessionRetargetResponse, Retarget: netip.MustParseAddrPort("[::ffff:10.0.0.1]:445")})
	if want := x0("84 00 0006 0a000001 01bd"); err != nil || !bytes.Equal(got, want) {
		t.Errorf("mapped retarget = %x, %v; want %x", got, err, want)
	}
}

func TestSessionTypeString(t *testing.T) {
	tests := []struct {
		in   SessionType
		want string
	}{
		{SessionMessage, "session message"},
		{SessionRequest, "session request"},
		{SessionPositiveResponse, "positive session response"},
		{SessionNegativeResponse, "negative session response"},
		{SessionRetargetResponse, "retarget session response"},
		{SessionKeepAlive, "session keepalive"},
		{0x86, "session type 0x86"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("SessionType(0x%02x) = %q, want %q", uint8(tt.in), got, tt.want)
		}
	}
}
