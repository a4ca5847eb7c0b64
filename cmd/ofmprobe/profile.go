package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfiles writes a CPU profile to $OFMPROBE_CPUPROFILE and a heap profile to $OFMPROBE_MEMPROFILE, for the
// benchmarks (BENCHMARKS.md says how). Environment variables rather than flags: they are for developers, and a flag
// would be one more thing in every user's --help. The returned function stops and writes them.
func startProfiles() func() {
	cpu, mem := os.Getenv("OFMPROBE_CPUPROFILE"), os.Getenv("OFMPROBE_MEMPROFILE")
	var stop []func()
	if cpu != "" {
		f, err := os.Create(cpu)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "ofmprobe: CPU profile: %v\n", err)
		} else {
			stop = append(stop, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if mem != "" {
		runtime.MemProfileRate = 64 << 10
		stop = append(stop, func() {
			f, err := os.Create(mem)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "ofmprobe: heap profile: %v\n", err)
			}
		})
	}
	return func() {
		for _, s := range stop {
			s()
		}
	}
}
