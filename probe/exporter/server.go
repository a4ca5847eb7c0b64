package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/singleflight"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/targets"
	"github.com/ofmprobe/ofmprobe/report"
)

// Options configures a Server.
type Options struct {
	// ConfigFile is the configuration file, read at start and at every reload.
	ConfigFile string
	Version    string
	Logger     *slog.Logger
	// Resolver resolves target names; nil is the system resolver.
	Resolver targets.Resolver
	// Vantage is the exporter machine's own addresses, for the reports' fixes.
	Vantage []string
	// ProbeSockets is one probe's socket budget; 0: 64.
	ProbeSockets int
	// SocketLimit bounds a sweep's socket budget (the open-file limit allows no more); 0: no bound.
	SocketLimit int
}

// DefaultProbeTimeout bounds a probe when the scrape does not say its timeout and the module sets none.
const DefaultProbeTimeout = 30 * time.Second

// scrapeTimeoutOffset is kept back from the scrape's timeout, for the answer to reach Prometheus in time.
const scrapeTimeoutOffset = 500 * time.Millisecond

// state is one loaded configuration: the modules (and their credential guards) live and die with it.
type state struct {
	cfg     *Config
	allow   *AllowList
	modules map[string]*module
	loaded  time.Time
}

// Server is the exporter: its HTTP handlers, the configuration in force, the probe cache and the sweeps.
type Server struct {
	opts   Options
	log    *slog.Logger
	state  atomic.Pointer[state]
	reload sync.Mutex

	// inFlight counts the probes running now; the limit is the configuration's.
	inFlight atomic.Int64
	group    singleflight.Group

	cacheMu sync.Mutex
	cache   map[cacheKey]probeResult

	sweeps *sweeper

	reg        *prometheus.Registry
	probes     *prometheus.CounterVec
	refusals   *prometheus.CounterVec
	durations  *prometheus.HistogramVec
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
}

type cacheKey struct {
	module string
	addr   netip.Addr
}

// Refusal reasons, the values of ofmprobe_exporter_refusals_total's reason label.
const (
	refusedUnknownModule = "unknown_module"
	refusedNotAllowed    = "target_not_allowed"
	refusedBadTarget     = "bad_target"
	refusedBusy          = "busy"
)

// New loads the configuration and returns a server; the sweeps start with Start.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.ProbeSockets == 0 {
		opts.ProbeSockets = 64
	}
	s := &Server{opts: opts, log: opts.Logger, cache: map[cacheKey]probeResult{}, reg: prometheus.NewRegistry()}
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	s.sweeps = newSweeper(s)
	s.registerMetrics()
	s.reloadOK.Set(1)
	s.reloadTime.Set(float64(st.loaded.UnixMilli()) / 1000)
	return s, nil
}

// load reads the configuration file and builds its modules.
func (s *Server) load() (*state, error) {
	cfg, err := LoadConfig(s.opts.ConfigFile)
	if err != nil {
		return nil, err
	}
	allow, _ := ParseAllowList(cfg.AllowedTargets)
	cat, err := cfg.LoadCatalog()
	if err != nil {
		return nil, fmt.Errorf("config %s: %v", s.opts.ConfigFile, err)
	}
	st := &state{cfg: cfg, allow: allow, modules: map[string]*module{}, loaded: time.Now()}
	for _, name := range sortedKeys(cfg.Modules) {
		m, err := newModule(name, cfg.Modules[name], cat)
		if err != nil {
			return nil, fmt.Errorf("config %s: %v", s.opts.ConfigFile, err)
		}
		st.modules[name] = m
	}
	return st, nil
}

// Reload reads the configuration again. A bad one is refused and the one in force stays; the reload metrics say
// which happened.
func (s *Server) Reload() error {
	s.reload.Lock()
	defer s.reload.Unlock()
	st, err := s.load()
	if err != nil {
		s.reloadOK.Set(0)
		s.log.Error("reload refused, the configuration in force stays", "err", err)
		return err
	}
	s.state.Store(st)
	s.cacheMu.Lock()
	clear(s.cache)
	s.cacheMu.Unlock()
	s.reloadOK.Set(1)
	s.reloadTime.Set(float64(st.loaded.UnixMilli()) / 1000)
	s.sweeps.restart()
	s.log.Info("configuration reloaded", "modules", len(st.modules), "sweeps", len(st.cfg.Sweeps))
	return nil
}

// Start runs the configured sweeps until Stop.
func (s *Server) Start() { s.sweeps.restart() }

// Stop ends the sweeps and waits for them.
func (s *Server) Stop() { s.sweeps.stop() }

func (s *Server) registerMetrics() {
	s.probes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ofmprobe_exporter_probes_total",
		Help: "Probes answered, by module and result: success (probe_success 1), failure, cached (the last result again, within min_interval)."},
		[]string{"module", "result"})
	s.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ofmprobe_exporter_refusals_total",
		Help: "Probe requests refused: unknown_module (400), bad_target (400), target_not_allowed (403), busy (503: max_probes_in_flight reached)."},
		[]string{"reason"})
	s.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ofmprobe_exporter_probe_duration_seconds",
		Help: "How long probes took, by module.", Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60}},
		[]string{"module"})
	s.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ofmprobe_exporter_config_last_reload_successful",
		Help: "1 when the last configuration load succeeded; 0 when it was refused and the one before stays in force."})
	s.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ofmprobe_exporter_config_last_reload_success_timestamp_seconds",
		Help: "When the configuration in force was loaded, in seconds since the Unix epoch."})
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ofmprobe_exporter_probes_in_flight", Help: "Probes running now."},
		func() float64 { return float64(s.inFlight.Load()) })
	limit := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ofmprobe_exporter_probes_in_flight_limit",
		Help: "max_probes_in_flight: a probe request beyond it is answered 503."},
		func() float64 { return float64(s.state.Load().cfg.MaxProbesInFlight) })
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ofmprobe_build_info", Help: "The exporter's version and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": s.opts.Version, "goversion": runtime.Version()}})
	build.Set(1)
	s.reg.MustRegister(s.probes, s.refusals, s.durations, s.reloadOK, s.reloadTime, inFlight, limit, build,
		credentialCollector{s}, sweepCollector{s.sweeps},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Handler returns the exporter's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/probe", s.handleProbe)
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/-/reload", s.handleReload)
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "Healthy") })
	mux.HandleFunc("/sweeps/", s.sweeps.handle)
	mux.HandleFunc("/config", s.handleConfig)
	mux.HandleFunc("/{$}", s.handleRoot)
	// Every answer is text, metrics or a report that carries strings from the network (NetBIOS names, evidence),
	// which the JSON report writes as they are: no browser may read one as another type than the one it says.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) handleRoot(w http.ResponseWriter, _ *http.Request) {
	st := s.state.Load()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "ofmprobe %s exporter\n\n/probe?target=ADDRESS&module=NAME   probe one host (debug=true for its evidence)\n/metrics   the exporter's own metrics\n/config    the configuration in force\n/-/reload  POST: read the configuration again\n\nmodules: %s\n",
		s.opts.Version, strings.Join(sortedKeys(st.modules), ", "))
	if names := sortedKeys(st.cfg.Sweeps); len(names) > 0 {
		fmt.Fprintln(w, "sweeps:")
		for _, n := range names {
			fmt.Fprintf(w, "  /sweeps/%s\n", n)
		}
	}
}

// handleConfig shows the configuration in force. It holds no secret: credentials are a file's path.
func (s *Server) handleConfig(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	b, err := yaml.Marshal(s.state.Load().cfg)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(b)
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "reload needs POST", http.StatusMethodNotAllowed)
		return
	}
	if err := s.Reload(); err != nil {
		http.Error(w, "reload refused, the configuration in force stays: "+err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "reloaded")
}

var errBusy = errors.New("busy")

// probeTimeout is the time a probe may take: the scrape's timeout less the offset, lowered by the module's.
func probeTimeout(r *http.Request, m *module) time.Duration {
	t := DefaultProbeTimeout
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
			t = time.Duration(secs * float64(time.Second))
			if t > 2*scrapeTimeoutOffset {
				t -= scrapeTimeoutOffset
			} else {
				t /= 2
			}
		}
	}
	if mt := time.Duration(m.cfg.Timeout); mt > 0 && mt < t {
		t = mt
	}
	return t
}

func (s *Server) handleProbe(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	q := r.URL.Query()
	name := q.Get("module")
	m, ok := st.modules[name]
	if !ok {
		s.refusals.WithLabelValues(refusedUnknownModule).Inc()
		msg := fmt.Sprintf("unknown module %q (the configuration has %s)", name, strings.Join(sortedKeys(st.modules), ", "))
		if name == "" {
			msg = "module is missing: /probe?target=ADDRESS&module=NAME (modules: " + strings.Join(sortedKeys(st.modules), ", ") + ")"
		}
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	timeout := probeTimeout(r, m)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	target, err := st.allow.Resolve(ctx, s.opts.Resolver, q.Get("target"))
	if err != nil {
		if errors.Is(err, ErrNotAllowed) {
			s.refusals.WithLabelValues(refusedNotAllowed).Inc()
			s.log.Warn("probe refused", "module", name, "err", err)
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		s.refusals.WithLabelValues(refusedBadTarget).Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	key := cacheKey{module: name, addr: target.Addr}
	res, cached := s.cached(key, time.Duration(st.cfg.MinInterval))
	if !cached {
		v, err, _ := s.group.Do(name+"|"+target.Addr.String(), func() (any, error) {
			return s.probe(ctx, st, m, target, key)
		})
		if errors.Is(err, errBusy) {
			s.refusals.WithLabelValues(refusedBusy).Inc()
			w.Header().Set("Retry-After", "1")
			http.Error(w, fmt.Sprintf("%d probes in flight already (max_probes_in_flight): try again", st.cfg.MaxProbesInFlight), http.StatusServiceUnavailable)
			return
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		res = v.(probeResult)
	}
	reg := probeRegistry(res, m.profile.ID, cached)
	result := "failure"
	if res.rec.Grade(m.profile.ID).Passed() {
		result = "success"
	}
	if cached {
		result = "cached"
	}
	s.probes.WithLabelValues(name, result).Inc()
	if q.Get("debug") == "true" {
		s.writeDebug(w, st, m, res, reg)
		return
	}
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// cached returns the last result of a probe made less than minInterval ago.
func (s *Server) cached(key cacheKey, minInterval time.Duration) (probeResult, bool) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	res, ok := s.cache[key]
	if !ok || time.Since(res.finished) >= minInterval {
		return probeResult{}, false
	}
	return res, true
}

// probe runs one host through the module's steps, within the in-flight cap.
func (s *Server) probe(ctx context.Context, st *state, m *module, target targets.Target, key cacheKey) (probeResult, error) {
	if n := s.inFlight.Add(1); n > int64(st.cfg.MaxProbesInFlight) {
		s.inFlight.Add(-1)
		return probeResult{}, errBusy
	}
	defer s.inFlight.Add(-1)
	start := time.Now()
	var res probeResult
	got := false
	_, err := m.run(ctx, func(yield func(targets.Target) bool) { yield(target) }, s.opts.ProbeSockets, 0, func(rec report.HostRecord) {
		res.rec, got = rec, true
	})
	if err != nil {
		return probeResult{}, err
	}
	if !got {
		return probeResult{}, fmt.Errorf("the engine emitted no result for %s", target.Addr)
	}
	res.duration = time.Since(start)
	res.finished = time.Now()
	res.timedOut = res.rec.Aborted || ctx.Err() != nil
	s.durations.WithLabelValues(m.name).Observe(res.duration.Seconds())
	if res.timedOut {
		s.log.Info("probe ran out of time", "module", m.name, "target", target.Addr, "after", res.duration.Round(time.Millisecond))
	}
	s.cacheMu.Lock()
	s.cache[key] = res
	// The cache holds one result per module and target that was probed; a result older than the interval is of no
	// use, so the map never grows past the targets probed within one interval.
	for k, v := range s.cache {
		if time.Since(v.finished) >= time.Duration(st.cfg.MinInterval) {
			delete(s.cache, k)
		}
	}
	s.cacheMu.Unlock()
	return res, nil
}

// writeDebug answers debug=true: the module, the host's evidence in the text report, and the metrics.
func (s *Server) writeDebug(w http.ResponseWriter, st *state, m *module, res probeResult, reg *prometheus.Registry) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Module %s:\n", m.name)
	b, _ := yaml.Marshal(st.cfg.Modules[m.name])
	w.Write(b)
	fmt.Fprintf(w, "\nProbe of %s (%s, %s):\n", res.rec.Address, res.duration.Round(time.Millisecond), map[bool]string{true: "ran out of time", false: "every step ended"}[res.timedOut])
	rec := res.rec
	fmt.Fprintf(w, "status %s", rec.Status)
	if rec.Error != "" {
		fmt.Fprintf(w, " (%s)", rec.Error)
	}
	fmt.Fprintln(w)
	for _, p := range rec.Ports {
		fmt.Fprintf(w, "  %s\n", p.Evidence)
	}
	for _, line := range []struct{ name, evidence string }{
		{"netbios node status", evidenceOf(rec.NetBIOS != nil, func() string { return rec.NetBIOS.Evidence })},
		{"netbios session", evidenceOf(rec.Session != nil, func() string { return rec.Session.Evidence })},
		{"smb 445", evidenceOf(rec.SMB != nil, func() string { return rec.SMB.Evidence })},
		{"smb 139", evidenceOf(rec.SMB139 != nil, func() string { return rec.SMB139.Evidence })},
		{"share", evidenceOf(rec.Share != nil, func() string { return rec.Share.Evidence })},
		{"endpoint mapper", evidenceOf(rec.EPM != nil, func() string { return rec.EPM.Evidence })},
	} {
		if line.evidence != "" {
			fmt.Fprintf(w, "  %s: %s\n", line.name, line.evidence)
		}
	}
	for _, g := range rec.Profiles {
		fmt.Fprintf(w, "\nGrade for %s: %s\n", g.Profile, g.Grade)
		for _, r := range g.Results {
			fmt.Fprintf(w, "  %s (%s): %s\n", r.Requirement, r.Severity, r.Outcome)
			for _, e := range r.Evidence {
				fmt.Fprintf(w, "      %s\n", e)
			}
			if r.Reason != "" {
				fmt.Fprintf(w, "      skipped: %s\n", r.Reason)
			}
			if r.Cause != "" {
				fmt.Fprintf(w, "      cause: %s\n", r.Cause)
				if a := catalog.Action(r.Cause, s.opts.Vantage, m.cat.Ports); a != "" {
					fmt.Fprintf(w, "      action: %s\n", a)
				}
			}
			if catalog.NeedsFix(r.Outcome) && r.Fix != "" {
				fmt.Fprintf(w, "      fix: %s\n", r.Fix)
			}
		}
	}
	fmt.Fprintln(w, "\nMetrics:")
	mfs, err := reg.Gather()
	if err != nil {
		fmt.Fprintf(w, "gather: %v\n", err)
		return
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		enc.Encode(mf)
	}
}

func evidenceOf(ok bool, f func() string) string {
	if !ok {
		return ""
	}
	return f()
}

// credentialCollector reports each module's credential guard.
type credentialCollector struct{ s *Server }

var (
	credLockedDesc = prometheus.NewDesc("ofmprobe_exporter_credentials_locked",
		"1 when the module's credentials are not used: they met max_logon_failures logon failures (or a locked-out account), until logon_cooldown passes or the configuration is reloaded.",
		[]string{"module"}, nil)
	credFailuresDesc = prometheus.NewDesc("ofmprobe_exporter_logon_failures_total",
		"Logon failures the module's credentials met since the configuration was loaded.", []string{"module"}, nil)
)

func (c credentialCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- credLockedDesc
	ch <- credFailuresDesc
}

func (c credentialCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.state.Load()
	now := time.Now()
	names := sortedKeys(st.modules)
	for _, n := range names {
		m := st.modules[n]
		if m.guard == nil {
			continue
		}
		locked, failures := m.guard.state(now)
		v := 0.0
		if locked {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(credLockedDesc, prometheus.GaugeValue, v, n)
		ch <- prometheus.MustNewConstMetric(credFailuresDesc, prometheus.CounterValue, float64(failures), n)
	}
}
