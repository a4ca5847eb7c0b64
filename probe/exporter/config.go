// Package exporter is `ofmprobe serve`: a Prometheus exporter that probes one host per scrape through the same engine,
// steps and catalog as `ofmprobe scan` (blackbox_exporter's multi-target pattern), and runs scheduled sweeps of whole
// ranges itself. Nothing outside the configuration's allow-list is ever probed.
package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

// Config is the exporter's configuration file (docs/prometheus.md shows one). Every key is known: an unknown one is
// an error, so a misspelt setting never silently falls back to a default.
type Config struct {
	// AllowedTargets are the CIDR prefixes, addresses and host names that may be probed; nothing else is.
	AllowedTargets []string `yaml:"allowed_targets"`
	// MaxProbesInFlight caps the /probe requests probing at once; one more is answered 503 with Retry-After.
	MaxProbesInFlight int `yaml:"max_probes_in_flight"`
	// MinInterval is the shortest time between two probes of one target with one module: a scrape sooner gets the
	// last result again.
	MinInterval Duration `yaml:"min_interval"`
	// Catalog is a custom catalog file; empty: the built-in one.
	Catalog string                  `yaml:"catalog"`
	Modules map[string]ModuleConfig `yaml:"modules"`
	Sweeps  map[string]SweepConfig  `yaml:"sweeps"`
}

// ModuleConfig is how one module probes: the profile it grades against and the scan settings `ofmprobe scan` takes
// as flags.
type ModuleConfig struct {
	Profile string `yaml:"profile"`
	// Timeout bounds a whole probe; the scrape's own timeout (X-Prometheus-Scrape-Timeout-Seconds) bounds it too,
	// and the shorter wins. 0: the scrape's alone.
	Timeout        Duration `yaml:"timeout"`
	ConnectTimeout Duration `yaml:"connect_timeout"`
	Retries        *int     `yaml:"retries"`
	UDPTimeout     Duration `yaml:"udp_timeout"`
	UDPRetries     *int     `yaml:"udp_retries"`
	Hops           *int     `yaml:"hops"`
	Steps          []string `yaml:"steps"`
	OFMPort        int      `yaml:"ofm_port"`
	ReadLog        int      `yaml:"read_log"`
	// CredentialsFile holds the share check's logon as user=, domain= and password= lines; empty: guest.
	CredentialsFile string `yaml:"credentials_file"`
	// MaxLogonFailures is how many logon failures stop the credentials being used (across scrapes), until a reload
	// or LogonCooldown.
	MaxLogonFailures int      `yaml:"max_logon_failures"`
	LogonCooldown    Duration `yaml:"logon_cooldown"`
}

// SweepConfig is a scheduled sweep: targets probed with a module every interval.
type SweepConfig struct {
	Targets  []string `yaml:"targets"`
	Exclude  []string `yaml:"exclude"`
	Module   string   `yaml:"module"`
	Interval Duration `yaml:"interval"`
	// Concurrency is the sweep's socket budget; 0: 1024.
	Concurrency int `yaml:"concurrency"`
	// Rate caps new connections and datagrams per second; 0: no cap.
	Rate float64 `yaml:"rate"`
}

// Defaults of the configuration, and of a module's scan settings (the same as `ofmprobe scan`'s flags).
const (
	DefaultMaxProbesInFlight = 8
	DefaultMinInterval       = 10 * time.Second
	DefaultConnectTimeout    = 1500 * time.Millisecond
	DefaultRetries           = 1
	DefaultUDPTimeout        = 750 * time.Millisecond
	DefaultUDPRetries        = 3
	DefaultMaxLogonFailures  = 3
	DefaultLogonCooldown     = 30 * time.Minute
	DefaultSweepConcurrency  = 1024
	// MinSweepInterval keeps a typo ("1s" for "1h") from turning a sweep into a flood.
	MinSweepInterval = 10 * time.Second
)

// Duration is a time.Duration written as Go writes one ("30s", "1h30m").
type Duration time.Duration

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 30s or 1h", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (want one such as 30s or 1h)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// LoadConfig reads and checks a configuration file. Its errors are one line, start with the file's name and give
// the line where YAML knows it.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("config %s: %v", path, err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %v", path, err)
	}
	return c, nil
}

// ParseConfig decodes and checks a configuration.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty (want at least modules:)")
		}
		return nil, yamlError(err)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return &c, nil
}

// yamlTypes names the structs in yaml.v3's unknown-field errors in the file's own terms.
var yamlTypes = map[string]string{"Config": "at the top level", "ModuleConfig": "in a module", "SweepConfig": "in a sweep"}

var (
	unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type exporter\.(\w+)`)
	cannotDecode = regexp.MustCompile(`line (\d+): cannot unmarshal !!(\w+)(?: .*)? into (\S+)`)
)

// yamlError turns a yaml.v3 error into one line: the first problem, in the file's terms, and how many more there are.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	msg := te.Errors[0]
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("line %s: unknown key %q %s", m[1], m[2], yamlTypes[m[3]])
	} else if m := cannotDecode.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("line %s: want %s, not a YAML %s", m[1], goTypeWords(m[3]), yamlKind(m[2]))
	}
	if n := len(te.Errors) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more problems)", n)
	}
	return errors.New(msg)
}

func goTypeWords(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case t == "int" || t == "*int":
		return "a whole number"
	case t == "float64":
		return "a number"
	case t == "string":
		return "a string"
	}
	return "a " + strings.TrimPrefix(t, "exporter.") + " mapping"
}

func yamlKind(tag string) string {
	switch tag {
	case "seq":
		return "list"
	case "map":
		return "mapping"
	case "str":
		return "string"
	}
	return tag
}

// check validates the configuration and fills its defaults, naming the first problem.
func (c *Config) check() error {
	if len(c.AllowedTargets) == 0 {
		return errors.New("allowed_targets is empty: list the CIDR prefixes and host names the exporter may probe")
	}
	if _, err := ParseAllowList(c.AllowedTargets); err != nil {
		return err
	}
	switch {
	case c.MaxProbesInFlight < 0:
		return fmt.Errorf("max_probes_in_flight %d must be at least 1", c.MaxProbesInFlight)
	case c.MaxProbesInFlight == 0:
		c.MaxProbesInFlight = DefaultMaxProbesInFlight
	}
	if c.MinInterval == 0 {
		c.MinInterval = Duration(DefaultMinInterval)
	}
	if len(c.Modules) == 0 {
		return errors.New("modules is empty: define at least one module with its profile")
	}
	cat, err := c.LoadCatalog()
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(c.Modules) {
		m := c.Modules[name]
		if err := m.check(name, cat); err != nil {
			return err
		}
		c.Modules[name] = m
	}
	for _, name := range sortedKeys(c.Sweeps) {
		s := c.Sweeps[name]
		if err := s.check(name, c); err != nil {
			return err
		}
		c.Sweeps[name] = s
	}
	return nil
}

// LoadCatalog returns the configuration's catalog: the built-in one, or its catalog file.
func (c *Config) LoadCatalog() (*catalog.Catalog, error) {
	if c.Catalog == "" {
		return catalog.Builtin(), nil
	}
	cat, err := catalog.Load(c.Catalog)
	if err != nil {
		return nil, fmt.Errorf("catalog: %v", err)
	}
	return cat, nil
}

var moduleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (m *ModuleConfig) check(name string, cat *catalog.Catalog) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("module %s: %s", name, fmt.Sprintf(format, args...))
	}
	if !moduleName.MatchString(name) {
		return fmt.Errorf("module name %q: use letters, digits, '.', '_' and '-' (at most 64)", name)
	}
	if m.Profile == "" {
		return bad("profile is missing (the catalog has %s)", strings.Join(cat.ProfileIDs(), ", "))
	}
	if _, ok := cat.Profile(m.Profile); !ok {
		return bad("unknown profile %q (the catalog has %s)", m.Profile, strings.Join(cat.ProfileIDs(), ", "))
	}
	setDefault := func(p **int, v int) {
		if *p == nil {
			*p = &v
		}
	}
	setDefault(&m.Retries, DefaultRetries)
	setDefault(&m.UDPRetries, DefaultUDPRetries)
	setDefault(&m.Hops, 4)
	if m.ConnectTimeout == 0 {
		m.ConnectTimeout = Duration(DefaultConnectTimeout)
	}
	if m.UDPTimeout == 0 {
		m.UDPTimeout = Duration(DefaultUDPTimeout)
	}
	if m.MaxLogonFailures == 0 {
		m.MaxLogonFailures = DefaultMaxLogonFailures
	}
	if m.LogonCooldown == 0 {
		m.LogonCooldown = Duration(DefaultLogonCooldown)
	}
	switch {
	case *m.Retries < 0 || *m.Retries > engine.MaxRetries:
		return bad("retries %d must be from 0 to %d", *m.Retries, engine.MaxRetries)
	case *m.UDPRetries < 0 || *m.UDPRetries > engine.MaxRetries:
		return bad("udp_retries %d must be from 0 to %d", *m.UDPRetries, engine.MaxRetries)
	case *m.Hops < 0 || *m.Hops > 30:
		return bad("hops %d must be from 0 (off) to 30", *m.Hops)
	case m.OFMPort < 0 || m.OFMPort > 65535:
		return bad("ofm_port %d must be from 1 to 65535 (or 0 for none)", m.OFMPort)
	case m.ReadLog < 0 || m.ReadLog > 10000:
		return bad("read_log %d must be from 0 to 10000", m.ReadLog)
	case m.MaxLogonFailures < 0:
		return bad("max_logon_failures %d must be at least 1", m.MaxLogonFailures)
	}
	known := steps.Keys()
	for _, s := range m.Steps {
		if !slices.Contains(known, s) {
			return bad("unknown step %q (want %s)", s, strings.Join(known, ", "))
		}
	}
	if m.CredentialsFile != "" {
		if _, err := readCredentials(m.CredentialsFile, m.MaxLogonFailures); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

var sweepName = moduleName

func (s *SweepConfig) check(name string, c *Config) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("sweep %s: %s", name, fmt.Sprintf(format, args...))
	}
	if !sweepName.MatchString(name) {
		return fmt.Errorf("sweep name %q: use letters, digits, '.', '_' and '-' (at most 64)", name)
	}
	if len(s.Targets) == 0 {
		return bad("targets is empty")
	}
	if s.Module == "" {
		return bad("module is missing")
	}
	if _, ok := c.Modules[s.Module]; !ok {
		return bad("unknown module %q (the configuration has %s)", s.Module, strings.Join(sortedKeys(c.Modules), ", "))
	}
	if time.Duration(s.Interval) < MinSweepInterval {
		return bad("interval %s must be at least %s", time.Duration(s.Interval), MinSweepInterval)
	}
	switch {
	case s.Concurrency < 0:
		return bad("concurrency %d must be at least 1", s.Concurrency)
	case s.Concurrency == 0:
		s.Concurrency = DefaultSweepConcurrency
	}
	if s.Rate < 0 {
		return bad("rate %g must not be negative", s.Rate)
	}
	// The targets must parse; whether each address is allowed is decided as the sweep walks them, since names resolve
	// at run time.
	for _, t := range append(slices.Clone(s.Targets), s.Exclude...) {
		if err := checkTargetSyntax(t); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// checkTargetSyntax parses a target expression without resolving names.
func checkTargetSyntax(t string) error {
	p := targets.Parser{Resolver: noResolve{}}
	set := &targets.Set{}
	err := p.Include(context.Background(), set, t)
	if err != nil && strings.Contains(err.Error(), errNoResolve.Error()) {
		return nil
	}
	return err
}

var errNoResolve = errors.New("names resolve when the sweep runs")

type noResolve struct{}

func (noResolve) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, errNoResolve
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
