package daemon

import (
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
)

// openModel opens cfg's model (or uses the one a test gives), checks that
// it computes something and embeds every camera's labels. The function it
// returns closes the model.
func (d *daemon) openModel(cfg *configs.Config, given infer.Classifier) (func(), error) {
	closeModel := func() {}
	if given != nil {
		d.model = given
	} else {
		m, err := infer.Open(modelOptions(cfg, d.opts.ORTLib, d.log))
		if err != nil {
			return nil, err // infer's errors name the file or library
		}
		d.model, closeModel = m, func() { m.Close() }
	}
	if err := selfCheck(d.model); err != nil {
		closeModel()
		return nil, err
	}
	start := time.Now()
	for _, c := range cfg.Cameras {
		set, err := d.model.EmbedLabels(inferLabels(c))
		if err != nil {
			closeModel()
			return nil, fmt.Errorf("camera %q labels: %w", c.Name, err)
		}
		d.sets.set(c.Name, set)
	}
	info := d.model.Info()
	d.log.Info("model ready", "model", info.Dir, "device", info.Device, "input", fmt.Sprintf("%dx%d", info.ImageWidth, info.ImageHeight),
		"batch_size", cfg.Inference.BatchSize, "labels", countLabels(cfg), "text_embedding", time.Since(start).Round(time.Millisecond),
		"onnxruntime", infer.RuntimeVersion(), "library", info.Library)
	return closeModel, nil
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

// set replaces a camera's labels; nil removes the camera.
func (s *labelSets) set(camera string, set *infer.LabelSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set == nil {
		delete(s.m, camera)
		return
	}
	s.m[camera] = set
}
