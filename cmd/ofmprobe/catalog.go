package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/report"
)

func catalogCommand() *cli.Command {
	return &cli.Command{
		Name:  "catalog",
		Usage: "list the ports OFM uses and the requirements of each OFM profile",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "table", Usage: "table or json"},
			&cli.StringFlag{Name: "catalog", Usage: "a custom catalog `FILE` to validate and list instead of the built-in one"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("catalog takes no arguments, got %q", c.Args().First())
			}
			cat, err := loadCatalog(c.String("catalog"))
			if err != nil {
				return err
			}
			return runCatalog(cat, c.String("format"), c.App.Writer)
		},
	}
}

// loadCatalog returns the built-in catalog, or the custom one at path.
func loadCatalog(path string) (*catalog.Catalog, error) {
	if path == "" {
		return catalog.Builtin(), nil
	}
	cat, err := catalog.Load(path)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return cat, nil
}

func runCatalog(cat *catalog.Catalog, format string, w io.Writer) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // as the reports: the texts read as written
		enc.SetIndent("", "  ")
		return enc.Encode(cat)
	case "table":
	default:
		return usageErrorf("unknown catalog format %q (want table or json)", format)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tPROTOCOL\tSERVICE\tWINDOWS SERVICES")
	for _, p := range cat.Ports {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", p.Port, p.Protocol, p.Service, p.Windows)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, prof := range cat.Profiles {
		fmt.Fprintf(w, "\n%s: %s\n", prof.ID, prof.Title)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "REQUIREMENT\tSEVERITY\tCHECKS\tTITLE")
		for _, r := range prof.Requirements {
			checks := make([]string, len(r.Checks))
			for i, ch := range r.Checks {
				checks[i] = ch.String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Severity, strings.Join(checks, map[catalog.Match]string{catalog.MatchAny: " or ", catalog.MatchAll: " and "}[r.Match]), r.Title)
			// Why and fix go under the title, in the same column block, so the table stays aligned.
			for _, text := range [][2]string{{"why: ", r.Why}, {"fix: ", r.Fix}} {
				for i, line := range report.Wrap(text[1], catalogTextWidth) {
					lead := "     "
					if i == 0 {
						lead = text[0]
					}
					fmt.Fprintf(tw, "\t\t\t  %s%s\n", lead, line)
				}
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// catalogTextWidth is where the catalog table wraps a requirement's why and fix.
const catalogTextWidth = 60
