package main

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ofmprobe/ofmprobe/report"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "write an existing report again, in any format, with its root causes",
		ArgsUsage: "FILE",
		Description: "FILE is a report written by `ofmprobe scan --format json` or `--format ndjson` (- reads it from\n" +
			"stdin; NDJSON streams of several shards may be joined). The hosts are written again in FORMAT, and the\n" +
			"summary and its causes (the failing requirements of all hosts grouped by root cause, the most hosts\n" +
			"first, each with its fix) are counted anew from them.\n\n" +
			"Exit codes: 0 every host passes, 1 a host does not, 2 bad usage or a file that is not a report.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "`FORMAT`: " + strings.Join(report.FormatNames(), ", ")},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` instead of stdout"},
			&cli.BoolFlag{Name: "all", Usage: "table: list every host and every cause"},
			&cli.StringSliceFlag{Name: "netstat", Usage: netstatUsage},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("report needs one report FILE (got %d arguments)", c.NArg())
			}
			return runReport(c.Args().First(), c.String("format"), c.String("output"), c.Bool("all"), c.StringSlice("netstat"), c.App.Reader, c.App.Writer)
		},
	}
}

// runReport reads a report and writes it again in format, its summary and causes counted from its hosts.
func runReport(path, format, output string, all bool, netstatFiles []string, stdin io.Reader, stdout io.Writer) error {
	if !slices.Contains(report.FormatNames(), format) {
		return usageErrorf("unknown format %q (want %s)", format, strings.Join(report.FormatNames(), ", "))
	}
	netstats, err := readNetstats(netstatFiles)
	if err != nil {
		return err
	}
	run, hosts, hostsErr, err := reportHosts(path, stdin)
	if err != nil {
		return err
	}
	opts := scanOptions{format: format, output: output}
	out, finish, err := openOutput(opts, stdout)
	if err != nil {
		return usageErrorf("%v", err)
	}
	ropts := reportOptions(stdout, isTerminal(stdout) && (output == "" || output == "-"))
	ropts.All = all
	w, err := report.NewWithOptions(format, out, ropts)
	if err != nil {
		finish(false)
		return usageErrorf("%v", err)
	}
	var sum report.Summary
	werr := w.Begin(run)
	for h := range hosts {
		if werr != nil {
			break
		}
		if t, ok := netstatFor(netstats, h.Address); ok {
			h.ExplainNetstat(t, run.Vantage, run.PortTable)
		}
		sum.Add(h)
		werr = w.Host(h)
	}
	if werr == nil {
		if werr = hostsErr(); werr != nil {
			finish(false)
			return usageErrorf("%v", werr)
		}
		werr = w.End(run, sum)
	}
	if ferr := finish(werr == nil); werr == nil {
		werr = ferr
	}
	if werr != nil {
		return &exitError{code: exitFail, err: fmt.Errorf("write report: %w", werr)}
	}
	if !sum.AllPassed() {
		return &exitError{code: exitFail}
	}
	return nil
}

// reportHosts reads a report's run and its hosts. An NDJSON file is read line by line, twice (to find each host's
// last record, then to yield them), so a /16's report never sits in memory; a JSON document and stdin are read whole.
// hostsErr reports what stopped the hosts early, after they ran.
func reportHosts(path string, stdin io.Reader) (run report.Run, hosts iter.Seq[report.HostRecord], hostsErr func() error, err error) {
	if path != "-" && report.IsNDJSONFile(path) {
		f, err := report.OpenNDJSON(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return report.Run{}, nil, nil, usageErrorf("read %s: %v", path, pe.Err)
			}
			return report.Run{}, nil, nil, usageErrorf("%v", err)
		}
		return f.Run, f.Hosts(), f.Err, nil
	}
	doc, err := readReport(path, stdin)
	if err != nil {
		return report.Run{}, nil, nil, err
	}
	return doc.Run, slices.Values(doc.Hosts), func() error { return nil }, nil
}
