// Package daemon wires siglipd's stages together and runs them:
//
//	capture ──frames──▶ infer ──scores──▶ rules ──events──▶ publish
//
// It is the only package that knows about all of them. Stages are started
// back to front (publish first) and stopped front to back: cancelling capture
// closes each stage's input in turn, so the last event is still published.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
)

// ShutdownTimeout bounds how long a stop may take after SIGTERM before Run
// gives up on draining and returns.
const ShutdownTimeout = 5 * time.Second

// Options are the run-time settings that do not come from the config file.
type Options struct {
	ConfigPath string
	Logger     *slog.Logger
	ORTLib     infer.LibraryChoice
}

// Run runs the daemon until ctx is cancelled, then stops every stage within
// ShutdownTimeout. It returns nil on a clean stop and an error that names the
// failing part (model file, camera, broker) when it cannot start.
func Run(ctx context.Context, cfg *configs.Config, opts Options) error {
	log := opts.Logger
	log.Info("starting siglipd", "version", VersionString(), "config", opts.ConfigPath,
		"cameras", len(cfg.Cameras), "model", cfg.Model.Path)

	if _, err := infer.FindModelFiles(cfg.Model.Path, configs.Variants[cfg.Model.Variant]); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	lib, err := infer.LoadRuntime(opts.ORTLib)
	if err != nil {
		return err
	}
	log.Info("ONNX Runtime loaded", "library", lib, "version", infer.RuntimeVersion())

	<-ctx.Done()
	log.Info("stopping siglipd")
	return nil
}
