package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
)

// Exit codes, stable for scripts and systemd.
const (
	ExitOK      = 0
	ExitFailure = 1 // the daemon started but could not run (no model, ...)
	ExitUsage   = 2 // bad flags or an invalid config file
)

// Version is set at build time: -ldflags "-X github.com/siglipd/siglipd/daemon.Version=v1.2.3".
var Version = ""

// VersionString is Version, or the VCS revision the binary was built from.
func VersionString() string {
	if Version != "" {
		return Version
	}
	v := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	return v
}

// mallocTuned records whether capture.TuneMalloc changed glibc's malloc
// (logged at start).
var mallocTuned bool

// subcommands beside the default "run the daemon".
var subcommands = map[string]func(args []string, stdout, stderr io.Writer) int{}

// Main is siglipd's command line; it returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	// First thing, before any thread of OpenCV or FFmpeg allocates: glibc's
	// per-thread malloc arenas otherwise keep freed frames (capture.TuneMalloc).
	mallocTuned = capture.TuneMalloc()
	quietOpenCV()
	if len(args) > 0 {
		if cmd, ok := subcommands[args[0]]; ok {
			return cmd(args[1:], stdout, stderr)
		}
	}
	fs := pflag.NewFlagSet("siglipd", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, below, in our words
	var (
		configPath  = fs.StringP("config", "c", "", "configuration file (YAML)")
		check       = fs.Bool("check", false, "validate the config, print it resolved with secrets redacted, and exit (0 valid, 2 invalid)")
		showVersion = fs.Bool("version", false, "print the version and exit")
		logLevel    = fs.String("log-level", "info", "log level: debug, info, warn or error")
		logFormat   = fs.String("log-format", "text", "log format: text or json")
		ortLib      = fs.String("ort-lib", "", "path of libonnxruntime.so (else $SIGLIPD_ORT_LIB, inference.ort_lib, the install location, the system path)")
		watch       = fs.Duration("watch-config", DefaultWatchInterval, "reload when the config file changes, checked this often (0: only on SIGHUP)")
		help        = fs.BoolP("help", "h", false, "show this help")
	)
	usage := func(w io.Writer) {
		fmt.Fprintf(w, `siglipd — zero-shot camera classifier (SigLIP) publishing MQTT events

Usage:
  siglipd --config FILE            run the daemon
  siglipd --config FILE --check    validate and print the resolved config
  siglipd classify --model DIR --label L [--label L]... IMAGE...
  siglipd bench --model DIR [--batch N]...

Flags:
%s`, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "siglipd: %v (see siglipd --help)\n", err)
		return ExitUsage
	}
	switch {
	case *help:
		usage(stdout)
		return ExitOK
	case *showVersion:
		fmt.Fprintf(stdout, "siglipd %s\n", VersionString())
		return ExitOK
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "siglipd: unexpected argument %q (see siglipd --help)\n", fs.Arg(0))
		return ExitUsage
	case *configPath == "":
		fmt.Fprintln(stderr, "siglipd: --config FILE is required (see siglipd --help)")
		return ExitUsage
	case *watch < 0:
		fmt.Fprintf(stderr, "siglipd: --watch-config must be 0 (reload on SIGHUP only) or more, got %s\n", *watch)
		return ExitUsage
	}
	logger, err := NewLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "siglipd: %v\n", err)
		return ExitUsage
	}

	cfg, err := configs.Load(*configPath)
	if err != nil {
		var errs configs.Errors
		if errors.As(err, &errs) {
			fmt.Fprintf(stderr, "siglipd: %s: %d problem(s):\n%v\n", *configPath, len(errs), err)
		} else {
			fmt.Fprintf(stderr, "siglipd: %v\n", err)
		}
		return ExitUsage
	}
	for _, w := range cfg.Warnings() {
		if *check {
			fmt.Fprintf(stderr, "siglipd: warning: %v\n", w)
		} else {
			logger.Warn("config: "+w.Msg, "at", fmt.Sprintf("%s:%d", w.File, w.Line), "key", w.Path)
		}
	}
	lib := infer.LibraryChoice{Flag: *ortLib, Env: os.Getenv("SIGLIPD_ORT_LIB"), Config: cfg.Inference.ORTLib}
	if *check {
		if errs := checkOffline(cfg, lib); len(errs) > 0 {
			fmt.Fprintf(stderr, "siglipd: %s: %d problem(s):\n%v\n", *configPath, len(errs), errs)
			return ExitUsage
		}
		fmt.Fprintf(stdout, "# %s is valid; resolved configuration (secrets redacted):\n", *configPath)
		enc := yaml.NewEncoder(stdout)
		enc.SetIndent(2)
		if err := enc.Encode(cfg); err != nil {
			fmt.Fprintf(stderr, "siglipd: %v\n", err)
			return ExitFailure
		}
		return ExitOK
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, restore the default handling: a second
		// one kills at once while the first is still draining.
		<-ctx.Done()
		stop()
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}()
	err = Run(ctx, cfg, Options{
		ConfigPath:    *configPath,
		Logger:        logger,
		ORTLib:        lib,
		Reload:        reload,
		WatchInterval: *watch,
	})
	if err != nil {
		logger.Error("siglipd failed", "err", err)
		return ExitFailure
	}
	return ExitOK
}

// NewLogger builds the process logger from --log-level and --log-format.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
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
