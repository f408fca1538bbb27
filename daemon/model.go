package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/infer/hub"
	"github.com/siglipd/siglipd/infer/oip"
	"github.com/siglipd/siglipd/internal/kit"
)

// classifier is what the daemon needs of a model: infer.Model implements
// it, and so does a test's fake. Closing it is the business of whoever
// opened it (openModel), not of the stages that use it.
type classifier interface {
	EmbedLabels(labels []infer.Label) (*infer.LabelSet, error)
	EmbedImages(images []infer.Image) ([][]float32, error)
	Score(imageEmb []float32, set *infer.LabelSet) []float32
	Info() infer.Info
}

// openModel opens cfg's model (or uses the one a test gives), fetching it
// first when it is a hub model the cache lacks, checks that it computes
// something and embeds every camera's labels. The function it returns
// closes the model.
func (d *daemon) openModel(ctx context.Context, cfg *configs.Config, given classifier) (func(), error) {
	closeModel := func() {}
	if given != nil {
		d.model = given
	} else {
		dir, err := ModelDir(ctx, cfg, hub.FromEnv(os.Getenv), d.log)
		if err != nil {
			return nil, err
		}
		opts, err := modelOptions(cfg, dir, d.opts.ORTLib, d.log)
		if err != nil {
			return nil, cfg.ErrorAt("inference.remote.tls", "%v", err)
		}
		var m *infer.Model
		err = d.whileServerAway(ctx, func() (err error) {
			m, err = infer.Open(opts)
			return err
		})
		if err != nil {
			return nil, err // infer's errors name the file, library or served model
		}
		d.model, closeModel = m, func() { m.Close() }
	}
	fail := func(err error) (func(), error) {
		closeModel()
		return nil, err
	}
	if err := d.whileServerAway(ctx, func() error { return selfCheck(d.model) }); err != nil {
		return fail(err)
	}
	start := time.Now()
	for _, c := range cfg.Cameras {
		var set *infer.LabelSet
		err := d.whileServerAway(ctx, func() (err error) {
			set, err = d.model.EmbedLabels(inferLabels(c))
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("camera %q labels: %w", c.Name, err)
			}
			return fail(err)
		}
		d.sets.setLabels(c.Name, set)
		d.sets.setGate(c.Name, c.SkipUnchanged)
	}
	info := d.model.Info()
	d.log.Info("model ready", "model", info.Dir, "is", info.Description.String(), "backend", info.Backend, "device", info.Device, "input", fmt.Sprintf("%dx%d", info.ImageWidth, info.ImageHeight),
		"batch_size", cfg.Inference.BatchSize, "labels", countLabels(cfg), "text_embedding", time.Since(start).Round(time.Millisecond),
		"onnxruntime", infer.RuntimeVersion(), "library", info.Library)
	return closeModel, nil
}

// whileServerAway calls fn until it returns anything but "the inference
// server is unavailable" (the remote backend), or ctx ends (then ctx's
// error): daemons and their server often start together, and a server that
// restarts must not leave its daemons down for good. Any other error — a
// server serving another model among them — is returned at once. Retries
// wait 0.5 s doubling to 10 s, with one log line per attempt up to the
// fifth, then one a minute.
func (d *daemon) whileServerAway(ctx context.Context, fn func() error) error {
	delay, attempts, start, logged := 500*time.Millisecond, 0, time.Now(), time.Time{}
	for {
		err := fn()
		if !infer.ServerUnavailable(err) {
			return err
		}
		attempts++
		if attempts <= 5 || time.Since(logged) >= time.Minute {
			d.log.Warn("waiting for the inference server", "attempt", attempts, "waited", time.Since(start).Round(time.Second), "err", err)
			logged = time.Now()
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// ModelDir is cfg's model folder: model.path, or the hub cache's snapshot
// of model.id, fetched first when the cache lacks any of the files the
// variant needs (progress in the log).
func ModelDir(ctx context.Context, cfg *configs.Config, client hub.Client, log *slog.Logger) (string, error) {
	if cfg.Model.ID == "" {
		return cfg.Model.Path, nil
	}
	dir, err := hub.ModelDir(ctx, client, hubModel(cfg), log)
	if err != nil {
		return "", fmt.Errorf("model.id: %w", err)
	}
	return dir, nil
}

// hubModel is cfg's model as the hub fetches it.
func hubModel(cfg *configs.Config) hub.Model {
	m := cfg.Model
	return hub.Model{ID: m.ID, Revision: m.Revision, Variant: m.Variant, Suffix: configs.Variants[m.Variant],
		WithFull: m.LogitScale == nil || m.LogitBias == nil, NoTowers: cfg.Inference.Backend == "remote", Check: infer.CheckConfig}
}

// modelOptions are infer's options for cfg's model in dir; the error is a
// remote backend's TLS files that cannot be read.
func modelOptions(cfg *configs.Config, dir string, lib infer.LibraryChoice, log *slog.Logger) (infer.Options, error) {
	opts := infer.Options{
		Dir:               dir,
		Suffix:            configs.Variants[cfg.Model.Variant],
		Device:            cfg.Inference.Device,
		Threads:           cfg.Inference.Threads,
		GraphOptimization: cfg.Inference.GraphOptimization,
		AllowSpinning:     cfg.Inference.AllowSpinning,
		Template:          cfg.Model.Template,
		Lowercase:         cfg.Model.Lowercase,
		LogitScale:        cfg.Model.LogitScale,
		LogitBias:         cfg.Model.LogitBias,
		Resize:            cfg.Model.Resize,
		Library:           lib,
		Logger:            log,
	}
	if cfg.Inference.Backend != "remote" {
		return opts, nil
	}
	r := cfg.Inference.Remote
	u, err := url.Parse(r.URL.Reveal())
	if err != nil {
		return opts, fmt.Errorf("inference.remote.url: %s", kit.RedactURL(err.Error()))
	}
	remote := &infer.Remote{
		Server:      oip.Options{Target: u.Host, Headers: map[string]string{}},
		VisionModel: r.VisionModel, TextModel: r.TextModel, Version: r.ModelVersion, Timeout: r.Timeout.D(),
	}
	for _, h := range r.Headers {
		remote.Server.Headers[h.Name] = h.Value.Reveal()
	}
	if u.Scheme == "grpcs" {
		tlsConf, err := r.TLS.Load()
		if err != nil {
			return opts, err
		}
		if tlsConf == nil {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		remote.Server.TLS = tlsConf
	}
	opts.Remote = remote
	return opts, nil
}

// selfCheck refuses to start when two clearly different images get the same
// embedding: the symptom of an ONNX Runtime that runs but computes nothing
// useful (Frigate hit it with a misconfigured provider, frigate#24159), which
// would otherwise give every frame the same scores forever.
func selfCheck(m classifier) error {
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

// scoring is, per camera, what the batcher needs to score its frames: the
// embedded labels and the change gate's settings. Run fills it, reloads
// change it, the batcher reads it.
type scoring struct {
	mu   sync.RWMutex
	sets map[string]*infer.LabelSet
	gate map[string]configs.SkipUnchanged
}

func newScoring() *scoring {
	return &scoring{sets: map[string]*infer.LabelSet{}, gate: map[string]configs.SkipUnchanged{}}
}

// get returns a camera's labels (nil for a camera that is not configured)
// and change gate.
func (s *scoring) get(camera string) (*infer.LabelSet, configs.SkipUnchanged) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sets[camera], s.gate[camera]
}

// everyCamera reports whether frames hold a frame of every camera with
// labels.
func (s *scoring) everyCamera(frames []*capture.Frame) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	in := make(map[string]bool, len(frames))
	for _, f := range frames {
		in[f.Camera] = true
	}
	for camera := range s.sets {
		if !in[camera] {
			return false
		}
	}
	return true
}

// setLabels replaces a camera's labels.
func (s *scoring) setLabels(camera string, set *infer.LabelSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sets[camera] = set
}

// setGate replaces a camera's change gate.
func (s *scoring) setGate(camera string, g configs.SkipUnchanged) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate[camera] = g
}

// forget removes a camera.
func (s *scoring) forget(camera string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sets, camera)
	delete(s.gate, camera)
}
