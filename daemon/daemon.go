// Package daemon wires siglipd's stages together and runs them:
//
//	capture ──frames──▶ batcher ──scored──▶ rules loop ──events──▶ publish
//	(a Source per       (all cameras,      (owns the rules       (MQTT or stdout;
//	 camera, into a      one vision-tower   Machine; every        never blocks)
//	 latest-frame        run per batch)     event through
//	 hand-off)                              one emitter)
//
// It is the only package that knows about all of them. Run starts the stages
// back to front (publish first, capture last) and stops them front to back:
// cancelling capture lets the batcher score the last frames and close its
// output, the rules loop drain it and end the events still open, and publish
// send those last events and "offline".
//
// One goroutine, the change loop (changes.go), owns the running config:
// reloads (SIGHUP, or a change of the file) and calibration from the page
// come to it as requests, are planned by diff (plan.go), a pure function,
// and carried out by apply without stopping cameras whose settings did not
// change. The pipeline (batcher, rules loop, emitter) knows nothing of HTTP:
// what the page shows of each camera is a live.Board the rules loop writes,
// and package httpapi reads the daemon through interfaces of its own and
// maps the daemon's errors to status codes. The command line is
// daemon/cmd/siglipd.
//
// Time: every duration is measured on a monotonic timeline and users are
// shown wall-clock times that follow the system clock's jumps (clock.go).
//
// Files: daemon.go (Run, shutdown), clock.go, model.go, cameras.go, batcher.go,
// rulesloop.go, emit.go and journal.go (the event path), plan.go and
// changes.go (the change loop), calibration.go, backend.go and metrics.go
// (what HTTP and Prometheus read), gate.go (the change gate that spares the
// model unchanged frames), historyfile.go, frames.go (what the frame store
// keeps, and search), check.go (--check).
package daemon

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/calibrate"
	"github.com/siglipd/siglipd/daemon/framestore"
	"github.com/siglipd/siglipd/daemon/history"
	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/daemon/live"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/publish"
	"gocv.io/x/gocv"
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

// serverProbeInterval is how often the remote backend's server is asked
// whether it is ready, besides the batches' own calls.
const serverProbeInterval = 5 * time.Second

// ShutdownTimeout bounds how long a stop may take after SIGTERM.
const ShutdownTimeout = 5 * time.Second

// Options are the run-time settings that do not come from the config file.
type Options struct {
	ConfigPath string
	Logger     *slog.Logger
	ORTLib     infer.LibraryChoice
	// Reload receives a value to re-read the config (SIGHUP); nil disables.
	Reload <-chan struct{}
	// WatchInterval, when positive, also reloads when the config file's
	// contents change (polled, so it works on bind mounts and editors that
	// replace the file).
	WatchInterval time.Duration
	// Stdout is where the stdout sink writes (default os.Stdout).
	Stdout io.Writer
}

// hooks let tests in this package into Run; Run passes none.
type hooks struct {
	classifier classifier      // used instead of opening cfg.Model; not closed
	ready      chan<- struct{} // closed once running
	httpAddr   chan<- string   // receives the HTTP server's address
	// encodeJPEG replaces the live page's JPEG encoder.
	encodeJPEG func(gocv.Mat) ([]byte, error)
	// started is given the daemon once it runs (for a look inside after
	// Run has returned).
	started func(*daemon)
	// historySaveEvery replaces historySaveEvery when positive.
	historySaveEvery time.Duration
	// wallClock replaces the system's wall clock: it gives the wall time
	// at a time.Now() reading, so a test can step it while the monotonic
	// clock runs on (clock.go).
	wallClock func(now time.Time) time.Time
}

// daemon is one running siglipd: the stages Run started, for shutdown,
// reloads and the status endpoints.
type daemon struct {
	log     *slog.Logger
	opts    Options
	started time.Time
	clock   *clock // steady time for durations, wall time for users

	model   classifier
	sets    *scoring
	latest  *capture.Latest
	cameras *cameraSet
	batch   *batcher
	rules   *rulesLoop
	sink    publish.Sink
	metrics *metrics
	live    *live.Board
	history *history.Store
	frames  *framestore.Store // nil when store.enabled is false or its folder cannot be made
	state   *kit.StateFiles   // the writes of the state folder's files
	http    *httpapi.Server   // nil when http.listen is ""
	probes  sync.WaitGroup    // the inference server's probe

	calib *calibrate.Store // nil when the state folder's calibration cannot be opened; written by the change loop
	added []AddedLabel     // labels added on the page (added.go); written by the change loop under mu
	promptCache

	changes     chan changeRequest // to the change loop (changes.go)
	changesDone chan struct{}      // closed when the change loop has ended

	// The change loop writes fileCfg and cfg; anyone may read them under mu.
	mu      sync.Mutex
	fileCfg *configs.Config // the config as the file says
	cfg     *configs.Config // the running config: fileCfg with applied calibration, restart-only sections as started
}

// Run runs the daemon until ctx is cancelled, then stops every stage within
// ShutdownTimeout. It returns nil on a clean stop and an error that names the
// failing part (model file, camera, broker option) when it cannot start.
func Run(ctx context.Context, cfg *configs.Config, opts Options) error {
	return run(ctx, cfg, opts, hooks{})
}

func run(ctx context.Context, cfg *configs.Config, opts Options, h hooks) error {
	d := newDaemon(cfg, opts, h.encodeJPEG, h.wallClock)
	d.openCalibration(cfg)
	d.openAddedLabels(cfg)
	cfg = d.effective(cfg) // labels added on the page, thresholds applied from marked frames
	d.cfg = cfg
	d.log.Info("starting siglipd", "version", VersionString(), "config", opts.ConfigPath,
		"cameras", len(cfg.Cameras), "model", cfg.Model.Path, "malloc_tuned", capture.MallocTuned())
	closeModel, err := d.openModel(ctx, cfg, h.classifier) // first: without it nothing is worth starting
	if err != nil {
		if ctx.Err() != nil {
			d.log.Info("stopped while preparing the model")
			return nil
		}
		return err
	}
	defer closeModel()
	d.frames = d.openFrames(cfg)
	// Back to front: publish, the event path, the batcher, HTTP, capture.
	if err := d.startSink(ctx, cfg); err != nil {
		if d.frames != nil {
			d.frames.Close()
		}
		return err
	}
	stopHistory := d.startHistory(cfg, cmp.Or(h.historySaveEvery, historySaveEvery))
	defer stopHistory()
	d.rules = d.startRules(cfg)
	d.batch = d.startBatcher(cfg)
	if err := d.startHTTP(cfg, h.httpAddr); err != nil {
		close(d.changesDone)
		d.shutdown()
		return err
	}
	if err := d.cameras.startAll(cfg.Cameras); err != nil {
		close(d.changesDone)
		d.shutdown()
		return err
	}
	d.startProbe(ctx)
	d.log.Info("siglipd running", "cameras", len(cfg.Cameras), "sink", cfg.Sink, "http", cfg.HTTP.Listen)
	if h.started != nil {
		h.started(d)
	}
	if h.ready != nil {
		close(h.ready)
	}
	d.serveChanges(ctx)
	close(d.changesDone) // from here on a change is refused
	d.log.Info("stopping siglipd")
	d.shutdown()
	return nil
}

func newDaemon(cfg *configs.Config, opts Options, encodeJPEG func(gocv.Mat) ([]byte, error), wallClock func(time.Time) time.Time) *daemon {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	latest := capture.NewLatest()
	d := &daemon{
		log: opts.Logger, opts: opts, cfg: cfg, fileCfg: cfg, started: time.Now(), clock: newClock(wallClock),
		sets: newScoring(), latest: latest,
		cameras: newCameraSet(latest, opts.Logger), live: live.New(encodeJPEG), history: history.New(history.Options{}),
		state:       kit.NewStateFiles(opts.Logger),
		promptCache: promptCache{promptSets: map[string]*infer.LabelSet{}},
		changes:     make(chan changeRequest), changesDone: make(chan struct{}),
	}
	d.metrics = newMetrics(d)
	return d
}

// startSink creates the sink, connects it (in the background: a broker
// that is away is not a start-up error) and tells it the cameras.
func (d *daemon) startSink(ctx context.Context, cfg *configs.Config) error {
	sink, err := newSink(cfg, d.opts, d.state, d.log)
	if err != nil {
		return err // publish's errors start with "mqtt: "
	}
	if err := sink.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	sink.Announce(publishCameras(cfg))
	d.sink = sink
	return nil
}

func (d *daemon) startHTTP(cfg *configs.Config, addr chan<- string) error {
	if cfg.HTTP.Listen == "" {
		return nil
	}
	opts := httpapi.Options{
		Listen: cfg.HTTP.Listen, Token: cfg.HTTP.Token.Reveal(), AllowedHosts: cfg.HTTP.AllowedHosts,
		Version: VersionString(), Started: d.started, Now: d.clock.wallNow, Metrics: d.metrics.handler(),
		Backend: d, Calibrator: d, Live: d.live, Logger: d.log,
	}
	if d.frames != nil {
		opts.Frames = framesAPI{d}
	}
	opts.Labels = labelsAPI{d}
	srv, err := httpapi.Start(opts)
	if err != nil {
		return err
	}
	d.http = srv
	if addr != nil {
		addr <- srv.Addr()
	}
	return nil
}

// shutdown stops what Run started within ShutdownTimeout. First what
// reaches in from outside: HTTP (no request can start a change or read a
// stage that is going away) and the server probe, each waited for. Then the
// stages, front to back: capture, then the batcher scores what is pending
// and the rules loop ends the open events, then publish sends the last
// events and "offline". The change loop has already ended (Run returns from
// it first), so no change can reach a stage that has stopped.
func (d *daemon) shutdown() {
	deadline := time.Now().Add(ShutdownTimeout)
	if d.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		d.http.Close(ctx)
		cancel()
	}
	d.probes.Wait() // cancelled with Run's context
	d.cameras.stopAll()
	if d.batch != nil {
		// A last batch only if it fits, leaving publish at least 1.5 s.
		d.batch.stop(deadline.Add(-1500 * time.Millisecond))
	}
	if d.rules != nil {
		<-d.rules.done
	}
	if d.frames != nil {
		d.frames.Close() // after the rules loop, its only writer
	}
	d.latest.Close()
	if d.sink != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(-500*time.Millisecond))
		if err := d.sink.Close(ctx); err != nil {
			d.log.Warn("publishing stopped with undelivered messages kept for the next start", "err", err)
		}
		cancel()
	}
	d.live.Close()
	d.log.Info("siglipd stopped", "took", time.Since(deadline.Add(-ShutdownTimeout)).Round(time.Millisecond))
}

// config is the running config.
func (d *daemon) config() *configs.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// fileConfig is the config as the file says (the last one loaded).
func (d *daemon) fileConfig() *configs.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fileCfg
}

func newSink(cfg *configs.Config, opts Options, state *kit.StateFiles, log *slog.Logger) (publish.Sink, error) {
	if cfg.Sink == "stdout" {
		var w io.Writer = os.Stdout
		if opts.Stdout != nil {
			w = opts.Stdout
		}
		return publish.NewStdout(w), nil
	}
	m := cfg.MQTT
	return publish.NewMQTT(publish.MQTTOptions{
		Broker: m.Broker.Reveal(), ClientID: m.ClientID, Username: m.Username, Password: m.Password.Reveal(),
		CAFile: m.TLS.CAFile, CertFile: m.TLS.CertFile, KeyFile: m.TLS.KeyFile, InsecureSkipVerify: m.TLS.InsecureSkipVerify,
		TopicPrefix: m.TopicPrefix, QoS: byte(m.QoS), Retain: m.Retain,
		OutboxDir: filepath.Join(cfg.StateDir, "mqtt"), OutboxMax: m.Outbox.MaxMessages, State: state,
		Discovery: m.Discovery.Enabled, DiscoveryPrefix: m.Discovery.Prefix,
		ScoresEnabled: m.Scores.Enabled, ScoresInterval: m.Scores.Interval.D(),
		SnapshotsEnabled: m.Snapshots.Enabled, SnapshotMaxBytes: int(m.Snapshots.MaxBytes),
		Version: VersionString(), Logger: log,
	})
}

// publishCameras is the cameras as the sink announces them.
func publishCameras(cfg *configs.Config) []publish.Camera {
	out := make([]publish.Camera, len(cfg.Cameras))
	for i, c := range cfg.Cameras {
		out[i].Name = c.Name
		for _, l := range c.Labels {
			out[i].Labels = append(out[i].Labels, publish.Label{Name: l.Name, DeviceClass: l.DeviceClass, Prompts: l.EffectivePrompts()})
		}
	}
	return out
}
