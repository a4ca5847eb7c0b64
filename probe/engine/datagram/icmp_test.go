package datagram

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
)

// cmsg builds one Linux control message as recvmsg lays it out, padded to the next one.
func cmsg(level, typ int32, data []byte) []byte {
	n := cmsgHeaderLen + len(data)
	b := make([]byte, (n+wordSize-1)&^(wordSize-1))
	if wordSize == 8 {
		binary.NativeEndian.PutUint64(b, uint64(n))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(n))
	}
	binary.NativeEndian.PutUint32(b[wordSize:], uint32(level))
	binary.NativeEndian.PutUint32(b[wordSize+4:], uint32(typ))
	copy(b[cmsgHeaderLen:], data)
	return b
}

// extErr builds a struct sock_extended_err followed by the offender sockaddr.
func extErr(errno syscall.Errno, origin, typ, code uint8, info uint32, offender []byte) []byte {
	b := make([]byte, sizeofExtendedErr, sizeofExtendedErr+len(offender))
	binary.NativeEndian.PutUint32(b[0:], uint32(errno))
	b[4], b[5], b[6] = origin, typ, code
	binary.NativeEndian.PutUint32(b[8:], info)
	return append(b, offender...)
}

func sockaddrIn(a string) []byte {
	b := make([]byte, sizeofSockaddrIn)
	binary.NativeEndian.PutUint16(b, afInet)
	ip := netip.MustParseAddr(a).As4()
	copy(b[4:], ip[:])
	return b
}

func sockaddrIn6(a string) []byte {
	b := make([]byte, sizeofSockaddrIn6)
	binary.NativeEndian.PutUint16(b, afInet6)
	ip := netip.MustParseAddr(a).As16()
	copy(b[8:], ip[:])
	return b
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParseExtendedError(t *testing.T) {
	ovfl := cmsg(1, 40, []byte{7, 0, 0, 0}) // SOL_SOCKET SO_RXQ_OVFL before the error
	tests := []struct {
		name             string
		oob              []byte
		want             ICMP
		closed, filtered bool
	}{
		{
			name:   "ipv4 port unreachable",
			oob:    cmsg(solIP, ipRecvErr, extErr(syscall.ECONNREFUSED, OriginICMP, 3, 3, 0, sockaddrIn("127.0.0.1"))),
			want:   ICMP{Origin: OriginICMP, Type: 3, Code: 3, Errno: syscall.ECONNREFUSED, Offender: netip.MustParseAddr("127.0.0.1")},
			closed: true,
		},
		{
			name:     "ipv4 communication administratively prohibited",
			oob:      cmsg(solIP, ipRecvErr, extErr(syscall.EHOSTUNREACH, OriginICMP, 3, 13, 0, sockaddrIn("192.0.2.254"))),
			want:     ICMP{Origin: OriginICMP, Type: 3, Code: 13, Errno: syscall.EHOSTUNREACH, Offender: netip.MustParseAddr("192.0.2.254")},
			filtered: true,
		},
		{
			name:     "ipv4 host administratively prohibited",
			oob:      cmsg(solIP, ipRecvErr, extErr(syscall.EHOSTUNREACH, OriginICMP, 3, 10, 0, sockaddrIn("192.0.2.254"))),
			want:     ICMP{Origin: OriginICMP, Type: 3, Code: 10, Errno: syscall.EHOSTUNREACH, Offender: netip.MustParseAddr("192.0.2.254")},
			filtered: true,
		},
		{
			name:     "ipv4 network administratively prohibited",
			oob:      cmsg(solIP, ipRecvErr, extErr(syscall.ENETUNREACH, OriginICMP, 3, 9, 0, sockaddrIn("198.51.100.1"))),
			want:     ICMP{Origin: OriginICMP, Type: 3, Code: 9, Errno: syscall.ENETUNREACH, Offender: netip.MustParseAddr("198.51.100.1")},
			filtered: true,
		},
		{
			name: "ipv4 host unreachable from a router",
			oob:  cmsg(solIP, ipRecvErr, extErr(syscall.EHOSTUNREACH, OriginICMP, 3, 1, 0, sockaddrIn("198.51.100.1"))),
			want: ICMP{Origin: OriginICMP, Type: 3, Code: 1, Errno: syscall.EHOSTUNREACH, Offender: netip.MustParseAddr("198.51.100.1")},
		},
		{
			name: "ipv4 fragmentation needed after another message",
			oob:  concat(ovfl, cmsg(solIP, ipRecvErr, extErr(syscall.EMSGSIZE, OriginICMP, 3, 4, 1400, sockaddrIn("198.51.100.1")))),
			want: ICMP{Origin: OriginICMP, Type: 3, Code: 4, Errno: syscall.EMSGSIZE, Info: 1400, Offender: netip.MustParseAddr("198.51.100.1")},
		},
		{
			name:   "ipv6 port unreachable",
			oob:    cmsg(solIPv6, ipv6RecvErr, extErr(syscall.ECONNREFUSED, OriginICMP6, 1, 4, 0, sockaddrIn6("2001:db8::1"))),
			want:   ICMP{Origin: OriginICMP6, Type: 1, Code: 4, Errno: syscall.ECONNREFUSED, Offender: netip.MustParseAddr("2001:db8::1")},
			closed: true,
		},
		{
			name:     "ipv6 administratively prohibited",
			oob:      cmsg(solIPv6, ipv6RecvErr, extErr(syscall.EACCES, OriginICMP6, 1, 1, 0, sockaddrIn6("2001:db8::fe"))),
			want:     ICMP{Origin: OriginICMP6, Type: 1, Code: 1, Errno: syscall.EACCES, Offender: netip.MustParseAddr("2001:db8::fe")},
			filtered: true,
		},
		{
			name: "ipv6 address unreachable",
			oob:  cmsg(solIPv6, ipv6RecvErr, extErr(syscall.EHOSTUNREACH, OriginICMP6, 1, 3, 0, sockaddrIn6("2001:db8::fe"))),
			want: ICMP{Origin: OriginICMP6, Type: 1, Code: 3, Errno: syscall.EHOSTUNREACH, Offender: netip.MustParseAddr("2001:db8::fe")},
		},
		{
			name:   "ipv4-mapped offender on an ipv6 socket",
			oob:    cmsg(solIPv6, ipv6RecvErr, extErr(syscall.ECONNREFUSED, OriginICMP, 3, 3, 0, sockaddrIn6("::ffff:127.0.0.1"))),
			want:   ICMP{Origin: OriginICMP, Type: 3, Code: 3, Errno: syscall.ECONNREFUSED, Offender: netip.MustParseAddr("127.0.0.1")},
			closed: true,
		},
		{
			name: "local error without offender",
			oob:  cmsg(solIP, ipRecvErr, extErr(syscall.EMSGSIZE, OriginLocal, 0, 0, 1500, make([]byte, sizeofSockaddrIn))),
			want: ICMP{Origin: OriginLocal, Errno: syscall.EMSGSIZE, Info: 1500},
		},
		{
			name:   "bare extended error",
			oob:    cmsg(solIP, ipRecvErr, extErr(syscall.ECONNREFUSED, OriginICMP, 3, 3, 0, nil)),
			want:   ICMP{Origin: OriginICMP, Type: 3, Code: 3, Errno: syscall.ECONNREFUSED},
			closed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseExtendedError(tt.oob)
			if err != nil {
				t.Fatalf("ParseExtendedError: %v", err)
			}
			if got != tt.want {
				t.Fatalf("ParseExtendedError = %+v, want %+v", got, tt.want)
			}
			if got.Closed() != tt.closed || got.Filtered() != tt.filtered {
				t.Fatalf("Closed, Filtered = %v, %v, want %v, %v", got.Closed(), got.Filtered(), tt.closed, tt.filtered)
			}
		})
	}
}

func TestParseExtendedErrorInvalid(t *testing.T) {
	good := cmsg(solIP, ipRecvErr, extErr(syscall.ECONNREFUSED, OriginICMP, 3, 3, 0, sockaddrIn("127.0.0.1")))
	hugeLen := append([]byte(nil), good...)
	binary.NativeEndian.PutUint32(hugeLen, 0xffffff)
	tinyLen := append([]byte(nil), good...)
	binary.NativeEndian.PutUint32(tinyLen, 3)
	badFamily := cmsg(solIP, ipRecvErr, extErr(syscall.ECONNREFUSED, OriginICMP, 3, 3, 0, []byte{0x99, 0x99, 0, 0, 1, 2, 3, 4}))
	tests := []struct {
		name string
		oob  []byte
		want error
	}{
		{"empty", nil, ErrNoExtendedError},
		{"only another message", cmsg(1, 40, []byte{1, 0, 0, 0}), ErrNoExtendedError},
		{"header cut short", good[:cmsgHeaderLen-1], ErrShortControlMessage},
		{"length past the buffer", hugeLen, ErrShortControlMessage},
		{"length inside the header", tinyLen, ErrShortControlMessage},
		{"extended error cut short", cmsg(solIP, ipRecvErr, make([]byte, sizeofExtendedErr-1)), ErrShortExtendedError},
		{"ipv4 offender cut short", cmsg(solIP, ipRecvErr, extErr(syscall.ECONNREFUSED, OriginICMP, 3, 3, 0, sockaddrIn("127.0.0.1")[:6])), ErrShortOffender},
		{"ipv6 offender cut short", cmsg(solIPv6, ipv6RecvErr, extErr(syscall.ECONNREFUSED, OriginICMP6, 1, 4, 0, sockaddrIn6("2001:db8::1")[:20])), ErrShortOffender},
		{"unknown offender family", badFamily, ErrOffenderFamily},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseExtendedError(tt.oob)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseExtendedError = %+v, %v; want error %v", got, err, tt.want)
			}
			if got != (ICMP{}) {
				t.Fatalf("ParseExtendedError returned %+v with its error, want the zero ICMP", got)
			}
		})
	}
}

func FuzzParseExtendedError(f *testing.F) {
	f.Add(cmsg(solIP, ipRecvErr, extErr(syscall.ECONNREFUSED, OriginICMP, 3, 3, 0, sockaddrIn("127.0.0.1"))))
	f.Add(cmsg(solIPv6, ipv6RecvErr, extErr(syscall.EACCES, OriginICMP6, 1, 1, 0, sockaddrIn6("2001:db8::1"))))
	f.Add(concat(cmsg(1, 40, []byte{1, 0, 0, 0}), cmsg(solIP, ipRecvErr, extErr(syscall.EHOSTUNREACH, OriginICMP, 3, 13, 0, sockaddrIn("192.0.2.1")))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) {
		e, err := ParseExtendedError(oob)
		if err != nil {
			if e != (ICMP{}) {
				t.Fatalf("error %v came with %+v", err, e)
			}
			return
		}
		if e.Offender.IsValid() && e.Offender.Is4In6() {
			t.Fatalf("offender %v is not unmapped", e.Offender)
		}
	})
}
