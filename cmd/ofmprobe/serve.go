package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/urfave/cli/v2"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/exporter"
)

// defaultListenAddress is the exporter's port: in the 9100-9999 range Prometheus keeps for exporters, and 445 for
// SMB, the one port every OFM version needs. docs/prometheus.md says why it is not on the allocation list yet.
const defaultListenAddress = ":9445"

// serveSocketShare is the part of the open-file limit the exporter's sweeps may take; the rest is for probes and
// HTTP connections.
const serveSocketShare = 2

type serveOptions struct {
	config        string
	listen        []string
	webConfig     string
	logLevel      string
	systemdSocket bool
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run as a Prometheus exporter: /probe?target=&module= probes one host per scrape, and sweeps run on a schedule",
		Description: "The configuration file (YAML, strict: an unknown key is an error) lists allowed_targets, the only\n" +
			"addresses and names ever probed, and the modules and sweeps; docs/prometheus.md documents it, the metrics,\n" +
			"the Prometheus configuration and the alert rules. SIGHUP or POST /-/reload reads it again; a bad file is\n" +
			"refused and the one in force stays.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "the exporter's configuration `FILE`", Required: true},
			&cli.StringSliceFlag{Name: "web.listen-address", Value: cli.NewStringSlice(defaultListenAddress), Usage: "listen on `ADDRESS` (repeatable)"},
			&cli.StringFlag{Name: "web.config.file", Usage: "TLS and basic auth from `FILE` (the Prometheus exporter-toolkit web configuration)"},
			&cli.BoolFlag{Name: "web.systemd-socket", Usage: "listen on the sockets systemd hands over instead"},
			&cli.StringFlag{Name: "log.level", Value: "info", Usage: "log `LEVEL`: debug, info, warn or error"},
		},
		Action: func(c *cli.Context) error {
			opts := serveOptions{config: c.String("config"), listen: c.StringSlice("web.listen-address"), webConfig: c.String("web.config.file"),
				logLevel: c.String("log.level"), systemdSocket: c.Bool("web.systemd-socket")}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, opts, nil, c.App.ErrWriter)
		},
	}
}

// parseLogLevel reads --log.level.
func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usageErrorf("--log.level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// runServe runs the exporter until ctx ends. With a listener (tests), it serves on that instead of the flags'
// addresses.
func runServe(ctx context.Context, opts serveOptions, l net.Listener, stderr io.Writer) error {
	level, err := parseLogLevel(opts.logLevel)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if opts.webConfig != "" {
		if err := web.Validate(opts.webConfig); err != nil {
			return usageErrorf("--web.config.file %s: %v", opts.webConfig, oneLine(err))
		}
	}
	limit, err := engine.RaiseFileLimit()
	if err != nil {
		logger.Warn("open-file limit", "err", err)
		limit = 1024
	}
	srv, err := exporter.New(exporter.Options{
		ConfigFile: opts.config, Version: version, Logger: logger, Resolver: resolver, Vantage: vantageAddresses(),
		SocketLimit: engine.SocketBudget(int(limit/serveSocketShare), limit),
	})
	if err != nil {
		return usageErrorf("%v", err)
	}
	srv.Start()
	defer srv.Stop()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				srv.Reload()
			case <-ctx.Done():
				return
			}
		}
	}()

	server := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	flags := &web.FlagConfig{WebListenAddresses: &opts.listen, WebSystemdSocket: &opts.systemdSocket, WebConfigFile: &opts.webConfig}
	errc := make(chan error, 1)
	go func() {
		if l != nil {
			errc <- web.Serve(l, server, flags, logger)
			return
		}
		errc <- web.ListenAndServe(server, flags, logger)
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %v", oneLine(err))
		}
		return nil
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	server.Shutdown(shut)
	return nil
}

// oneLine joins a multi-line error into one line.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
