package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/ofmprobe/ofmprobe/report"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of ofmprobe and of its report schema",
		Action: func(c *cli.Context) error {
			commit := "unknown"
			if info, ok := debug.ReadBuildInfo(); ok {
				for _, s := range info.Settings {
					if s.Key == "vcs.revision" {
						commit = s.Value
					}
				}
			}
			_, err := fmt.Fprintf(c.App.Writer, "ofmprobe %s (commit %s, %s, report schema %d)\n", version, commit, runtime.Version(), report.SchemaVersion)
			return err
		},
	}
}
