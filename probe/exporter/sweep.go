package exporter

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/targets"
	"github.com/ofmprobe/ofmprobe/report"
)

// sweeper runs the configuration's sweeps on their schedules and keeps each sweep's latest report and the one
// before, by name, across reloads.
type sweeper struct {
	s *Server

	mu      sync.Mutex
	cancel  context.CancelFunc
	running sync.WaitGroup
	state   map[string]*sweepState
}

// sweepState is one sweep's history.
type sweepState struct {
	mu     sync.Mutex
	last   *sweepRun
	runs   map[string]int
	active bool
}

// sweepRun is one finished sweep: its report, and what changed from the sweep before.
type sweepRun struct {
	doc      report.Document
	module   string
	duration time.Duration
	// outside counts the addresses of the sweep's targets that allowed_targets left out.
	outside int64
	// changes are the regressions and fixes since the sweep before; regressed counts the hosts with a regression.
	changes   []report.Change
	regressed int
	first     bool
	// failing counts, per requirement, the hosts where it did not pass, in the catalog's order; counted once per run,
	// not per scrape of /metrics.
	failing []failingCount
}

type failingCount struct {
	profile, requirement, severity string
	hosts                          int
}

// countFailing counts, per requirement, the hosts where it did not pass (fail, warn or unverified).
func countFailing(hosts []report.HostRecord) []failingCount {
	var out []failingCount
	index := map[[2]string]int{}
	for _, h := range hosts {
		for _, g := range h.Profiles {
			for _, r := range g.Results {
				if r.NotRequested {
					continue
				}
				k := [2]string{g.Profile, r.Requirement}
				i, ok := index[k]
				if !ok {
					i = len(out)
					index[k] = i
					out = append(out, failingCount{profile: g.Profile, requirement: r.Requirement, severity: string(r.Severity)})
				}
				if r.Outcome != catalog.Pass && r.Outcome != catalog.Info {
					out[i].hosts++
				}
			}
		}
	}
	return out
}

func newSweeper(s *Server) *sweeper { return &sweeper{s: s, state: map[string]*sweepState{}} }

// restart stops the sweeps of the configuration before and starts those of the configuration in force. A sweep
// running at the time is interrupted and does not replace the last report.
func (sw *sweeper) restart() {
	sw.stop()
	sw.mu.Lock()
	defer sw.mu.Unlock()
	st := sw.s.state.Load()
	ctx, cancel := context.WithCancel(context.Background())
	sw.cancel = cancel
	for _, name := range sortedKeys(st.cfg.Sweeps) {
		ss := sw.state[name]
		if ss == nil {
			ss = &sweepState{runs: map[string]int{}}
			sw.state[name] = ss
		}
		cfg := st.cfg.Sweeps[name]
		sw.running.Add(1)
		go func() {
			defer sw.running.Done()
			sw.loop(ctx, st, name, cfg, ss)
		}()
	}
}

func (sw *sweeper) stop() {
	sw.mu.Lock()
	cancel := sw.cancel
	sw.cancel = nil
	sw.mu.Unlock()
	if cancel != nil {
		cancel()
		sw.running.Wait()
	}
}

// loop runs a sweep at once and then every interval, until ctx ends.
func (sw *sweeper) loop(ctx context.Context, st *state, name string, cfg SweepConfig, ss *sweepState) {
	for {
		sw.runOnce(ctx, st, name, cfg, ss)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(cfg.Interval)):
		}
	}
}

func (sw *sweeper) runOnce(ctx context.Context, st *state, name string, cfg SweepConfig, ss *sweepState) {
	log := sw.s.log.With("sweep", name)
	ss.mu.Lock()
	ss.active = true
	prev := ss.last
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		ss.active = false
		ss.mu.Unlock()
	}()
	run, err := sw.sweep(ctx, st, cfg, prev)
	result := "ok"
	switch {
	case err != nil:
		result = "error"
		log.Error("sweep failed", "err", err)
	case run.doc.Run.Interrupted:
		result = "interrupted"
		log.Info("sweep interrupted (a reload or shutdown); the last report stays", "hosts", len(run.doc.Hosts))
	default:
		log.Info("sweep done", "hosts", len(run.doc.Hosts), "regressed", run.regressed, "took", run.duration.Round(time.Millisecond))
		if run.outside > 0 {
			log.Warn("addresses outside allowed_targets were not probed", "count", run.outside)
		}
	}
	ss.mu.Lock()
	ss.runs[result]++
	if result == "ok" {
		ss.last = run
	}
	ss.mu.Unlock()
}

// sweep probes the sweep's targets once, within allowed_targets, and compares the result with prev.
func (sw *sweeper) sweep(ctx context.Context, st *state, cfg SweepConfig, prev *sweepRun) (*sweepRun, error) {
	m := st.modules[cfg.Module]
	p := targets.Parser{Resolver: sw.s.opts.Resolver}
	set := &targets.Set{}
	if err := p.Include(ctx, set, cfg.Targets...); err != nil {
		return nil, err
	}
	if err := p.Exclude(ctx, set, cfg.Exclude...); err != nil {
		return nil, err
	}
	// The listed names are resolved once per sweep, not once per address.
	named := map[netip.Addr]bool{}
	for _, n := range st.allow.names {
		addrs, _ := sw.s.opts.Resolver.LookupNetIP(ctx, "ip", n)
		for _, a := range addrs {
			named[a] = true
		}
	}
	var outside atomic.Int64
	set.Keep(func(a netip.Addr) bool {
		if !a.Is4In6() && (st.allow.containsAddr(a) || named[a]) {
			return true
		}
		outside.Add(1)
		return false
	})
	sockets := cfg.Concurrency
	if l := sw.s.opts.SocketLimit; l > 0 && sockets > l {
		sockets = l
	}
	started := time.Now()
	var hosts []report.HostRecord
	var sum report.Summary
	stats, err := m.run(ctx, set.ScanOrder(), sockets, cfg.Rate, func(rec report.HostRecord) {
		hosts = append(hosts, rec)
		sum.Add(rec)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(hosts, func(a, b report.HostRecord) int {
		x, _ := netip.ParseAddr(a.Address)
		y, _ := netip.ParseAddr(b.Address)
		return x.Compare(y)
	})
	info := m.runInfo(sw.s.opts.Version, started, sw.s.opts.Vantage)
	info.Finished = time.Now().UTC()
	info.Interrupted = stats.Stopped || ctx.Err() != nil
	info.Options.Concurrency = sockets
	info.Options.Rate = cfg.Rate
	doc := report.Document{Schema: report.SchemaVersion, Run: info, Hosts: hosts, Summary: sum}
	run := &sweepRun{doc: doc, module: cfg.Module, duration: time.Since(started), outside: outside.Load(), first: prev == nil,
		failing: countFailing(hosts)}
	if prev != nil {
		c := report.Compare("previous sweep", prev.doc, "this sweep", doc)
		regressed := map[string]bool{}
		for _, ch := range c.Changes {
			if ch.Kind == report.ChangeRegressed || ch.Kind == report.ChangeMissing || ch.Kind == report.ChangeFixed {
				run.changes = append(run.changes, ch)
			}
			if ch.Regression {
				regressed[ch.Address] = true
			}
		}
		run.regressed = len(regressed)
	}
	return run, nil
}

// handle serves /sweeps/NAME: the latest report as HTML, with what changed since the sweep before at the top, or
// as JSON with ?format=json (the same document as `ofmprobe scan --format json`, which `ofmprobe report` and
// `ofmprobe diff` read).
func (sw *sweeper) handle(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/sweeps/")
	st := sw.s.state.Load()
	if _, ok := st.cfg.Sweeps[name]; !ok {
		http.Error(w, fmt.Sprintf("unknown sweep %q (the configuration has %s)", name, strings.Join(sortedKeys(st.cfg.Sweeps), ", ")), http.StatusNotFound)
		return
	}
	sw.mu.Lock()
	ss := sw.state[name]
	sw.mu.Unlock()
	var run *sweepRun
	active := false
	if ss != nil {
		ss.mu.Lock()
		run, active = ss.last, ss.active
		ss.mu.Unlock()
	}
	if run == nil {
		w.Header().Set("Retry-After", "60")
		msg := "the sweep has not finished yet"
		if !active {
			msg = "the sweep has no finished run (see the log)"
		}
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	format := r.URL.Query().Get("format")
	switch format {
	case "", "html":
		format = "html"
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	case "json":
		w.Header().Set("Content-Type", "application/json")
	default:
		http.Error(w, fmt.Sprintf("unknown format %q (want html or json)", format), http.StatusBadRequest)
		return
	}
	rw, err := report.NewWithOptions(format, w, report.Options{Notes: run.notes(name)})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := rw.Begin(run.doc.Run); err != nil {
		return
	}
	for _, h := range run.doc.Hosts {
		if rw.Host(h) != nil {
			return
		}
	}
	rw.End(run.doc.Run, run.doc.Summary)
}

// notes are the page's lines about the sweep: when it ran and what changed since the sweep before.
func (run *sweepRun) notes(name string) []string {
	notes := []string{fmt.Sprintf("Sweep %s with module %s finished %s (took %s).", name, run.module,
		run.doc.Run.Finished.Format(time.RFC3339), run.duration.Round(time.Millisecond))}
	switch {
	case run.first:
		notes = append(notes, "This is the first sweep since the exporter started: nothing to compare with.")
	case len(run.changes) == 0:
		notes = append(notes, "No grade changed since the sweep before.")
	}
	for _, ch := range run.changes {
		host := ch.Address
		if ch.Name != "" {
			host += " (" + ch.Name + ")"
		}
		switch ch.Kind {
		case report.ChangeMissing:
			notes = append(notes, fmt.Sprintf("Regressed: %s is missing from this sweep (it was %s).", host, ch.Old))
		default:
			word := "Regressed"
			if ch.Kind == report.ChangeFixed {
				word = "Fixed"
			}
			line := fmt.Sprintf("%s: %s %s went from %s to %s", word, host, ch.Profile, ch.Old, ch.New)
			var reqs []string
			for _, rc := range ch.Requirements {
				reqs = append(reqs, fmt.Sprintf("%s %s→%s", rc.Requirement, rc.Old, rc.New))
			}
			if len(reqs) > 0 {
				line += " (" + strings.Join(reqs, ", ") + ")"
			}
			notes = append(notes, line+".")
		}
	}
	if run.outside > 0 {
		notes = append(notes, fmt.Sprintf("%d addresses of the sweep's targets lie outside allowed_targets and were not probed.", run.outside))
	}
	return notes
}

// sweepCollector reports the sweeps' latest results.
type sweepCollector struct{ sw *sweeper }

var (
	sweepHostsDesc = prometheus.NewDesc("ofmprobe_sweep_hosts", "Hosts of the sweep's latest run per grade of the module's profile (every grade, 0 included).",
		[]string{"sweep", "profile", "grade"}, nil)
	sweepFailingDesc = prometheus.NewDesc("ofmprobe_sweep_requirement_failing_hosts",
		"Hosts of the sweep's latest run where the requirement did not pass (fail, warn or unverified).", []string{"sweep", "profile", "requirement", "severity"}, nil)
	sweepRegressionsDesc = prometheus.NewDesc("ofmprobe_sweep_regressions",
		"Hosts whose grade got worse (or that went missing) from the sweep's run before to its latest.", []string{"sweep"}, nil)
	sweepLastDesc = prometheus.NewDesc("ofmprobe_sweep_last_success_timestamp_seconds",
		"When the sweep's latest complete run finished, in seconds since the Unix epoch.", []string{"sweep"}, nil)
	sweepDurationDesc = prometheus.NewDesc("ofmprobe_sweep_duration_seconds", "How long the sweep's latest complete run took.", []string{"sweep"}, nil)
	sweepRunsDesc     = prometheus.NewDesc("ofmprobe_sweep_runs_total", "Sweep runs by result: ok, interrupted (a reload or shutdown), error.",
		[]string{"sweep", "result"}, nil)
)

func (c sweepCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sweepHostsDesc, sweepFailingDesc, sweepRegressionsDesc, sweepLastDesc, sweepDurationDesc, sweepRunsDesc} {
		ch <- d
	}
}

func (c sweepCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.sw.s.state.Load()
	c.sw.mu.Lock()
	states := map[string]*sweepState{}
	for name := range st.cfg.Sweeps {
		if ss := c.sw.state[name]; ss != nil {
			states[name] = ss
		}
	}
	c.sw.mu.Unlock()
	for _, name := range sortedKeys(states) {
		ss := states[name]
		ss.mu.Lock()
		run := ss.last
		runs := map[string]int{}
		for k, v := range ss.runs {
			runs[k] = v
		}
		ss.mu.Unlock()
		for _, result := range []string{"ok", "interrupted", "error"} {
			ch <- prometheus.MustNewConstMetric(sweepRunsDesc, prometheus.CounterValue, float64(runs[result]), name, result)
		}
		if run == nil {
			continue
		}
		for _, p := range run.doc.Run.Profiles {
			for _, g := range grades {
				ch <- prometheus.MustNewConstMetric(sweepHostsDesc, prometheus.GaugeValue, float64(run.doc.Summary.Grades[p][g]), name, p, string(g))
			}
		}
		for _, f := range run.failing {
			ch <- prometheus.MustNewConstMetric(sweepFailingDesc, prometheus.GaugeValue, float64(f.hosts), name, f.profile, f.requirement, f.severity)
		}
		ch <- prometheus.MustNewConstMetric(sweepRegressionsDesc, prometheus.GaugeValue, float64(run.regressed), name)
		ch <- prometheus.MustNewConstMetric(sweepLastDesc, prometheus.GaugeValue, float64(run.doc.Run.Finished.UnixMilli())/1000, name)
		ch <- prometheus.MustNewConstMetric(sweepDurationDesc, prometheus.GaugeValue, run.duration.Seconds(), name)
	}
}
