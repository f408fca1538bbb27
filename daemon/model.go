package daemon

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/infer/hub"
	"github.com/siglipd/siglipd/infer/oip"
)

// openModel opens cfg's model (or uses the one a test gives), fetching it
// first when it is a hub model the cache lacks, checks that it computes
// something and embeds every camera's labels. The function it returns
// closes the model.
func (d *daemon) openModel(ctx context.Context, cfg *configs.Config, given infer.Classifier) (func(), error) {
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
		m, err := d.openWaiting(ctx, opts)
		if err != nil {
			return nil, err // infer's errors name the file, library or served model
		}
		d.model, closeModel = m, func() { m.Close() }
	}
	err := selfCheck(d.model)
	for wait := newServerWait(d.log); infer.ServerUnavailable(err); err = selfCheck(d.model) {
		if !wait.next(ctx, err) {
			closeModel()
			return nil, ctx.Err()
		}
	}
	if err != nil {
		closeModel()
		return nil, err
	}
	start := time.Now()
	for _, c := range cfg.Cameras {
		set, err := d.model.EmbedLabels(inferLabels(c))
		for wait := newServerWait(d.log); infer.ServerUnavailable(err); {
			// The server went away since Open: wait for it, as there.
			if !wait.next(ctx, err) {
				closeModel()
				return nil, ctx.Err()
			}
			set, err = d.model.EmbedLabels(inferLabels(c))
		}
		if err != nil {
			closeModel()
			return nil, fmt.Errorf("camera %q labels: %w", c.Name, err)
		}
		d.sets.setLabels(c.Name, set)
		d.sets.setGate(c.Name, c.SkipUnchanged)
	}
	info := d.model.Info()
	d.log.Info("model ready", "model", info.Dir, "backend", info.Backend, "device", info.Device, "input", fmt.Sprintf("%dx%d", info.ImageWidth, info.ImageHeight),
		"batch_size", cfg.Inference.BatchSize, "labels", countLabels(cfg), "text_embedding", time.Since(start).Round(time.Millisecond),
		"onnxruntime", infer.RuntimeVersion(), "library", info.Library)
	return closeModel, nil
}

// openWaiting opens the model; an inference server that is not there yet
// (the remote backend) is waited for, with backoff, until ctx ends:
// daemons and their server often start together, and a server that
// restarts must not leave its daemons down for good. Any other error —
// a server serving another model among them — is returned at once.
func (d *daemon) openWaiting(ctx context.Context, opts infer.Options) (*infer.Model, error) {
	wait := newServerWait(d.log)
	for {
		m, err := infer.Open(opts)
		if !infer.ServerUnavailable(err) {
			return m, err
		}
		if !wait.next(ctx, err) {
			return nil, ctx.Err()
		}
	}
}

// serverWait paces retries while the inference server is unavailable at
// start: 0.5 s doubling to 10 s, one log line per attempt up to the
// fifth, then one a minute.
type serverWait struct {
	log      *slog.Logger
	delay    time.Duration
	attempts int
	start    time.Time
	logged   time.Time
}

func newServerWait(log *slog.Logger) *serverWait {
	return &serverWait{log: log, delay: 500 * time.Millisecond, start: time.Now()}
}

// next logs err and sleeps before the next attempt; false when ctx ended.
func (w *serverWait) next(ctx context.Context, err error) bool {
	w.attempts++
	if w.attempts <= 5 || time.Since(w.logged) >= time.Minute {
		w.log.Warn("waiting for the inference server", "attempt", w.attempts, "waited", time.Since(w.start).Round(time.Second), "err", err)
		w.logged = time.Now()
	}
	t := time.NewTimer(w.delay)
	defer t.Stop()
	w.delay = min(2*w.delay, 10*time.Second)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ModelDir is cfg's model folder: model.path, or the hub cache's snapshot
// of model.id, fetched first when the cache lacks any of the files the
// variant needs (progress in the log).
func ModelDir(ctx context.Context, cfg *configs.Config, client hub.Client, log *slog.Logger) (string, error) {
	m := cfg.Model
	if m.ID == "" {
		return m.Path, nil
	}
	if client.Progress == nil {
		client.Progress = logProgress(log)
	}
	suffix := configs.Variants[m.Variant]
	withFull := m.LogitScale == nil || m.LogitBias == nil
	start := time.Now()
	want := infer.HubFiles(suffix, withFull)
	if cfg.Inference.Backend == "remote" {
		// The server has the towers; here only the tokenizer, the
		// preprocessor and the logit parameters are read.
		want = slices.DeleteFunc(want, func(w hub.Want) bool {
			return strings.HasPrefix(w.Path, "onnx/vision_model") || strings.HasPrefix(w.Path, "onnx/text_model")
		})
	}
	dir, err := client.Fetch(ctx, m.ID, m.Revision, want)
	if err == nil && withFull && suffix != "" && !exists(filepath.Join(dir, "onnx", "model"+suffix+".onnx")) {
		// No full model of this variant: logit_scale and logit_bias come
		// from the fp32 one, as infer reads them.
		dir, err = client.Fetch(ctx, m.ID, m.Revision, append(infer.HubFiles(suffix, false), hub.Want{Path: "onnx/model.onnx"}))
	}
	if err != nil {
		return "", fmt.Errorf("model.id: %w", err)
	}
	log.Info("model files ready", "model", m.ID, "revision", cmp.Or(m.Revision, "main"), "variant", m.Variant,
		"folder", dir, "took", time.Since(start).Round(time.Millisecond))
	return dir, nil
}

// logProgress logs a download's progress every 10 %, and its end.
func logProgress(log *slog.Logger) func(hub.Progress) {
	last := map[string]int64{} // file → last tenth logged
	return func(p hub.Progress) {
		tenth := int64(10)
		if p.Total > 0 {
			tenth = p.Done * 10 / p.Total
		}
		if prev, ok := last[p.File]; ok && tenth <= prev {
			return
		}
		last[p.File] = tenth
		log.Info("downloading model file", "model", p.Repo, "file", p.File, "percent", tenth*10,
			"mib", fmt.Sprintf("%.1f/%.1f", float64(p.Done)/(1<<20), float64(p.Total)/(1<<20)))
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
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
		Template:          cfg.Model.Template,
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
		return opts, fmt.Errorf("inference.remote.url: %s", configs.RedactURL(err.Error()))
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
