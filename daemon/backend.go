package daemon

import (
	"context"
	"time"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/history"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/publish"
)

// The daemon is the httpapi.Backend, and what metrics read at scrape time.
// Each method takes only short locks: they are called by request goroutines
// while the pipeline runs.

// Config is the running config.
func (d *daemon) Config() *configs.Config { return d.config() }

// Cameras is the status of every running camera, in config order.
func (d *daemon) Cameras() []capture.Status { return d.cameras.statuses(d.config().Cameras) }

// FramesDropped is how many of the camera's sampled frames were not looked
// at: replaced by a newer one before the batcher took them (the usual
// case), or left unscored at shutdown.
func (d *daemon) FramesDropped(camera string) uint64 {
	n := d.latest.Dropped(camera)
	if d.batch != nil {
		n += d.batch.framesDropped(camera)
	}
	return n
}

// FramesScored is how many of the camera's frames the model scored.
func (d *daemon) FramesScored(camera string) uint64 {
	if d.batch == nil {
		return 0
	}
	return d.batch.framesScored(camera)
}

// FramesSkipped is how many of the camera's frames the change gate spared
// the model (they took the last scored frame's probabilities).
func (d *daemon) FramesSkipped(camera string) uint64 {
	if d.batch == nil {
		return 0
	}
	return d.batch.framesSkipped(camera)
}

// FramesFailed is how many of the camera's frames the model could not
// score: their batch failed (the remote backend's server down, mostly).
func (d *daemon) FramesFailed(camera string) uint64 {
	if d.batch == nil {
		return 0
	}
	return d.batch.framesFailed(camera)
}

// History is a camera × label's score history since a time.
func (d *daemon) History(camera, label string, since time.Time) history.Result {
	return d.history.Query(camera, label, since)
}

// StateFiles is the state folder's files and their failed writes.
func (d *daemon) StateFiles() []kit.StateFileStatus { return d.state.Status() }

// Sink is the sink's status.
func (d *daemon) Sink() publish.Status { return d.sink.Status() }

// Model describes the model in use.
func (d *daemon) Model() infer.Info { return d.model.Info() }

// serverStater is a Classifier that runs its towers somewhere that may be
// down: infer.Model.
type serverStater interface {
	Server() infer.ServerState
	Probe(ctx context.Context) error
}

// startProbe starts probeServer until ctx ends; shutdown waits for it.
func (d *daemon) startProbe(ctx context.Context) {
	d.probes.Add(1)
	go func() {
		defer d.probes.Done()
		d.probeServer(ctx, serverProbeInterval)
	}()
}

// probeServer asks the inference server every interval whether it is
// ready, until ctx ends, so that /readyz and the metrics follow a server
// that goes away or comes back while no frame is being scored.
func (d *daemon) probeServer(ctx context.Context, interval time.Duration) {
	s, ok := d.model.(serverStater)
	if !ok || d.Server().Backend != "remote" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, interval)
			_ = s.Probe(pctx) // the state is what counts; batches log failures
			cancel()
		}
	}
}

// Server is the inference server's state: always up for the local backend.
func (d *daemon) Server() infer.ServerState {
	if s, ok := d.model.(serverStater); ok {
		return s.Server()
	}
	return infer.ServerState{Backend: "local", Up: true, Since: d.started}
}
