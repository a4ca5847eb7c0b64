package report

import (
	"encoding/json"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/steps"
)

// CatalogProfile is a profile as a report's run record carries it: each requirement's text, written once for the
// whole report rather than once per host.
type CatalogProfile struct {
	Profile      string               `json:"profile"`
	Title        string               `json:"title"`
	Requirements []CatalogRequirement `json:"requirements"`
}

// CatalogRequirement is one requirement's text in the run record.
type CatalogRequirement struct {
	ID       string           `json:"id"`
	Title    string           `json:"title"`
	Severity catalog.Severity `json:"severity"`
	Why      string           `json:"why"`
	Fix      string           `json:"fix"`
}

// CatalogOf is the run record's catalog of the profiles a scan graded against.
func CatalogOf(profiles []catalog.Profile) []CatalogProfile {
	out := make([]CatalogProfile, 0, len(profiles))
	for _, p := range profiles {
		cp := CatalogProfile{Profile: p.ID, Title: p.Title, Requirements: make([]CatalogRequirement, 0, len(p.Requirements))}
		for _, r := range p.Requirements {
			cp.Requirements = append(cp.Requirements, CatalogRequirement{ID: r.ID, Title: r.Title, Severity: r.Severity, Why: r.Why, Fix: r.Fix})
		}
		out = append(out, cp)
	}
	return out
}

// texts finds a requirement's text by profile and requirement ID.
type texts map[[2]string]*CatalogRequirement

func textsOf(cat []CatalogProfile) texts {
	t := texts{}
	for i := range cat {
		for j := range cat[i].Requirements {
			r := &cat[i].Requirements[j]
			t[[2]string{cat[i].Profile, r.ID}] = r
		}
	}
	return t
}

// fill gives a host read back from JSON its requirements' titles, severities, reasons and fixes, from the run
// record's catalog. A requirement the catalog does not list keeps its ID as its title.
func (t texts) fill(h *HostRecord) {
	for i := range h.Profiles {
		g := &h.Profiles[i]
		for j := range g.Results {
			r := &g.Results[j]
			c, ok := t[[2]string{g.Profile, r.Requirement}]
			if !ok {
				if r.Title == "" {
					r.Title = r.Requirement
				}
				continue
			}
			r.Title, r.Severity, r.Why = c.Title, c.Severity, c.Why
			if catalog.NeedsFix(r.Outcome) {
				r.Fix = c.Fix
			}
		}
	}
}

// fillLegacy gives a host of a schema 1 report, whose results carried their own texts, those texts back.
func fillLegacy(raw []byte, h *HostRecord) error {
	var old struct {
		Profiles []struct {
			Results []struct {
				Title    string           `json:"title"`
				Severity catalog.Severity `json:"severity"`
				Why      string           `json:"why"`
				Fix      string           `json:"fix"`
			} `json:"results"`
		} `json:"profiles"`
	}
	if err := json.Unmarshal(raw, &old); err != nil {
		return err
	}
	for i := range min(len(old.Profiles), len(h.Profiles)) {
		for j := range min(len(old.Profiles[i].Results), len(h.Profiles[i].Results)) {
			o, r := old.Profiles[i].Results[j], &h.Profiles[i].Results[j]
			r.Title, r.Severity, r.Why, r.Fix = o.Title, o.Severity, o.Why, o.Fix
		}
	}
	return nil
}

// NewRun is the run record of a scan: its settings as the plan (cfg) and the engine (opts) took them, the profiles'
// requirements and the catalog's port table. Settings that belong to the command line alone (a shard, --steps)
// are the caller's to add.
func NewRun(version string, started time.Time, vantage []string, profiles []catalog.Profile, ports []catalog.Port, cfg steps.Config, opts engine.Options) Run {
	ids := make([]string, len(profiles))
	for i, p := range profiles {
		ids[i] = p.ID
	}
	return Run{
		Tool: "ofmprobe", Version: version, Started: started.UTC(), Vantage: vantage, Profiles: ids,
		Options: RunOptions{
			Ports: nonNil(cfg.Ports), UDPPorts: nonNil(cfg.UDPPorts),
			TimeoutMS: float64(opts.Timeout) / float64(time.Millisecond), Retries: opts.Retries,
			UDPTimeoutMS: float64(opts.UDPTimeout) / float64(time.Millisecond), UDPRetries: opts.UDPRetries,
			Concurrency: opts.Sockets, PerHost: opts.PerHost, OFMPort: cfg.OFMPort, Rate: opts.Rate,
			HostsInFlight: opts.HostsInFlight, Hops: cfg.MaxHops,
		},
		Catalog:   CatalogOf(profiles),
		PortTable: ports,
	}
}
