package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ofmprobe/ofmprobe/report"
)

// diffOptions is what the diff command was asked to do.
type diffOptions struct {
	oldPath, newPath string
	format           string
}

func diffCommand() *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "compare two reports: grades that got worse or better, port and NetBIOS states that changed",
		ArgsUsage: "OLD NEW",
		Description: "OLD and NEW are reports written by `ofmprobe scan --format json` or `--format ndjson` (- reads one\n" +
			"from stdin). Hosts are matched by address. A grade that got worse, or a host (or a profile's grading)\n" +
			"that OLD has and NEW lacks, is a regression; fixed grades, new hosts and port and NetBIOS state changes\n" +
			"are listed too.\n\n" +
			"Exit codes: 0 nothing regressed, 1 something regressed, 2 bad usage or a file that is not a report.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "`FORMAT` of the comparison: table or json"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageErrorf("diff needs two reports, OLD and NEW (got %d arguments)", c.NArg())
			}
			opts := diffOptions{oldPath: c.Args().Get(0), newPath: c.Args().Get(1), format: c.String("format")}
			return runDiff(opts, c.App.Reader, c.App.Writer)
		},
	}
}

// runDiff compares two reports and writes the changes; it returns an exit status of 1 when something regressed.
func runDiff(opts diffOptions, stdin io.Reader, stdout io.Writer) error {
	if opts.format != "table" && opts.format != "json" {
		return usageErrorf("unknown diff format %q (want table or json)", opts.format)
	}
	if opts.oldPath == "-" && opts.newPath == "-" {
		return usageErrorf("only one of OLD and NEW can be read from stdin")
	}
	oldDoc, err := readReport(opts.oldPath, stdin)
	if err != nil {
		return err
	}
	newDoc, err := readReport(opts.newPath, stdin)
	if err != nil {
		return err
	}
	c := report.Compare(opts.oldPath, oldDoc, opts.newPath, newDoc)
	if opts.format == "json" {
		err = c.WriteJSON(stdout)
	} else {
		err = c.WriteTable(stdout)
	}
	switch {
	case err != nil:
		return &exitError{code: exitFail, err: fmt.Errorf("write comparison: %w", err)}
	case c.Regressed:
		return &exitError{code: exitFail}
	}
	return nil
}

// readReport reads a JSON or NDJSON report from a file, or from stdin for "-". Every failure is bad input: one line,
// exit 2.
func readReport(path string, stdin io.Reader) (report.Document, error) {
	var doc report.Document
	var err error
	if path == "-" {
		doc, err = report.Read(stdin, "stdin")
	} else {
		doc, err = report.ReadFile(path)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return doc, usageErrorf("read %s: %v", path, pe.Err)
		}
		return doc, usageErrorf("%v", err)
	}
	return doc, nil
}
