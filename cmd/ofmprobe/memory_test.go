package main

import (
	"fmt"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/ofmprobe/ofmprobe/probe/engine"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"224MiB": 224 << 20, "224m": 224 << 20, "1GiB": 1 << 30, "1.5G": 3 << 29, "512 KiB": 512 << 10, "300000000": 300000000, "4096b": 4096,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "lots", "-1G", "NaN", "Inf", "1e30G", "12XB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

// TestMemoryBudget: the default budget gives the default bound on hosts in flight, a larger one more, in
// proportion to what is left after the reserve.
func TestMemoryBudget(t *testing.T) {
	if engine.DefaultHostsInFlight != 16384 {
		t.Errorf("default hosts in flight %d, want 16384 from %s", engine.DefaultHostsInFlight, formatSize(engine.DefaultMemory))
	}
	if got, want := engine.HostsInFlightFor(1<<30), int((1<<30-engine.MemoryReserve)/(2*engine.BytesPerHost)); got != want {
		t.Errorf("1GiB: %d hosts in flight, want %d", got, want)
	}
	if got := engine.HostsInFlightFor(engine.MinMemory); got < 64 {
		t.Errorf("the smallest budget gives %d hosts in flight", got)
	}
}

// TestMemoryFlagSetsTheBound: --memory 1GiB raises the bound on hosts in flight that --debug reports, sets the
// runtime's memory limit for the scan and puts the limit before back afterwards; --hosts-in-flight still wins.
func TestMemoryFlagSetsTheBound(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	want := engine.HostsInFlightFor(1 << 30)
	_, _, stderr := runCLI(t, "", "scan", "--debug", "--memory", "1GiB", "--steps", "tcp", "--ports", "9", "--timeout", "100ms", "--retries", "0", "127.0.0.1")
	if !strings.Contains(stderr, fmt.Sprintf("(bound %d), memory limit 1024MiB, over it 0 times;", want)) {
		t.Errorf("--memory 1GiB: want the bound %d in the debug line; stderr:\n%s", want, stderr)
	}
	if after := debug.SetMemoryLimit(-1); after != before {
		t.Errorf("memory limit %d after the scan, was %d", after, before)
	}
	_, _, stderr = runCLI(t, "", "scan", "--debug", "--memory", "1GiB", "--hosts-in-flight", "100", "--steps", "tcp", "--ports", "9", "--timeout", "100ms", "--retries", "0", "127.0.0.1")
	if !strings.Contains(stderr, "(bound 100)") {
		t.Errorf("--hosts-in-flight 100: want the bound 100; stderr:\n%s", stderr)
	}
}
