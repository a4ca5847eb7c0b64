package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
	"github.com/ofmprobe/ofmprobe/probe/targets"
	"github.com/ofmprobe/ofmprobe/report"
)

// resolver resolves target host names; nil is the system resolver. Tests replace it so that nothing leaves the machine.
var resolver targets.Resolver

// maxTargetsWithoutFlag is the largest target set scanned without --allow-large.
const maxTargetsWithoutFlag = 65536

// autoConcurrency is the default socket budget. A connect probe in flight is a socket and about 100 bytes, with no
// goroutine, so the budget is set by what a /16's silent ports need (65,536 of them take 3 s each: 16,384 sockets
// finish them in 12 s) and by the open-file limit, not by memory. A quarter of it, at most 4,096, goes to the
// protocol exchanges, which each hold a goroutine.
const autoConcurrency = 16384

// scanOptions is everything the scan command was asked to do.
type scanOptions struct {
	targets      []string
	targetsFile  string
	exclude      []string
	excludeFile  string
	allowLarge   bool
	profiles     []string
	catalogFile  string
	format       string
	output       string
	ports        string
	ofmPort      int
	timeout      time.Duration
	retries      int
	udpTimeout   time.Duration
	udpRetries   int
	concurrency  int
	syn          bool
	connect      bool
	perHost      int
	debug        bool
	stdoutIsTerm bool
	// all lists every host and cause in the table.
	all bool
	// netstat holds the --netstat ADDRESS=FILE values.
	netstat []string
	// hops is --hops: the hop finder's limit, 0 for off.
	hops         int
	baseline     string
	user         string
	domain       string
	passwordFile string
	// password comes from --password-file or OFMPROBE_PASSWORD; never from a flag, so it is never in `ps`.
	password        string
	maxAuthFailures int
	readLog         int
	rate            float64
	shard           string
	seed            uint64
	resume          string
	quiet           bool
	stderrIsTerm    bool
	steps           []string
	hostsInFlight   int
	memory          string
	cpuProfile      string
	memProfile      string
	trace           string
}

func scanCommand() *cli.Command {
	return &cli.Command{
		Name:      "scan",
		Usage:     "probe targets and grade them against the OFM profiles",
		ArgsUsage: "TARGET...",
		Description: "TARGET is an address (198.18.0.10, 2001:db8::10), a CIDR prefix (198.18.0.0/24), a range\n" +
			"(198.18.0.10-20 or 198.18.0.10-198.18.1.5), an octet range (198.18.0-3.1-254, lists like 1,5,7-9, * for\n" +
			"0-255) or a host name (every address it resolves to). Each address is probed once.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "targets-file", Aliases: []string{"iL"}, Usage: "read targets from `FILE`, one per line, # comments (- for stdin)"},
			&cli.StringSliceFlag{Name: "exclude", Usage: "leave out these `TARGETS` (repeatable, or comma-separated)"},
			&cli.StringFlag{Name: "exclude-file", Usage: "leave out the targets listed in `FILE`"},
			&cli.BoolFlag{Name: "allow-large", Usage: fmt.Sprintf("allow more than %d targets", maxTargetsWithoutFlag)},
			&cli.StringSliceFlag{Name: "profile", Usage: "grade against this `PROFILE` (repeatable; default: every profile in the catalog)"},
			&cli.StringFlag{Name: "catalog", Usage: "use a custom catalog `FILE` instead of the built-in one"},
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "report `FORMAT`: " + strings.Join(report.FormatNames(), ", ") + " (default: table on a terminal, else ndjson)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the report to `FILE` instead of stdout"},
			&cli.StringFlag{Name: "baseline", Usage: "compare with an earlier JSON or NDJSON report `FILE` at the end; changes go to stderr, and the exit status is 1 only if something regressed"},
			&cli.StringFlag{Name: "ports", Usage: "TCP `PORTS` to probe: a list like 445,139 narrows the catalog's ports, +8080 adds to them"},
			&cli.IntFlag{Name: "ofm-port", Usage: "the OFM 9.1+ service's TCP `PORT`, if known (graded by ofm-9.1)"},
			&cli.DurationFlag{Name: "timeout", Value: 1500 * time.Millisecond, Usage: "wait this `DURATION` for each connect attempt"},
			&cli.IntFlag{Name: "retries", Value: 1, Usage: "try a silent port `N` more times before calling it filtered"},
			&cli.DurationFlag{Name: "udp-timeout", Value: 750 * time.Millisecond, Usage: "wait this `DURATION` for an answer to each UDP datagram (NetBIOS node status, UDP ports)"},
			&cli.IntFlag{Name: "udp-retries", Value: 3, Usage: "send to a silent UDP port `N` more times (ICMP answers are rate-limited, datagrams get lost)"},
			&cli.IntFlag{Name: "concurrency", Usage: "`N` sockets in flight across the scan", DefaultText: fmt.Sprintf("%d, or less when the open-file limit is lower", autoConcurrency)},
			&cli.IntFlag{Name: "per-host", Value: 8, Usage: "`N` probes in flight to any one host"},
			&cli.BoolFlag{Name: "syn", Usage: "send TCP probes to IPv4 hosts as raw SYNs (as nmap -sS; needs root or CAP_NET_RAW), and say so when they cannot be (default: raw SYNs where this process may open raw sockets, else full connects)"},
			&cli.BoolFlag{Name: "connect", Usage: "make every TCP probe a full connect on a socket of its own (as nmap -sT), even where raw SYNs could be sent"},
			&cli.StringFlag{Name: "memory", Value: formatSize(engine.DefaultMemory), Usage: "the scan's memory budget, `SIZE` (224MiB, 1GiB): the Go runtime's soft limit, and the bound on hosts in flight unless --hosts-in-flight is given; more lets more hosts wait at once on a slow network"},
			&cli.IntFlag{Name: "hosts-in-flight", Usage: "probe at most `N` hosts at once (a waiting host costs a few KiB, not a socket)",
				DefaultText: fmt.Sprintf("from --memory: %d for %s, %s of it kept for the exchanges and the runtime, %d KiB a host with the collector's headroom",
					engine.DefaultHostsInFlight, formatSize(engine.DefaultMemory), formatSize(engine.MemoryReserve), 2*engine.BytesPerHost>>10)},
			&cli.StringSliceFlag{Name: "steps", Usage: "run only these `STEPS` (repeatable, or comma-separated: " + strings.Join(steps.Keys(), ", ") + "), and the steps they need; default: every step the profiles' checks use"},
			&cli.Float64Flag{Name: "rate", Usage: "send at most `N` new connections and datagrams per second across the scan", DefaultText: "no cap"},
			&cli.StringFlag{Name: "shard", Usage: "scan only part `I/N` of the targets (the same --seed on every machine covers every address once); job/N takes I from a Kubernetes Indexed Job's JOB_COMPLETION_INDEX (plus one), N being the Job's completions"},
			&cli.Uint64Flag{Name: "seed", Usage: "`N` that keys the --shard split and the scattered scan order; every machine of one split must use the same"},
			&cli.StringFlag{Name: "resume", Usage: "append to the NDJSON report `FILE`, skipping the hosts it already holds"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress line on stderr"},
			&cli.StringSliceFlag{Name: "netstat", Usage: netstatUsage},
			&cli.IntFlag{Name: "hops", Value: tcp.DefaultMaxHops, Usage: "trace a silent TCP port of a host that answers other ports through at most `N` hops (SYNs of a growing TTL, one try each) to find where it is dropped; 0 turns it off"},
			&cli.BoolFlag{Name: "all", Usage: "table: list every host and every cause (by default addresses where nothing answered fold into one line, and the first 10 causes are shown)"},
			&cli.StringFlag{Name: "user", Usage: "log on to OFMLOG$ as `USER` (default: a guest login, reported as such)"},
			&cli.StringFlag{Name: "domain", Usage: "the user's `DOMAIN` or workgroup"},
			&cli.StringFlag{Name: "password-file", Usage: "read the password from the first line of `FILE` (or set OFMPROBE_PASSWORD); never on the command line"},
			&cli.IntFlag{Name: "max-auth-failures", Value: 3, Usage: "stop using the credentials after `N` logon failures, so a mistyped password cannot lock the account out"},
			&cli.IntFlag{Name: "read-log", Usage: "put the last `N` lines of OFMNT.LOG in the report"},
			&cli.BoolFlag{Name: "debug", Usage: "print internal errors with their stacks, and the engine's counters, on stderr"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the scan to `FILE` (for developers)", Hidden: true},
			&cli.StringFlag{Name: "memprofile", Usage: "write a Go heap profile of the scan's largest heap to `FILE` (for developers)", Hidden: true},
			&cli.StringFlag{Name: "trace", Usage: "write when each step of each host started and ended to `FILE` (for developers)", Hidden: true},
		},
		Action: func(c *cli.Context) error {
			opts := scanOptions{
				targets:         c.Args().Slice(),
				targetsFile:     c.String("targets-file"),
				exclude:         c.StringSlice("exclude"),
				excludeFile:     c.String("exclude-file"),
				allowLarge:      c.Bool("allow-large"),
				profiles:        c.StringSlice("profile"),
				catalogFile:     c.String("catalog"),
				format:          c.String("format"),
				output:          c.String("output"),
				ports:           c.String("ports"),
				ofmPort:         c.Int("ofm-port"),
				timeout:         c.Duration("timeout"),
				retries:         c.Int("retries"),
				udpTimeout:      c.Duration("udp-timeout"),
				udpRetries:      c.Int("udp-retries"),
				concurrency:     c.Int("concurrency"),
				perHost:         c.Int("per-host"),
				debug:           c.Bool("debug"),
				stdoutIsTerm:    isTerminal(c.App.Writer),
				baseline:        c.String("baseline"),
				user:            c.String("user"),
				domain:          c.String("domain"),
				passwordFile:    c.String("password-file"),
				password:        os.Getenv("OFMPROBE_PASSWORD"),
				maxAuthFailures: c.Int("max-auth-failures"),
				readLog:         c.Int("read-log"),
				rate:            c.Float64("rate"),
				shard:           c.String("shard"),
				seed:            c.Uint64("seed"),
				resume:          c.String("resume"),
				quiet:           c.Bool("quiet"),
				all:             c.Bool("all"),
				netstat:         c.StringSlice("netstat"),
				hops:            c.Int("hops"),
				stderrIsTerm:    isTerminal(c.App.ErrWriter),
				steps:           c.StringSlice("steps"),
				hostsInFlight:   c.Int("hosts-in-flight"),
				memory:          c.String("memory"),
				syn:             c.Bool("syn"),
				connect:         c.Bool("connect"),
				cpuProfile:      c.String("cpuprofile"),
				memProfile:      c.String("memprofile"),
				trace:           c.String("trace"),
			}
			return runScan(c.Context, opts, c.App.Reader, c.App.Writer, c.App.ErrWriter)
		},
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runScan parses the targets, runs the scan, writes the report and returns the exit status as an error.
func runScan(ctx context.Context, opts scanOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	cat, err := loadCatalog(opts.catalogFile)
	if err != nil {
		return err
	}
	profiles, err := selectProfiles(cat, opts.profiles)
	if err != nil {
		return err
	}
	ports, err := parsePorts(opts.ports, catalog.TCPPorts(profiles))
	if err != nil {
		return err
	}
	if opts.resume != "" {
		switch {
		case opts.format != "" && opts.format != "ndjson":
			return usageErrorf("--resume appends to an NDJSON report: --format %s cannot be resumed", opts.format)
		case opts.output != "" && opts.output != opts.resume:
			return usageErrorf("--resume %s appends to that file: drop --output %s", opts.resume, opts.output)
		case opts.baseline != "":
			return usageErrorf("--resume cannot be used with --baseline: compare the finished report with ofmprobe diff")
		}
		opts.format, opts.output = "ndjson", opts.resume
	}
	if opts.format == "" {
		opts.format = "ndjson"
		if opts.stdoutIsTerm && opts.output == "" {
			opts.format = "table"
		}
	}
	if _, ok := report.Formats[opts.format]; !ok {
		return usageErrorf("unknown format %q (want %s)", opts.format, strings.Join(report.FormatNames(), ", "))
	}
	var base report.Document
	if opts.baseline != "" {
		if base, err = loadBaseline(opts.baseline); err != nil {
			return err
		}
	}
	set, err := parseTargets(ctx, opts, stdin)
	if err != nil {
		return err
	}
	set.Seed = opts.seed
	if opts.shard, err = jobShard(opts.shard, os.Getenv); err != nil {
		return err
	}
	if opts.shard != "" {
		shard, err := targets.ParseShard(opts.shard, opts.seed)
		if err != nil {
			return usageErrorf("--%v", err)
		}
		set.Keep(shard.Contains)
	}
	resumed, resumedFailing := 0, 0
	if opts.resume != "" {
		st, err := readResume(opts.resume)
		if err != nil {
			return err
		}
		resumed = len(st.done)
		// The hosts the file holds, which this run does not scan again, count towards the exit status: it is the
		// whole file's.
		for a := range st.done {
			if st.failing[a] {
				resumedFailing++
			}
		}
		set.Keep(func(a netip.Addr) bool { return !st.done[a] })
	}
	n := set.CountUpTo(maxTargetsWithoutFlag)
	if n == 0 {
		if resumed > 0 {
			fmt.Fprintf(stderr, "ofmprobe: %s already holds all %d hosts (%d of them not passing): nothing left to scan\n", opts.resume, resumed, resumedFailing)
			if resumedFailing > 0 {
				return &exitError{code: exitFail}
			}
			return nil
		}
		if opts.shard == "" {
			return usageErrorf("no targets left to scan after exclusions")
		}
		// One shard of a split may hold none of the targets (a small range split many ways): its report is empty,
		// and a complete answer for its part, so that a batch job's pod succeeds.
		fmt.Fprintf(stderr, "ofmprobe: shard %s holds none of the targets: the report is empty\n", opts.shard)
	} else if n > maxTargetsWithoutFlag && !opts.allowLarge {
		return usageErrorf("more than %d targets (at most %d addresses given); add --allow-large to scan them all", maxTargetsWithoutFlag, set.UpperBound())
	}

	creds, err := credentials(opts)
	if err != nil {
		return err
	}
	netstats, err := readNetstats(opts.netstat)
	if err != nil {
		return err
	}
	if opts.hops < 0 || opts.hops > 30 {
		return usageErrorf("--hops %d must be from 0 (off) to 30", opts.hops)
	}
	if opts.syn && opts.connect {
		return usageErrorf("--syn and --connect each choose how TCP probes go out: give one of them")
	}

	if opts.concurrency < 0 {
		return usageErrorf("--concurrency %d must be at least 1 (or 0 for the default)", opts.concurrency)
	}
	budget := opts.concurrency
	if budget == 0 {
		budget = autoConcurrency
	}
	if limit, err := engine.RaiseFileLimit(); err != nil {
		fmt.Fprintf(stderr, "ofmprobe: warning: %v\n", err)
	} else if b := engine.SocketBudget(budget, limit); b < budget {
		if opts.concurrency != 0 {
			fmt.Fprintf(stderr, "ofmprobe: concurrency lowered from %d to %d: the open-file limit is %d\n", opts.concurrency, b, limit)
		}
		budget = b
	}
	stepCfg := steps.Config{
		Ports: ports, OFMPort: opts.ofmPort, UDPPorts: catalog.UDPPorts(profiles),
		NetBIOS: nbt.DefaultConfig,
		SMB:     smb.Config{DirectPort: 445, SessionPort: 139, Credentials: creds, ReadLog: opts.readLog},
		MaxHops: opts.hops,
	}
	plan, err := steps.Plan(stepCfg, profiles, splitList(opts.steps))
	if err != nil {
		return usageErrorf("--steps: %v", err)
	}
	if len(plan.Steps()) == 0 {
		return usageErrorf("nothing to probe: the selected profiles and --steps leave no step to run")
	}
	if opts.hostsInFlight < 0 {
		return usageErrorf("--hosts-in-flight %d must be at least 1 (or 0 for the default)", opts.hostsInFlight)
	}
	memory, err := memoryBudget(opts.memory)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if opts.hostsInFlight == 0 && memory != engine.DefaultMemory {
		opts.hostsInFlight = engine.HostsInFlightFor(memory) // else the engine's default, the same, unrecorded
	}
	engineOpts := engine.Options{
		Timeout: opts.timeout, Retries: opts.retries, UDPTimeout: opts.udpTimeout, UDPRetries: opts.udpRetries,
		Sockets: budget, PerHost: opts.perHost, HostsInFlight: opts.hostsInFlight, Rate: opts.rate,
	}
	switch {
	case opts.syn:
		engineOpts.TCPProbe = engine.TCPProbeSYN
	case !opts.connect:
		engineOpts.TCPProbe = engine.TCPProbeAuto
	}
	scanner, err := engine.New(plan, engineOpts)
	if err != nil {
		return usageErrorf("%v", err)
	}
	defer limitMemory(memory)()
	if err := scanner.SYNUnavailable(); err != nil {
		fmt.Fprintf(stderr, "ofmprobe: --syn: %v (it needs root or CAP_NET_RAW): the TCP probes are full connects\n", err)
	}

	out, finish, err := openOutput(opts, stdout)
	if err != nil {
		return usageErrorf("%v", err)
	}
	ropts := reportOptions(stdout, opts.stdoutIsTerm && (opts.output == "" || opts.output == "-"))
	ropts.All = opts.all
	w, _ := report.NewWithOptions(opts.format, out, ropts)
	run := report.NewRun(version, time.Now(), vantageAddresses(), profiles, cat.Ports, stepCfg, engineOpts)
	run.Options.Shard, run.Options.Seed, run.Options.Steps = opts.shard, opts.seed, splitList(opts.steps)
	if plan.Connects() {
		run.Options.TCPProbe = scanner.TCPProbeUsed()
	}
	if err := w.Begin(run); err != nil {
		finish(false)
		return fmt.Errorf("write report: %w", err)
	}

	// The first Ctrl-C stops new hosts and lets those in flight finish within their timeouts; the second aborts.
	abortCtx, abort := context.WithCancel(ctx)
	defer abort()
	interrupted := watchSignals(abortCtx, scanner, abort, stderr, opts)

	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			return usageErrorf("--cpuprofile: %v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return usageErrorf("--cpuprofile: %v", err)
		}
		defer pprof.StopCPUProfile()
	}
	if opts.trace != "" {
		f, err := os.Create(opts.trace)
		if err != nil {
			return usageErrorf("--trace: %v", err)
		}
		defer f.Close()
		scanner.SetTrace(f)
	}
	if opts.memProfile != "" {
		if err := peakHeapProfile(abortCtx, opts.memProfile); err != nil {
			return usageErrorf("--memprofile: %v", err)
		}
	}
	var bar *progress
	if opts.stderrIsTerm && !opts.quiet {
		bar = newProgress(stderr, progressTotal(set, n))
	}
	var sum report.Summary
	var baselineHosts []report.HostRecord
	var writeErr error
	stats := scanner.Run(abortCtx, set.ScanOrder(), func(h *engine.Host) {
		gradings := make([]catalog.Grading, len(profiles))
		for i, p := range profiles {
			gradings[i] = catalog.Grade(p, h)
		}
		rec := report.NewHostRecord(h, steps.FactsOf(h, stepCfg), gradings)
		if t, ok := netstatFor(netstats, rec.Address); ok {
			rec.ExplainNetstat(t, run.Vantage, run.PortTable)
		}
		sum.Add(rec)
		bar.host(rec)
		if opts.baseline != "" {
			baselineHosts = append(baselineHosts, rec)
		}
		if h.Status == engine.HostInternal && opts.debug {
			fmt.Fprintf(stderr, "ofmprobe: internal error probing %s: %s\n%s\n", h.Addr, h.Error, h.Stack)
		}
		if writeErr == nil {
			if writeErr = w.Host(rec); writeErr != nil {
				scanner.Stop()
			}
		}
	})
	bar.finish()
	if stats.Pushback > 0 {
		fmt.Fprintf(stderr, "ofmprobe: the kernel refused sockets %d times (out of descriptors, buffers or ports): those probes waited and retried; the socket budget ended at %d\n", stats.Pushback, stats.Budget)
	}
	if stats.MemoryWaits > 0 {
		fmt.Fprintf(stderr, "ofmprobe: memory: the scan went over its budget (%s) %s and admitted no new hosts until it was back under; a larger --memory keeps more hosts in flight\n",
			formatSize(debug.SetMemoryLimit(-1)), times(int(stats.MemoryWaits)))
	}
	// The scan's two TCP connect paths: the connector, and the SYN prober when raw SYNs went out.
	tcpPaths := []struct {
		name, probes, debugName string
		c                       engine.ConnectStats
	}{{"TCP", "connect", "connector", stats.Connects}, {"TCP SYN probes", "SYN probe", "SYN prober", stats.SYN}}
	for _, path := range tcpPaths {
		if c := path.c; c.Backoffs > 0 {
			fmt.Fprintf(stderr, "ofmprobe: %s: %d %s met a loss on the way to hosts that answer: the %ss in flight were cut %s, from %d to %d at the lowest, and ended at %d\n",
				path.name, c.Losses, engine.Plural(int(c.Losses), path.probes), path.probes, times(c.Backoffs), c.MaxInFlight, c.LowestWindow, c.Window)
		}
	}
	if d := stats.Datagrams; d.Backoffs > 0 {
		fmt.Fprintf(stderr, "ofmprobe: UDP: answers came only after retries %s (loss on the way): the window of queries in flight was cut %s, to %d at the lowest, and ended at %d\n",
			times(int(d.Backoffs)), times(int(d.Backoffs)), d.LowestWindow, d.Window)
	}
	if d := stats.Datagrams; d.KernelDrops > 0 || d.Pushbacks > 0 {
		fmt.Fprintf(stderr, "ofmprobe: UDP: %d datagrams sent, %d answers; the kernel dropped %d answers for a full receive buffer and pushed back %d sends: lower --rate\n",
			d.Sent, d.Answers, d.KernelDrops, d.Pushbacks)
	}
	if stats.Recovered > 0 || (opts.debug && stats.VerifiedPorts+stats.VerifiedQueries > 0) {
		fmt.Fprintf(stderr, "ofmprobe: silence verified: %d TCP ports and %d node status queries, silent on hosts that answered other probes, were tried again; %d answered then (probes or answers were lost on the way)\n",
			stats.VerifiedPorts, stats.VerifiedQueries, stats.Recovered)
	}
	if opts.debug {
		for _, path := range tcpPaths {
			if c := path.c; c.Started > 0 {
				fmt.Fprintf(stderr, "ofmprobe: TCP %s: %d started, %d connected, %d refused, %d unreachable, %d timed out, %d denied, %d failed, %d local errors, %d second SYNs, %d pushbacks, %d losses, %d in flight at most (window %d of %d, lowest %d)\n",
					path.debugName, c.Started, c.Connected, c.Refused, c.Unreachable, c.TimedOut, c.Denied, c.Failed, c.LocalErrors, c.Resent, c.Pushbacks, c.Losses, c.PeakInFlight, c.Window, c.MaxInFlight, c.LowestWindow)
			}
		}
		d := stats.Datagrams
		fmt.Fprintf(stderr, "ofmprobe: hosts in flight at most %d (bound %d), memory limit %s, over it %s; UDP: %d sent, %d answers, %d strays, %d ICMP errors, %d send failures, %d pushbacks, %d kernel drops, receive buffer %d bytes\n",
			stats.PeakHosts, stats.HostLimit, formatSize(debug.SetMemoryLimit(-1)), times(int(stats.MemoryWaits)), d.Sent, d.Answers, d.Strays, d.ICMPErrors, d.SendFailures, d.Pushbacks, d.KernelDrops, d.ReceiveBuffer)
	}
	run.Finished = time.Now().UTC()
	run.Interrupted = interrupted.Load() || stats.Stopped
	if writeErr == nil {
		writeErr = w.End(run, sum)
	}
	if err := finish(writeErr == nil); writeErr == nil && err != nil {
		writeErr = err
	}
	switch {
	case writeErr != nil:
		return &exitError{code: exitFail, err: fmt.Errorf("write report: %w", writeErr)}
	case run.Interrupted:
		return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted: wrote the %d hosts finished so far", sum.Hosts)}
	case opts.baseline != "":
		regressed, err := compareBaseline(opts.baseline, base, baselineHosts, run, stderr)
		if err != nil {
			return &exitError{code: exitFail, err: fmt.Errorf("write the baseline comparison: %w", err)}
		}
		if regressed {
			return &exitError{code: exitFail}
		}
		return nil
	case !sum.AllPassed() || resumedFailing > 0:
		return &exitError{code: exitFail}
	}
	return nil
}

// jobShard turns --shard job/N into I/N, I being one more than the Kubernetes Indexed Job's JOB_COMPLETION_INDEX
// (which counts from 0); N must be the Job's completions. Any other value is returned as it is.
func jobShard(spec string, getenv func(string) string) (string, error) {
	n, ok := strings.CutPrefix(spec, "job/")
	if !ok {
		return spec, nil
	}
	idx := getenv("JOB_COMPLETION_INDEX")
	if idx == "" {
		return "", usageErrorf("--shard %s takes the shard from JOB_COMPLETION_INDEX (set in a Kubernetes Indexed Job's pods), which is not set", spec)
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 {
		return "", usageErrorf("--shard %s: JOB_COMPLETION_INDEX %q is not a whole number from 0", spec, idx)
	}
	return fmt.Sprintf("%d/%s", i+1, n), nil
}

// progressCountLimit bounds the walk that counts the targets for the progress line: past it (an IPv6 /64, say) the
// line shows hosts done and the rate without a total, rather than the scan waiting on the count.
const progressCountLimit = 1 << 22

// progressTotal is the progress line's total: n when the earlier bounded count was exact, else a count bounded by
// progressCountLimit, or -1 (no total) past it.
func progressTotal(set *targets.Set, n uint64) int64 {
	if n <= maxTargetsWithoutFlag {
		return int64(n)
	}
	if c := set.CountUpTo(progressCountLimit); c <= progressCountLimit {
		return int64(c)
	}
	return -1
}

// watchSignals stops the scanner on the first SIGINT or SIGTERM and aborts it on the second.
func watchSignals(ctx context.Context, s *engine.Engine, abort context.CancelFunc, stderr io.Writer, opts scanOptions) *atomic.Bool {
	var interrupted atomic.Bool
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		defer signal.Stop(sigs)
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		}
		interrupted.Store(true)
		wait := max(opts.timeout*time.Duration(opts.retries+1), opts.udpTimeout*time.Duration(opts.udpRetries+1)) + opts.timeout
		fmt.Fprintf(stderr, "ofmprobe: interrupted: finishing the hosts in flight (about %s); Ctrl-C again to stop now\n", wait)
		s.Stop()
		select {
		case <-sigs:
			fmt.Fprintln(stderr, "ofmprobe: stopping now")
			abort()
		case <-ctx.Done():
		}
	}()
	return &interrupted
}

// times words a count of events: "once", "twice", "3 times".
func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}

// openOutput returns where the report goes and a function that finishes it: for a file in a whole-document format, a
// temporary file renamed into place only when the report is complete; for ndjson, the file itself, written as hosts
// finish. A file whose name ends in ".gz" is written as a gzip stream; a resumed one gets a second stream appended,
// which gzip readers read as one.
func openOutput(opts scanOptions, stdout io.Writer) (io.Writer, func(ok bool) error, error) {
	if opts.output == "" || opts.output == "-" {
		return stdout, func(bool) error { return nil }, nil
	}
	w, finish, err := openOutputFile(opts)
	if err != nil || !report.IsCompressedName(opts.output) {
		return w, finish, err
	}
	zw := report.CompressWriter(w)
	return zw, func(ok bool) error {
		zerr := zw.Close()
		if zerr != nil {
			ok = false
		}
		if err := finish(ok); err != nil {
			return err
		}
		if zerr != nil {
			return fmt.Errorf("write output %s: %w", opts.output, zerr)
		}
		return nil
	}, nil
}

// openOutputFile opens the report file itself.
func openOutputFile(opts scanOptions) (io.Writer, func(ok bool) error, error) {
	if report.Formats[opts.format] {
		create := os.Create
		if opts.resume != "" {
			create = func(name string) (*os.File, error) {
				return os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			}
		}
		f, err := create(opts.output)
		if err != nil {
			return nil, nil, fmt.Errorf("create output: %w", err)
		}
		return f, func(bool) error { return f.Close() }, nil
	}
	f, err := report.CreateAtomic(opts.output)
	if err != nil {
		return nil, nil, err
	}
	return f, func(ok bool) error {
		if !ok {
			f.Abort()
			return nil
		}
		return f.Commit()
	}, nil
}

func selectProfiles(cat *catalog.Catalog, ids []string) ([]catalog.Profile, error) {
	if len(ids) == 0 {
		return cat.Profiles, nil
	}
	var out []catalog.Profile
	for _, id := range splitList(ids) {
		p, ok := cat.Profile(id)
		if !ok {
			return nil, usageErrorf("unknown profile %q (the catalog has %s)", id, strings.Join(cat.ProfileIDs(), ", "))
		}
		if !slices.ContainsFunc(out, func(q catalog.Profile) bool { return q.ID == id }) {
			out = append(out, p)
		}
	}
	return out, nil
}

// credentials builds the share check's logon from --user, --domain and the password from --password-file or
// OFMPROBE_PASSWORD. Without --user the check logs on as guest. Errors never quote the password or the file's content.
func credentials(opts scanOptions) (*smb.Credentials, error) {
	switch {
	case opts.maxAuthFailures < 1:
		return nil, usageErrorf("--max-auth-failures %d must be at least 1", opts.maxAuthFailures)
	case opts.readLog < 0 || opts.readLog > 10000:
		return nil, usageErrorf("--read-log %d must be from 0 to 10000", opts.readLog)
	case opts.user == "":
		if opts.passwordFile != "" || opts.domain != "" {
			return nil, usageErrorf("--password-file and --domain need --user")
		}
		return nil, nil
	}
	password := opts.password
	if opts.passwordFile != "" {
		b, err := os.ReadFile(opts.passwordFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, usageErrorf("password file %s: %v", opts.passwordFile, err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		password = strings.TrimSuffix(line, "\r")
	}
	if password == "" {
		return nil, usageErrorf("--user %s needs a password: --password-file FILE or OFMPROBE_PASSWORD", opts.user)
	}
	return smb.NewCredentials(opts.user, opts.domain, password, opts.maxAuthFailures), nil
}

// splitList flattens repeated and comma-separated flag values.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}

// parsePorts applies --ports to the catalog's TCP ports: a plain list (with ranges like 1-1024) replaces them, a list
// of +PORT entries adds to them.
func parsePorts(spec string, catalogPorts []int) ([]int, error) {
	if strings.TrimSpace(spec) == "" {
		return catalogPorts, nil
	}
	var ports []int
	adds, plain := 0, 0
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if strings.HasPrefix(item, "+") {
			adds++
			item = item[1:]
		} else {
			plain++
		}
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			hi = lo
		}
		a, errA := strconv.Atoi(lo)
		b, errB := strconv.Atoi(hi)
		if errA != nil || errB != nil || a < 1 || b > 65535 || b < a {
			return nil, usageErrorf("bad --ports entry %q: want a port or range within 1-65535", item)
		}
		for p := a; p <= b; p++ {
			ports = append(ports, p)
		}
	}
	if adds > 0 && plain > 0 {
		return nil, usageErrorf("bad --ports %q: either list the ports to probe, or +PORT entries to add, not both", spec)
	}
	if adds > 0 {
		ports = append(ports, catalogPorts...)
	}
	slices.Sort(ports)
	return slices.Compact(ports), nil
}

// parseTargets builds the target set from the arguments, the targets file and the exclusions.
func parseTargets(ctx context.Context, opts scanOptions, stdin io.Reader) (*targets.Set, error) {
	p := targets.Parser{Resolver: resolver}
	set := &targets.Set{}
	if err := p.Include(ctx, set, opts.targets...); err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	if opts.targetsFile != "" {
		if err := readTargetFile(ctx, &p, opts.targetsFile, stdin, p.Include, set); err != nil {
			return nil, err
		}
	}
	if set.Empty() {
		return nil, usageErrorf("no targets given (name them as arguments or with --targets-file)")
	}
	if err := p.Exclude(ctx, set, splitList(opts.exclude)...); err != nil {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("--exclude: %w", err)}
	}
	if opts.excludeFile != "" {
		if err := readTargetFile(ctx, &p, opts.excludeFile, stdin, p.Exclude, set); err != nil {
			return nil, err
		}
	}
	return set, nil
}

func readTargetFile(ctx context.Context, p *targets.Parser, path string, stdin io.Reader,
	add func(context.Context, *targets.Set, ...string) error, set *targets.Set) error {
	r, name := stdin, "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return usageErrorf("targets file %s: %v", path, err)
		}
		defer f.Close()
		r, name = f, path
	}
	if err := p.ReadFile(ctx, r, name, add, set); err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	return nil
}
