package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"time"
)

// peakHeapProfile writes a heap profile to path each time the live heap passes its last peak by a tenth, sampled
// every 250 ms, until ctx ends: the file holds the profile of about the largest heap the scan had, which is when
// the most hosts were in flight (a profile at exit shows none). Beside it, path+".classes" lists the runtime's
// memory classes at the largest total it saw (stacks and the collector's headroom are not in a heap profile). A
// developer flag, --memprofile.
func peakHeapProfile(ctx context.Context, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	f.Close()
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var classes []metrics.Sample
		for _, d := range metrics.All() {
			if strings.HasPrefix(d.Name, "/memory/classes/") && d.Kind == metrics.KindUint64 {
				classes = append(classes, metrics.Sample{Name: d.Name})
			}
		}
		var peak, peakTotal uint64
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
			metrics.Read(classes)
			var b strings.Builder
			var total uint64
			for _, c := range classes {
				fmt.Fprintf(&b, "%-50s %8.1f MiB\n", c.Name, float64(c.Value.Uint64())/(1<<20))
				if c.Name == "/memory/classes/total:bytes" {
					total = c.Value.Uint64()
				}
			}
			if total > peakTotal {
				peakTotal = total
				os.WriteFile(path+".classes", []byte(b.String()), 0o644)
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
