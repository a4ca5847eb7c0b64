package main

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/ofmprobe/ofmprobe/probe/engine"
)

// sizeUnits are the suffixes --memory takes, all binary: 512MiB, 512M and 512m are the same.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{
	{"kib", 10}, {"mib", 20}, {"gib", 30}, {"k", 10}, {"m", 20}, {"g", 30}, {"b", 0},
}

// parseSize reads a byte count such as 224MiB, 1GiB, 1.5G or 300000000: a number and an optional binary unit.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	shift := uint(0)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, shift = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.shift
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("%q is not a size (write it as 224MiB, 1GiB or a number of bytes)", s)
	}
	b := v * float64(uint64(1)<<shift)
	if b > float64(math.MaxInt64/2) {
		return 0, fmt.Errorf("%q is larger than this machine can address", s)
	}
	return int64(b), nil
}

// formatSize writes a byte count in MiB, as the usage text and the errors show it.
func formatSize(b int64) string {
	if b%(1<<20) == 0 {
		return fmt.Sprintf("%dMiB", b>>20)
	}
	return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
}

// memoryBudget parses --memory and checks it leaves room for hosts.
func memoryBudget(flag string) (int64, error) {
	b, err := parseSize(flag)
	if err != nil {
		return 0, fmt.Errorf("--memory: %v", err)
	}
	if b < engine.MinMemory {
		return 0, fmt.Errorf("--memory %s is too small: at least %s (%s of it is the scan's fixed needs)", flag, formatSize(engine.MinMemory), formatSize(engine.MemoryReserve))
	}
	return b, nil
}

// limitMemory sets the Go runtime's soft memory limit to the budget, so that the collector works harder as the
// process nears it instead of letting the heap double past it; a GOMEMLIMIT in the environment is the user's own
// setting and wins. The returned function puts back the limit before (a scan run in a test process ends).
func limitMemory(budget int64) (restore func()) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	prev := debug.SetMemoryLimit(budget)
	return func() { debug.SetMemoryLimit(prev) }
}
