package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/calibrate"
	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/infer"
)

// promptCache holds the text embeddings of labels' prompts one by one,
// for per-prompt scores of marks.
type promptCache struct {
	promptMu   sync.Mutex
	promptSets map[string]*infer.LabelSet
}

// calibrationDir is the calibration's folder in the state folder: the
// marks, their frames and the applied thresholds.
const calibrationDir = "calibration"

// openCalibration opens the calibration store of the state folder. A
// store that cannot be opened is logged, not fatal: the daemon runs on the
// config's thresholds.
func (d *daemon) openCalibration(cfg *configs.Config) {
	s, err := calibrate.Open(filepath.Join(cfg.StateDir, calibrationDir))
	if err != nil {
		d.log.Warn("calibration unavailable; the config's thresholds apply", "err", err)
		return
	}
	d.calib = s
}

// withCalibration is cfg with the thresholds applied from marked frames in
// place of the file's, for labels that do not pin theirs and still have
// the prompts the threshold was made for. The off threshold keeps its
// ratio to the threshold. cfg is not modified.
func withCalibration(cfg *configs.Config, calib *calibrate.Store) *configs.Config {
	out := *cfg
	if calib == nil {
		return &out
	}
	out.Cameras = slices.Clone(cfg.Cameras)
	for i := range out.Cameras {
		c := &out.Cameras[i]
		c.Labels = slices.Clone(c.Labels)
		for j := range c.Labels {
			l := &c.Labels[j]
			a, ok := calib.Applied(c.Name, l.Name)
			if !ok || l.PinThreshold || !slices.Equal(a.Prompts, l.EffectivePrompts()) {
				continue // none, pinned, or made for other prompts
			}
			ratio := 0.8
			if l.Threshold > 0 {
				ratio = l.EffectiveOffThreshold() / l.Threshold
			}
			off := a.Threshold * ratio
			l.Threshold, l.OffThreshold = a.Threshold, &off
		}
	}
	return &out
}

// findLabel is a camera's label in cfg.
func findLabel(cfg *configs.Config, camera, label string) (*configs.Label, bool) {
	for i := range cfg.Cameras {
		if cfg.Cameras[i].Name != camera {
			continue
		}
		for j := range cfg.Cameras[i].Labels {
			if cfg.Cameras[i].Labels[j].Name == label {
				return &cfg.Cameras[i].Labels[j], true
			}
		}
	}
	return nil, false
}

var errNoCalibration = errors.New("calibration is unavailable (the state folder's calibration folder could not be opened; see the log)")

// Mark records the user's verdict on the camera's last scored frame for a
// label: its probability, its time, its image embedding and its JPEG.
func (d *daemon) Mark(camera, label string, yes bool) (calibrate.Mark, error) {
	if d.calib == nil {
		return calibrate.Mark{}, errNoCalibration
	}
	l, ok := findLabel(d.config(), camera, label)
	if !ok {
		return calibrate.Mark{}, fmt.Errorf("%w: no label %q on camera %q", httpapi.ErrNotFound, label, camera)
	}
	probs, _, _ := d.live.Scores(camera)
	p, ok := probs[label]
	if !ok {
		return calibrate.Mark{}, fmt.Errorf("%w: camera %q has no scored frame yet", httpapi.ErrNotFound, camera)
	}
	jpeg, at, err := d.live.Snapshot(camera)
	if err != nil {
		return calibrate.Mark{}, err
	}
	var emb []float32
	if d.batch != nil {
		emb = d.batch.lastEmbedding(camera)
	}
	return d.calib.Add(calibrate.Mark{Camera: camera, Label: label, Yes: yes, Score: p, Time: at, Prompts: l.EffectivePrompts(), Embedding: emb}, jpeg)
}

// DeleteMark removes a mark.
func (d *daemon) DeleteMark(id string) error {
	if d.calib == nil {
		return errNoCalibration
	}
	if err := d.calib.Delete(id); err != nil {
		return fmt.Errorf("%w: no mark %q", httpapi.ErrNotFound, id)
	}
	return nil
}

// Calibration is what the page shows for a label: its marks, the
// threshold they suggest, a Platt fit, and what is applied.
func (d *daemon) Calibration(camera, label string) (httpapi.Calibration, error) {
	fileLabel, ok := findLabel(d.fileConfig(), camera, label)
	if !ok {
		return httpapi.Calibration{}, fmt.Errorf("%w: no label %q on camera %q", httpapi.ErrNotFound, label, camera)
	}
	live, _ := findLabel(d.config(), camera, label)
	c := httpapi.Calibration{Camera: camera, Label: label, Threshold: live.Threshold, ConfigThreshold: fileLabel.Threshold,
		Pinned: fileLabel.PinThreshold, Marks: []httpapi.MarkInfo{}}
	if d.calib == nil {
		return c, nil
	}
	if a, ok := d.calib.Applied(camera, label); ok {
		c.Applied = &httpapi.AppliedInfo{Threshold: a.Threshold, At: a.At, Marks: a.Marks}
	}
	var yes, no []float64
	prompts := fileLabel.EffectivePrompts()
	perPrompt := d.promptScorer(prompts)
	for _, m := range d.calib.Marks(camera, label, prompts) {
		c.Marks = append(c.Marks, httpapi.MarkInfo{ID: m.ID, Yes: m.Yes, Score: m.Score, Time: m.Time, PromptScores: perPrompt(m.Embedding)})
		if m.Yes {
			yes = append(yes, m.Score)
		} else {
			no = append(no, m.Score)
		}
	}
	if s, ok := calibrate.Suggest(yes, no); ok {
		c.Suggestion = &s
	}
	if p, ok := calibrate.FitPlatt(yes, no); ok {
		fit := &httpapi.PlattInfo{A: p.A, B: p.B}
		for _, m := range c.Marks {
			fit.Before = append(fit.Before, m.Score)
			fit.After = append(fit.After, p.Apply(m.Score))
		}
		c.Platt = fit
	}
	return c, nil
}

// promptScorer scores a mark's embedding against each prompt on its own,
// for a label with several prompts (nil otherwise, or without a model).
// The prompts' text embeddings are made once per set of prompts.
func (d *daemon) promptScorer(prompts []string) func([]float32) map[string]float64 {
	none := func([]float32) map[string]float64 { return nil }
	if len(prompts) < 2 || d.model == nil {
		return none
	}
	key := strings.Join(prompts, "\x00")
	d.promptMu.Lock()
	set, ok := d.promptSets[key]
	d.promptMu.Unlock()
	if !ok {
		labels := make([]infer.Label, len(prompts))
		for i, p := range prompts {
			labels[i] = infer.Label{Name: p, Prompts: []string{p}}
		}
		var err error
		if set, err = d.model.EmbedLabels(labels); err != nil {
			d.log.Warn("per-prompt scores unavailable", "err", err)
			return none
		}
		d.promptMu.Lock()
		d.promptSets[key] = set
		d.promptMu.Unlock()
	}
	return func(emb []float32) map[string]float64 {
		if len(emb) == 0 {
			return nil
		}
		out := map[string]float64{}
		for i, p := range d.model.Score(emb, set) {
			out[set.Names[i]] = float64(p)
		}
		return out
	}
}

// ApplyCalibration applies the suggested threshold of a label (apply
// true) or returns it to the config's (false), at once: the rules take it
// from the next frame, as after a reload.
func (d *daemon) ApplyCalibration(camera, label string, apply bool) (httpapi.Calibration, error) {
	if d.calib == nil {
		return httpapi.Calibration{}, errNoCalibration
	}
	c, err := d.Calibration(camera, label)
	if err != nil {
		return c, err
	}
	if apply {
		s := c.Suggestion
		if s == nil || !s.Separable {
			return c, fmt.Errorf("%w: the marks of %s / %s suggest no threshold (they need a yes and a no, and every yes scored above every no)",
				httpapi.ErrConflict, camera, label)
		}
		fileLabel, _ := findLabel(d.fileConfig(), camera, label)
		err = d.calib.Apply(camera, label, calibrate.Applied{Threshold: s.Threshold, At: time.Now(), Marks: s.Yes + s.No,
			Prompts: fileLabel.EffectivePrompts()})
	} else {
		err = d.calib.Clear(camera, label)
	}
	if err != nil {
		return c, err
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	old := d.config()
	if err := d.apply(old, diff(old, withCalibration(d.fileConfig(), d.calib))); err != nil {
		return c, err
	}
	d.log.Info("threshold calibrated", "camera", camera, "label", label, "applied", apply, "threshold", d.mustLabel(camera, label).Threshold)
	return d.Calibration(camera, label)
}

func (d *daemon) mustLabel(camera, label string) *configs.Label {
	l, _ := findLabel(d.config(), camera, label)
	if l == nil {
		return &configs.Label{}
	}
	return l
}

// MarkJPEG is the path of a mark's frame.
func (d *daemon) MarkJPEG(id string) (string, error) {
	if d.calib == nil {
		return "", errNoCalibration
	}
	p := d.calib.JPEG(id)
	if _, err := os.Stat(p); p == "" || err != nil {
		return "", fmt.Errorf("%w: no frame for mark %q", httpapi.ErrNotFound, id)
	}
	return p, nil
}
