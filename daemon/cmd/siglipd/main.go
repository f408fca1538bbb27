// Command siglipd is the zero-shot camera classifier daemon; see the README,
// and docs/01-configuration.md for the command line users see.
//
// This is the command line only: flags, subcommands and exit codes. The
// daemon itself is package daemon; classify and bench use infer directly.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon"
	"github.com/siglipd/siglipd/infer"
)

// Exit codes, stable for scripts and systemd.
const (
	exitOK      = 0
	exitFailure = 1 // the daemon started but could not run (no model, ...)
	exitUsage   = 2 // bad flags or an invalid config file
)

func main() {
	os.Exit(siglipd(os.Args[1:], os.Stdout, os.Stderr))
}

// siglipd is the whole command line; it returns the process exit code.
func siglipd(args []string, stdout, stderr io.Writer) int {
	// First thing, before any thread of OpenCV or FFmpeg allocates: glibc's
	// per-thread malloc arenas otherwise keep freed frames (capture.TuneMalloc).
	capture.TuneMalloc()
	capture.QuietOpenCV()
	if len(args) > 0 {
		switch args[0] {
		case "classify":
			return classifyMain(args[1:], stdout, stderr)
		case "bench":
			return benchMain(args[1:], stdout, stderr)
		case "pull":
			return pullMain(args[1:], stdout, stderr)
		case "healthcheck":
			return healthcheckMain(args[1:], stdout, stderr)
		case "search":
			return searchMain(args[1:], stdout, stderr)
		case "devices":
			return devicesMain(args[1:], stdout, stderr)
		}
	}
	return runMain(args, stdout, stderr)
}

// runFlags are the flags of `siglipd --config FILE`.
type runFlags struct {
	config, logLevel, logFormat, ortLib string
	check, version, help                bool
	watch                               time.Duration
}

// runMain is `siglipd --config FILE`: check the config, or run the daemon.
func runMain(args []string, stdout, stderr io.Writer) int {
	f, code, done := parseRunFlags(args, stdout, stderr)
	if done {
		return code
	}
	logger, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "siglipd: %v\n", err)
		return exitUsage
	}
	cfg, err := configs.Load(f.config)
	if err != nil {
		var errs configs.Errors
		if errors.As(err, &errs) {
			fmt.Fprintf(stderr, "siglipd: %s: %d problem(s):\n%v\n", f.config, len(errs), err)
		} else {
			fmt.Fprintf(stderr, "siglipd: %v\n", err)
		}
		return exitUsage
	}
	lib := infer.LibraryChoice{Flag: f.ortLib, Env: os.Getenv("SIGLIPD_ORT_LIB"), Config: cfg.Inference.ORTLib}
	if f.check {
		return checkMain(f.config, cfg, lib, stdout, stderr)
	}
	for _, w := range cfg.Warnings() {
		logger.Warn("config: "+w.Msg, "at", fmt.Sprintf("%s:%d", w.File, w.Line), "key", w.Path)
	}
	ctx, reload, stop := signals()
	defer stop()
	err = daemon.Run(ctx, cfg, daemon.Options{
		ConfigPath: f.config, Logger: logger, ORTLib: lib, Reload: reload, WatchInterval: f.watch, Stdout: stdout,
	})
	if err != nil {
		logger.Error("siglipd failed", "err", err)
		return exitFailure
	}
	return exitOK
}

// parseRunFlags parses the flags; done means the command line has been
// answered (help, version, a usage error) with the exit code given.
func parseRunFlags(args []string, stdout, stderr io.Writer) (f runFlags, code int, done bool) {
	fs := pflag.NewFlagSet("siglipd", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, below, in our words
	fs.StringVarP(&f.config, "config", "c", "", "configuration file (YAML)")
	fs.BoolVar(&f.check, "check", false, "validate the config, print it resolved with secrets redacted, and exit (0 valid, 2 invalid)")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.ortLib, "ort-lib", "", "path of libonnxruntime.so (else $SIGLIPD_ORT_LIB, inference.ort_lib, the install location, the system path)")
	fs.DurationVar(&f.watch, "watch-config", daemon.DefaultWatchInterval, "reload when the config file changes, checked this often (0: only on SIGHUP)")
	fs.BoolVarP(&f.help, "help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "siglipd: %v (see siglipd --help)\n", err)
		return f, exitUsage, true
	}
	switch {
	case f.help:
		fmt.Fprintf(stdout, `siglipd — zero-shot camera classifier (SigLIP) publishing MQTT events

Usage:
  siglipd --config FILE            run the daemon
  siglipd --config FILE --check    validate and print the resolved config
  siglipd classify --model DIR --label L [--label L]... IMAGE...
  siglipd bench --model DIR [--batch N]...
  siglipd pull MODEL_ID [--revision R] [--variant V]
  siglipd healthcheck --config FILE [--ready]
  siglipd search --config FILE [--since 24h] [--camera NAME] TEXT...
  siglipd devices                  list USB / V4L2 cameras, with cameras: entries

Flags:
%s`, fs.FlagUsages())
		return f, exitOK, true
	case f.version:
		fmt.Fprintf(stdout, "siglipd %s\n", daemon.VersionString())
		return f, exitOK, true
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "siglipd: unexpected argument %q (see siglipd --help)\n", fs.Arg(0))
		return f, exitUsage, true
	case f.config == "":
		fmt.Fprintln(stderr, "siglipd: --config FILE is required (see siglipd --help)")
		return f, exitUsage, true
	case f.watch < 0:
		fmt.Fprintf(stderr, "siglipd: --watch-config must be 0 (reload on SIGHUP only) or more, got %s\n", f.watch)
		return f, exitUsage, true
	}
	return f, 0, false
}

// checkMain is --check: what the daemon would refuse at start, found
// without starting it; else the resolved config, secrets redacted.
func checkMain(path string, cfg *configs.Config, lib infer.LibraryChoice, stdout, stderr io.Writer) int {
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "siglipd: warning: %v\n", w)
	}
	errs, notes := daemon.Check(cfg, lib, os.Getenv)
	for _, n := range notes {
		fmt.Fprintf(stderr, "siglipd: note: %s\n", n)
	}
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "siglipd: %s: %d problem(s):\n%v\n", path, len(errs), errs)
		return exitUsage
	}
	fmt.Fprintf(stdout, "# %s is valid; resolved configuration (secrets redacted):\n", path)
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		fmt.Fprintf(stderr, "siglipd: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// signals turns SIGINT and SIGTERM into ctx's cancellation and SIGHUP into
// reload requests (one pending at most). After the first SIGINT or SIGTERM
// the default handling is back: a second one kills at once while the first
// is still draining. stop releases the signals and waits for the two
// goroutines signals started.
func signals() (ctx context.Context, reload <-chan struct{}, stop func()) {
	ctx, stopNotify := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		stopNotify()
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reloads := make(chan struct{}, 1)
	go func() {
		defer wg.Done()
		for range hup {
			select {
			case reloads <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}()
	return ctx, reloads, func() {
		stopNotify()
		signal.Stop(hup) // no delivery to hup after it returns
		close(hup)
		wg.Wait()
	}
}

// newLogger builds the process logger from --log-level and --log-format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: want debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, got %q", format)
}
