package engine

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// TestDialledConnEndsWithContext: a read on a connection to a server that never answers returns soon after the
// step's context ends, though the step asked for a long deadline, and a deadline set after the end stays expired.
func TestDialledConnEndsWithContext(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open and silent until the test ends
		}
	}()
	env := NewEnv(Options{Timeout: time.Second, UDPTimeout: time.Second, Sockets: 4, PerHost: 1})
	ctx, cancel := context.WithCancel(context.Background())
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	conn, _, err := env.DialTCP(ctx, netip.MustParseAddr("127.0.0.1"), port)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = conn.Read(make([]byte, 1))
	if took := time.Since(start); took > 2*time.Second || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read returned %v after %s; want a deadline error soon after the context ended", err, took)
	}
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	start = time.Now()
	if _, err = conn.Read(make([]byte, 1)); time.Since(start) > time.Second || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a deadline set after the context ended was honoured: %v", err)
	}
}
