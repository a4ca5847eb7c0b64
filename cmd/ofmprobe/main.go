// Command ofmprobe checks, for every host in a set of targets, whether Open File Manager's network paths work from
// where it runs: TCP and NetBIOS ports, SMB and the OFMLOG$ share. It grades each host against each OFM version's
// requirements and says what is blocked and how to fix it.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes, as the README documents them.
const (
	exitPass        = 0
	exitFail        = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// exitError carries an exit code out of a command; a nil err exits quietly.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is bad input: flags, targets, catalog files. It exits 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func main() {
	stopProfiles := startProfiles()
	code := run(os.Args, os.Stdin, os.Stdout, os.Stderr)
	stopProfiles()
	os.Exit(code)
}

// run runs the command line and returns the exit code. Every error is printed as one line on stderr.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.Run(hoistFlags(app, args))
	if err == nil {
		return exitPass
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "ofmprobe: %v\n", ee.err)
		}
		return ee.code
	}
	// Anything else comes from flag parsing in urfave/cli: bad usage.
	fmt.Fprintf(stderr, "ofmprobe: %v\n", err)
	return exitUsage
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "ofmprobe",
		Usage: "check that Open File Manager's network paths work, host by host",
		Description: "ofmprobe probes every target for what Open File Manager (OFM) needs: SMB on TCP 445 (or NetBIOS\n" +
			"session on 139), the OFMLOG$ share, and for OFM 9.0 and earlier the NetBIOS name, datagram and session\n" +
			"services. It grades each host against the ofm-9.0 and ofm-9.1 profiles, with the evidence and the fix\n" +
			"for every failed check.\n\n" +
			"Exit codes: 0 every host passes, 1 a host fails (or is unreachable, or could not be fully checked),\n" +
			"2 bad usage or input, 130 interrupted (results found so far are written).",
		Version:         version,
		HideVersion:     true,
		Reader:          stdin,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		// Errors are printed once, by run; urfave/cli must not exit on its own.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &exitError{code: exitUsage, err: err}
		},
		Commands: []*cli.Command{scanCommand(), serveCommand(), reportCommand(), diffCommand(), catalogCommand(), versionCommand()},
	}
	// Without an Action of its own, urfave/cli answers an unknown command with "No help topic for ...".
	app.Action = func(c *cli.Context) error {
		if c.Args().Len() == 0 {
			return cli.ShowAppHelp(c)
		}
		return usageErrorf("unknown command %q (want %s; ofmprobe --help lists them)", c.Args().First(), strings.Join(commandNames(app), ", "))
	}
	// A subcommand's bad flag must be one line on stderr too: by default urfave/cli prints the command's help, 4 KB
	// of it, to stdout, which corrupts "ofmprobe scan ... > report.ndjson".
	for _, cmd := range app.Commands {
		cmd.OnUsageError = app.OnUsageError
	}
	return app
}

// commandNames lists the app's visible commands.
func commandNames(app *cli.App) []string {
	var names []string
	for _, c := range app.Commands {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	return names
}

// hoistFlags moves a subcommand's flags that follow its arguments in front of them, so that
// "ofmprobe scan 198.18.0.0/24 --format json" works: urfave/cli v2 stops reading flags at the first argument. Nothing
// after "--" moves.
func hoistFlags(app *cli.App, args []string) []string {
	if len(args) < 3 {
		return args
	}
	cmd := app.Command(args[1])
	if cmd == nil {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, positional []string
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			positional = append(positional, rest[i:]...)
			break
		}
		name := strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(name, "=")
		value, known := takesValue[name]
		if !strings.HasPrefix(a, "-") || a == "-" || !known {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		if value && !hasValue && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	return append(out, positional...)
}
