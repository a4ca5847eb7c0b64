package exporter

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
	"github.com/ofmprobe/ofmprobe/probe/targets"
	"github.com/ofmprobe/ofmprobe/report"
)

// module is a configured module ready to probe: its profile, the steps' settings and the engine's options. It lives
// as long as the configuration it came from, and with it the credential guard, so the guard's count of logon
// failures holds across scrapes until a reload.
type module struct {
	name    string
	cfg     ModuleConfig
	profile catalog.Profile
	cat     *catalog.Catalog
	steps   steps.Config
	opts    engine.Options
	guard   *credentialGuard
}

func newModule(name string, cfg ModuleConfig, cat *catalog.Catalog) (*module, error) {
	p, ok := cat.Profile(cfg.Profile)
	if !ok {
		return nil, fmt.Errorf("module %s: unknown profile %q", name, cfg.Profile)
	}
	m := &module{name: name, cfg: cfg, profile: p, cat: cat}
	profiles := []catalog.Profile{p}
	m.steps = steps.Config{
		Ports: catalog.TCPPorts(profiles), OFMPort: cfg.OFMPort, UDPPorts: catalog.UDPPorts(profiles),
		NetBIOS: nbt.DefaultConfig,
		SMB:     smb.Config{DirectPort: 445, SessionPort: 139, ReadLog: cfg.ReadLog},
		MaxHops: *cfg.Hops,
	}
	m.opts = engine.Options{
		Timeout: time.Duration(cfg.ConnectTimeout), Retries: *cfg.Retries,
		UDPTimeout: time.Duration(cfg.UDPTimeout), UDPRetries: *cfg.UDPRetries,
		PerHost: 8,
	}
	if cfg.CredentialsFile != "" {
		c, err := readCredentials(cfg.CredentialsFile, cfg.MaxLogonFailures)
		if err != nil {
			return nil, fmt.Errorf("module %s: %v", name, err)
		}
		m.guard = &credentialGuard{fresh: c, cooldown: time.Duration(cfg.LogonCooldown)}
		m.guard.current = c.new()
	}
	// Check the plan once, so that a configuration that cannot run is refused at load and never at a scrape.
	if _, err := steps.Plan(m.steps, profiles, cfg.Steps); err != nil {
		return nil, fmt.Errorf("module %s: steps: %v", name, err)
	}
	return m, nil
}

// run probes the targets through the engine, with sockets in flight at most, and calls emit with each host's record,
// graded against the module's profile, from one goroutine. Cancelling ctx aborts the probes in flight: their hosts
// are still emitted, marked aborted, with what was learned by then.
func (m *module) run(ctx context.Context, tgts iter.Seq[targets.Target], sockets int, rate float64, emit func(report.HostRecord)) (engine.Stats, error) {
	cfg := m.steps
	cfg.SMB.Credentials = m.guard.credentials(time.Now())
	profiles := []catalog.Profile{m.profile}
	plan, err := steps.Plan(cfg, profiles, m.cfg.Steps)
	if err != nil {
		return engine.Stats{}, err
	}
	opts := m.opts
	opts.Sockets, opts.Rate = sockets, rate
	e, err := engine.New(plan, opts)
	if err != nil {
		return engine.Stats{}, err
	}
	stats := e.Run(ctx, tgts, func(h *engine.Host) {
		rec := report.NewHostRecord(h, steps.FactsOf(h, cfg), []catalog.Grading{catalog.Grade(m.profile, h)})
		emit(rec)
	})
	return stats, nil
}

// runInfo is the report's run record for a run of this module.
func (m *module) runInfo(version string, started time.Time, vantage []string) report.Run {
	run := report.NewRun(version, started, vantage, []catalog.Profile{m.profile}, m.cat.Ports, m.steps, m.opts)
	run.Options.Steps = m.cfg.Steps
	return run
}

// credentialSource is a credentials file's content; new makes a fresh guard-counted copy of it.
type credentialSource struct {
	user, domain string
	password     func() string
	maxFailures  int
}

func (c credentialSource) new() *smb.Credentials {
	return smb.NewCredentials(c.user, c.domain, c.password(), c.maxFailures)
}

// readCredentials reads a credentials file: user=, domain= (optional) and password= lines, # comments. Its errors
// name the file and the line number, never a line's content.
func readCredentials(path string, maxFailures int) (credentialSource, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return credentialSource{}, fmt.Errorf("credentials file %s: %v", path, err)
	}
	var c credentialSource
	var password string
	seen := map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || (key != "user" && key != "domain" && key != "password") {
			return credentialSource{}, fmt.Errorf("credentials file %s: line %d: want user=, domain= or password=", path, i+1)
		}
		if seen[key] {
			return credentialSource{}, fmt.Errorf("credentials file %s: line %d: %s= given twice", path, i+1, key)
		}
		seen[key] = true
		switch key {
		case "user":
			c.user = strings.TrimSpace(value)
		case "domain":
			c.domain = strings.TrimSpace(value)
		case "password":
			password = value
		}
	}
	switch {
	case c.user == "":
		return credentialSource{}, fmt.Errorf("credentials file %s: no user= line", path)
	case password == "":
		return credentialSource{}, fmt.Errorf("credentials file %s: no password= line", path)
	}
	c.password = func() string { return password }
	c.maxFailures = maxFailures
	return c, nil
}

// credentialGuard keeps one module's credentials across scrapes. The smb.Credentials it hands out count logon
// failures and stop being used at the limit; the guard notes when that happened and, after the cool-down, hands out
// a fresh count. A reload makes a new guard.
type credentialGuard struct {
	fresh    credentialSource
	cooldown time.Duration

	mu       sync.Mutex
	current  *smb.Credentials
	lockedAt time.Time
	// retired counts the logon failures of earlier counts, for the failures counter.
	retired int
}

// credentials returns the credentials to use now; nil (guest) when the module has none.
func (g *credentialGuard) credentials(now time.Time) *smb.Credentials {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshLocked(now)
	return g.current
}

func (g *credentialGuard) refreshLocked(now time.Time) {
	if !g.current.Disabled() {
		return
	}
	if g.lockedAt.IsZero() {
		g.lockedAt = now
	}
	if g.cooldown > 0 && now.Sub(g.lockedAt) >= g.cooldown {
		g.retired += g.current.Failures()
		g.current = g.fresh.new()
		g.lockedAt = time.Time{}
	}
}

// state returns whether the credentials are locked (not used) now, and the logon failures counted since the guard
// was made.
func (g *credentialGuard) state(now time.Time) (locked bool, failures int) {
	if g == nil {
		return false, 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refreshLocked(now)
	return g.current.Disabled(), g.retired + g.current.Failures()
}
