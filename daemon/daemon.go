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

	model, err := infer.Open(infer.Options{
		Dir:               cfg.Model.Path,
		Suffix:            configs.Variants[cfg.Model.Variant],
		Device:            cfg.Inference.Device,
		Threads:           cfg.Inference.Threads,
		GraphOptimization: cfg.Inference.GraphOptimization,
		Template:          cfg.Model.Template,
		LogitScale:        cfg.Model.LogitScale,
		LogitBias:         cfg.Model.LogitBias,
		Resize:            cfg.Model.Resize,
		Library:           opts.ORTLib,
		Logger:            log,
	})
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	defer model.Close()
	info := model.Info()
	log.Info("model loaded", "model", info.Dir, "device", info.Device, "input", fmt.Sprintf("%dx%d", info.ImageWidth, info.ImageHeight),
		"onnxruntime", infer.RuntimeVersion(), "library", info.Library)

	log.Info("siglipd running")
	<-ctx.Done()
	log.Info("stopping siglipd")
	return nil
}
