//go:build linux

package connect

import (
	"context"
	"net"
	"testing"
	"time"
)

// BenchmarkConnect connects to an accepting loopback listener through the connector, one attempt at a time.
func BenchmarkConnect(b *testing.B) {
	dst := acceptingPort(b)
	c := open(b, Config{})
	ch := make(chan Result, 1)
	done := func(r Result) { ch <- r }
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.Connect(Attempt{Dst: dst, Timeout: time.Second, Done: done})
		if r := <-ch; r.Outcome != Connected {
			b.Fatalf("%v %v", r.Outcome, r.Err)
		}
	}
}

// BenchmarkDialContext is the same connect with net.Dialer.DialContext and Close, as the tcp connect step does it.
func BenchmarkDialContext(b *testing.B) {
	dst := acceptingPort(b).String()
	var d net.Dialer
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := d.DialContext(ctx, "tcp4", dst)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		conn.(*net.TCPConn).SetLinger(0) // leave no TIME_WAIT, as the connector does
		conn.Close()
	}
}

// BenchmarkConnectInFlight keeps 64 connects in flight through the connector: the throughput of a sweep.
func BenchmarkConnectInFlight(b *testing.B) {
	dst := acceptingPort(b)
	c := open(b, Config{MaxInFlight: 64})
	ch := make(chan Result, 64)
	done := func(r Result) { ch <- r }
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for ; sent < min(64, b.N); sent++ {
		c.Connect(Attempt{Dst: dst, Timeout: time.Second, Done: done})
	}
	for range b.N {
		if r := <-ch; r.Outcome != Connected {
			b.Fatalf("%v %v", r.Outcome, r.Err)
		}
		if sent < b.N {
			c.Connect(Attempt{Dst: dst, Timeout: time.Second, Done: done})
			sent++
		}
	}
}

// BenchmarkDialContextInFlight keeps 64 DialContext calls in flight, a goroutine each, as the workers do.
func BenchmarkDialContextInFlight(b *testing.B) {
	dst := acceptingPort(b).String()
	var d net.Dialer
	b.ReportAllocs()
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn, err := d.DialContext(ctx, "tcp4", dst)
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	})
}
