// Package daemon wires siglipd's stages together and runs them:
//
//	capture ──frames──▶ infer ──scores──▶ rules ──events──▶ publish
//	(a Source per       (one batcher,      (one goroutine    (MQTT or stdout;
//	 camera, into a      all cameras,       owns the state    never blocks)
//	 latest-frame        one vision run     machines)
//	 hand-off)           per batch)
//
// It is the only package that knows about all of them. Stages are started
// back to front (publish first, capture last) and stopped front to back:
// cancelling capture lets the batcher take the last frames, close its output,
// the rules loop drain it, and publish send the last events and "offline".
// It also serves the HTTP status endpoints and the live page, and applies
// config reloads (SIGHUP, or a change of the file) without stopping cameras
// whose settings did not change.
package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/publish"
	"github.com/siglipd/siglipd/rules"
)

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
	// Classifier, when set, is used instead of opening cfg.Model (tests use
	// it to slow inference down); Run does not close it.
	Classifier infer.Classifier
	// Ready, when set, is closed once the daemon is running (tests).
	Ready chan<- struct{}
	// HTTPAddr receives the listening address once the HTTP server is up
	// (useful with http.listen ":0" in tests); may be nil.
	HTTPAddr chan<- string
	// Stdout is where the stdout sink writes (default os.Stdout).
	Stdout io.Writer
}

// daemon is one running siglipd.
type daemon struct {
	log     *slog.Logger
	opts    Options
	model   infer.Classifier
	sink    publish.Sink
	journal *journal // nil when the state folder is unusable
	latest  *capture.Latest
	metrics *metrics
	live    *liveState
	started time.Time

	// mu guards the running config and cameras, which reload changes.
	mu      sync.Mutex
	cfg     *configs.Config
	cameras map[string]*cameraRun
	sets    labelSets

	captureCtx context.Context
	captureWG  sync.WaitGroup
	// drainBy is when the batcher must be done at shutdown; set before
	// captureDone is closed, read after.
	drainBy time.Time

	ruleUpdates chan ruleUpdate // to the rules loop, which owns the Machine
}

// cameraRun is a running camera: its source and label set.
type cameraRun struct {
	cfg    configs.Camera
	source capture.Source
	cancel context.CancelFunc
	done   chan struct{}
}

// Run runs the daemon until ctx is cancelled, then stops every stage within
// ShutdownTimeout. It returns nil on a clean stop and an error that names the
// failing part (model file, camera, broker option) when it cannot start.
func Run(ctx context.Context, cfg *configs.Config, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	d := &daemon{
		log: opts.Logger, opts: opts, cfg: cfg, latest: capture.NewLatest(),
		cameras: map[string]*cameraRun{}, sets: labelSets{m: map[string]*infer.LabelSet{}},
		live: newLiveState(), started: time.Now(), ruleUpdates: make(chan ruleUpdate),
	}
	log := d.log
	log.Info("starting siglipd", "version", VersionString(), "config", opts.ConfigPath,
		"cameras", len(cfg.Cameras), "model", cfg.Model.Path, "malloc_tuned", mallocTuned)

	// Model first: without it nothing else is worth starting.
	if opts.Classifier != nil {
		d.model = opts.Classifier
	} else {
		m, err := openModel(cfg, opts, log)
		if err != nil {
			return err // infer's errors name the file or library
		}
		defer m.Close()
		d.model = m
	}
	if err := selfCheck(d.model); err != nil {
		return err
	}
	start := time.Now()
	if err := d.embedAll(cfg); err != nil {
		return err
	}
	info := d.model.Info()
	log.Info("model ready", "model", info.Dir, "device", info.Device, "input", fmt.Sprintf("%dx%d", info.ImageWidth, info.ImageHeight),
		"batch_size", cfg.Inference.BatchSize, "labels", countLabels(cfg), "text_embedding", time.Since(start).Round(time.Millisecond),
		"onnxruntime", infer.RuntimeVersion(), "library", info.Library)

	// Back to front: publish, rules, infer, HTTP, then capture.
	sink, err := newSink(cfg, opts, log)
	if err != nil {
		return err // publish's errors start with "mqtt: "
	}
	d.sink = sink
	d.metrics = newMetrics(d)
	if err := sink.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	sink.Announce(publishCameras(cfg))

	// Events the last run left open (it died) end now, through the same
	// path as every other event, whatever the sink.
	j, leftOpen, err := openJournal(cfg.StateDir, log)
	if err != nil {
		log.Warn("event journal unavailable; events open at a crash would not be ended", "err", err)
	}
	d.journal = j
	if len(leftOpen) > 0 {
		log.Warn("the last run stopped with events open; ending them now", "events", len(leftOpen))
		now := time.Now()
		ends := make([]rules.Event, len(leftOpen))
		for i, ev := range leftOpen {
			ends[i] = rules.Ended(ev, now)
		}
		d.emit(ends, nil)
	}

	machine := rules.New(rulesFor(cfg))
	machine.QuietTimeout = quietTimeout(cfg)
	scored := make(chan scoredFrame, 2*cfg.Inference.BatchSize)
	rulesDone := make(chan struct{})
	go func() {
		defer close(rulesDone)
		d.rulesLoop(machine, scored)
	}()

	captureCtx, stopCapture := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCapture()
	d.captureCtx = captureCtx
	captureDone := make(chan struct{})
	inferDone := make(chan struct{})
	go func() {
		defer close(inferDone)
		d.inferLoop(captureDone, scored)
	}()

	// shutdown stops everything started so far, front to back, within
	// ShutdownTimeout: capture, then the batcher and rules loop drain, then
	// publish sends the last events and "offline".
	var srv *http.Server
	shutdown := func() error {
		deadline := time.Now().Add(ShutdownTimeout)
		stopCapture()
		d.captureWG.Wait()
		// The batcher scores what is pending once more if that fits the
		// budget, leaving publish at least 1.5 s.
		d.drainBy = deadline.Add(-1500 * time.Millisecond)
		close(captureDone)
		<-inferDone
		<-rulesDone
		d.latest.Close()
		closeCtx, cancel := context.WithDeadline(context.Background(), deadline.Add(-500*time.Millisecond))
		err := sink.Close(closeCtx)
		cancel()
		if srv != nil {
			shutCtx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			srv.Shutdown(shutCtx)
			cancel()
		}
		d.live.close()
		if err != nil {
			log.Warn("publishing stopped with undelivered messages kept for the next start", "err", err)
		}
		log.Info("siglipd stopped", "took", time.Since(deadline.Add(-ShutdownTimeout)).Round(time.Millisecond))
		return nil
	}

	if srv, err = d.startHTTP(cfg); err != nil {
		shutdown()
		return err
	}
	d.mu.Lock()
	for _, c := range cfg.Cameras {
		if err := d.startCamera(c); err != nil {
			d.mu.Unlock()
			shutdown()
			return err
		}
	}
	d.mu.Unlock()
	log.Info("siglipd running", "cameras", len(cfg.Cameras), "sink", cfg.Sink, "http", cfg.HTTP.Listen)
	if opts.Ready != nil {
		close(opts.Ready)
	}

	d.serveReloads(ctx)
	log.Info("stopping siglipd")
	return shutdown()
}

func openModel(cfg *configs.Config, opts Options, log *slog.Logger) (*infer.Model, error) {
	return infer.Open(modelOptions(cfg, opts.ORTLib, log))
}

func modelOptions(cfg *configs.Config, lib infer.LibraryChoice, log *slog.Logger) infer.Options {
	return infer.Options{
		Dir:               cfg.Model.Path,
		Suffix:            configs.Variants[cfg.Model.Variant],
		Device:            cfg.Inference.Device,
		Threads:           cfg.Inference.Threads,
		GraphOptimization: cfg.Inference.GraphOptimization,
		Template:          cfg.Model.Template,
		LogitScale:        cfg.Model.LogitScale,
		LogitBias:         cfg.Model.LogitBias,
		Resize:            cfg.Model.Resize,
		Library:           lib,
		Logger:            log,
	}
}

// selfCheck refuses to start when two clearly different images get the same
// embedding: the symptom of an ONNX Runtime that runs but computes nothing
// useful (Frigate hit it with a misconfigured provider, frigate#24159), which
// would otherwise give every frame the same scores forever.
func selfCheck(m infer.Classifier) error {
	info := m.Info()
	w, h := max(info.ImageWidth, 16), max(info.ImageHeight, 16)
	dark := infer.Image{Pix: make([]byte, 3*w*h), Width: w, Height: h, Stride: 3 * w}
	bright := infer.Image{Pix: make([]byte, 3*w*h), Width: w, Height: h, Stride: 3 * w}
	for i := range bright.Pix {
		bright.Pix[i] = byte(255 - (i/3)%97) // a bright, structured image
		if i%3 == 2 {
			bright.Pix[i] = 230 // reddish
		}
	}
	e, err := m.EmbedImages([]infer.Image{dark, bright})
	if err != nil {
		return fmt.Errorf("model self-check: %w", err)
	}
	var cos float64
	for i := range e[0] {
		cos += float64(e[0][i]) * float64(e[1][i])
	}
	if math.IsNaN(cos) || cos > 0.99999 {
		return fmt.Errorf("model self-check failed: a black and a bright image got the same embedding (cosine %.6f); "+
			"ONNX Runtime (%s, device %s) is not computing the model correctly", cos, info.Library, info.Device)
	}
	return nil
}

// embedAll embeds every camera's labels (once per distinct prompt).
func (d *daemon) embedAll(cfg *configs.Config) error {
	for _, c := range cfg.Cameras {
		set, err := d.model.EmbedLabels(inferLabels(c))
		if err != nil {
			return fmt.Errorf("camera %q labels: %w", c.Name, err)
		}
		d.sets.set(c.Name, set)
	}
	return nil
}

func inferLabels(c configs.Camera) []infer.Label {
	out := make([]infer.Label, len(c.Labels))
	for i, l := range c.Labels {
		out[i] = infer.Label{Name: l.Name, Prompts: l.EffectivePrompts()}
	}
	return out
}

func countLabels(cfg *configs.Config) int {
	n := 0
	for _, c := range cfg.Cameras {
		n += len(c.Labels)
	}
	return n
}

func rulesFor(cfg *configs.Config) []rules.Rule {
	var out []rules.Rule
	for _, c := range cfg.Cameras {
		for _, l := range c.Labels {
			out = append(out, rules.Rule{
				Camera: c.Name, Label: l.Name, Prompts: l.EffectivePrompts(),
				Threshold: l.Threshold, OffThreshold: l.EffectiveOffThreshold(),
				MinFrames: l.MinFrames, OffFrames: l.OffFrames,
				OffDelay: l.OffDelay.D(), Cooldown: l.Cooldown.D(),
			})
		}
	}
	return out
}

// quietTimeout ends the events of a camera that stopped delivering frames,
// but not those of one stall and reopen: the stall is noticed after
// read_timeout, the reopen follows within about 2 s (the stalled read lets
// go, the first backoff step) and may take open_timeout; 5 s cover the
// gaps. A dead camera ends its events.
func quietTimeout(cfg *configs.Config) time.Duration {
	q := rules.DefaultQuietTimeout
	for _, c := range cfg.Cameras {
		q = max(q, 3*c.ReadTimeout.D(), c.ReadTimeout.D()+c.OpenTimeout.D()+5*time.Second)
	}
	return q
}

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

func newSink(cfg *configs.Config, opts Options, log *slog.Logger) (publish.Sink, error) {
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
		OutboxDir: filepath.Join(cfg.StateDir, "mqtt"), OutboxMax: m.Outbox.MaxMessages,
		Discovery: m.Discovery.Enabled, DiscoveryPrefix: m.Discovery.Prefix,
		ScoresEnabled: m.Scores.Enabled, ScoresInterval: m.Scores.Interval.D(),
		SnapshotsEnabled: m.Snapshots.Enabled, SnapshotMaxBytes: int(m.Snapshots.MaxBytes),
		Version: VersionString(), Logger: log,
	})
}

// startCamera starts one camera's source. Call with d.mu held.
func (d *daemon) startCamera(c configs.Camera) error {
	opts := capture.Options{
		Name: c.Name, URL: c.URL.Reveal(), FPS: c.FPS, ReadTimeout: c.ReadTimeout.D(), OpenTimeout: c.OpenTimeout.D(),
		RTSPTransport: c.RTSPTransport, Loop: c.Loop, Logger: d.log,
	}
	if c.Crop != nil {
		opts.Crop = &capture.Crop{X: c.Crop.X, Y: c.Crop.Y, Width: c.Crop.Width, Height: c.Crop.Height, Pixels: c.Crop.InPixels()}
	}
	src, err := capture.New(opts)
	if err != nil {
		return fmt.Errorf("camera %q: %w", c.Name, err)
	}
	ctx, cancel := context.WithCancel(d.captureCtx)
	run := &cameraRun{cfg: c, source: src, cancel: cancel, done: make(chan struct{})}
	d.cameras[c.Name] = run
	d.captureWG.Add(1)
	go func() {
		defer d.captureWG.Done()
		defer close(run.done)
		if err := src.Run(ctx, d.latest); err != nil {
			d.log.Error("camera stopped", "camera", c.Name, "err", err)
		}
	}()
	return nil
}

// stopCamera stops one camera and waits for it. Call with d.mu held.
func (d *daemon) stopCamera(name string) {
	run, ok := d.cameras[name]
	if !ok {
		return
	}
	run.cancel()
	<-run.done
	delete(d.cameras, name)
}

// labelSets are the cameras' embedded labels, read by the batcher and
// replaced by reloads.
type labelSets struct {
	mu sync.RWMutex
	m  map[string]*infer.LabelSet
}

func (s *labelSets) get(camera string) *infer.LabelSet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[camera]
}

func (s *labelSets) set(camera string, set *infer.LabelSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set == nil {
		delete(s.m, camera)
		return
	}
	s.m[camera] = set
}
