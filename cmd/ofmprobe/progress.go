package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/report"
)

// progress is the progress line on stderr: hosts done of the total, the rate, the time left, and how many hosts fail
// a profile so far. It is nil (and every method a no-op) when stderr is not a terminal or with --quiet, so that logs
// and CI output get no control characters.
type progress struct {
	bar    *progressbar.ProgressBar
	failed int
}

// newProgress starts a progress line for total hosts on w.
func newProgress(w io.Writer, total int64) *progress {
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("0 failing"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("hosts"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(200*time.Millisecond),
	)}
}

// host counts one finished host.
func (p *progress) host(rec report.HostRecord) {
	if p == nil {
		return
	}
	for _, g := range rec.Profiles {
		if g.Grade == catalog.GradeFail {
			p.failed++
			p.bar.Describe(fmt.Sprintf("%d failing", p.failed))
			break
		}
	}
	_ = p.bar.Add(1)
}

// finish clears the line, so the report or the last message starts on a clean line.
func (p *progress) finish() {
	if p == nil {
		return
	}
	_ = p.bar.Finish()
	_ = p.bar.Clear()
}
