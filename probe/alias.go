package probe

import "github.com/ofmprobe/ofmprobe/probe/targets"

// Target is one address to probe (see package targets).
type Target = targets.Target
