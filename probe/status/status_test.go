package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	tests := []struct {
		err  error
		want State
	}{
		{nil, OK},
		{opErr(syscall.ECONNREFUSED), Closed},
		{opErr(syscall.ETIMEDOUT), Timeout},
		{context.DeadlineExceeded, Timeout},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), Timeout},
		{opErr(syscall.EHOSTUNREACH), Unreachable},
		{opErr(syscall.ENETUNREACH), Unreachable},
		{opErr(syscall.ECONNRESET), Reset},
		{opErr(syscall.EPIPE), Reset},
		{io.EOF, Reset},
		{opErr(syscall.EMFILE), Local},
		{opErr(syscall.ENOBUFS), Local},
		{opErr(syscall.EADDRNOTAVAIL), Local},
		{opErr(syscall.EAGAIN), Local},
		{opErr(syscall.EPERM), Denied},
		{opErr(syscall.EACCES), Denied},
		{context.Canceled, Cancelled},
		{fmt.Errorf("nbstat: %w: short answer", ErrProtocol), ProtocolError},
		{errors.New("something else"), Error},
	}
	for _, tc := range tests {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestFromICMP(t *testing.T) {
	tests := []struct {
		m        ICMP
		want     State
		firewall bool
		text     string
	}{
		{ICMP{Origin: OriginICMP, Type: 3, Code: 3, Errno: syscall.ECONNREFUSED, Offender: "198.18.0.10"}, Closed, false, "ICMP port unreachable from 198.18.0.10"},
		{ICMP{Origin: OriginICMP, Type: 3, Code: 13, Errno: syscall.EHOSTUNREACH, Offender: "198.18.9.1"}, Filtered, true, "ICMP administratively prohibited from 198.18.9.1"},
		{ICMP{Origin: OriginICMP, Type: 3, Code: 10, Errno: syscall.EHOSTUNREACH, Offender: "198.18.9.1"}, Filtered, true, "ICMP host administratively prohibited from 198.18.9.1"},
		{ICMP{Origin: OriginICMP, Type: 3, Code: 9, Errno: syscall.ENETUNREACH, Offender: "198.18.9.1"}, Filtered, true, "ICMP network administratively prohibited from 198.18.9.1"},
		{ICMP{Origin: OriginICMP, Type: 3, Code: 1, Errno: syscall.EHOSTUNREACH, Offender: "198.18.0.2"}, Unreachable, false, "ICMP host unreachable from 198.18.0.2"},
		{ICMP{Origin: OriginICMP, Type: 3, Code: 0, Errno: syscall.ENETUNREACH}, Unreachable, false, "ICMP network unreachable"},
		{ICMP{Origin: OriginICMP6, Type: 1, Code: 4, Errno: syscall.ECONNREFUSED}, Closed, false, "ICMPv6 port unreachable"},
		{ICMP{Origin: OriginICMP6, Type: 1, Code: 1, Errno: syscall.EACCES}, Filtered, true, "ICMPv6 administratively prohibited"},
		{ICMP{Origin: OriginICMP6, Type: 1, Code: 3, Errno: syscall.EHOSTUNREACH}, Unreachable, false, "ICMPv6 address unreachable"},
		// A local error (no ICMP: origin 1) is classified by its errno: EPERM is this machine's firewall.
		{ICMP{Origin: 1, Errno: syscall.EPERM}, Filtered, true, "operation not permitted"},
		{ICMP{Origin: 1, Errno: syscall.EHOSTUNREACH}, Unreachable, false, "no route to host"},
	}
	for _, tc := range tests {
		st, fw := FromICMP(tc.m)
		if st != tc.want || fw != tc.firewall {
			t.Errorf("FromICMP(%+v) = %q, %v; want %q, %v", tc.m, st, fw, tc.want, tc.firewall)
		}
		if got := ICMPText(tc.m); got != tc.text {
			t.Errorf("ICMPText(%+v) = %q, want %q", tc.m, got, tc.text)
		}
	}
}
