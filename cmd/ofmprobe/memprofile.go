package main

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// peakHeapProfile writes a heap profile to path each time the live heap passes its last peak by a tenth, sampled
// every 250 ms, until ctx ends: the file holds the profile of about the largest heap the scan had, which is when
// the most hosts were in flight (a profile at exit shows none). A developer flag, --memprofile.
func peakHeapProfile(ctx context.Context, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	f.Close()
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var peak uint64
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() != metrics.KindUint64 {
				return
			}
			if live := sample[0].Value.Uint64(); live > peak+peak/10 {
				peak = live
				runtime.GC() // the profile's in-use figures are as of the last collection
				if f, err := os.Create(path); err == nil {
					pprof.WriteHeapProfile(f)
					f.Close()
				}
			}
		}
	}()
	return nil
}
