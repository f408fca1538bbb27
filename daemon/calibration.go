package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/calibrate"
	"github.com/siglipd/siglipd/infer"
)

// Calibration: marks of frames on the live page and the thresholds they
// suggest. Reads (Calibration, MarkJPEG) run on the caller's goroutine;
// every write of the calibration store, and the threshold change an apply
// makes, runs on the change loop (changes.go), the one owner of the running
// config, so that the config, the rules and the store never disagree.

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
	// Known from the start, so its metric is there at 0 before a failure:
	// a counter that appears at 1 shows no increase.
	d.state.File("calibration", calibrationEffect)
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

var errNoCalibration = fmt.Errorf("%w: calibration is unavailable (the state folder's calibration folder could not be opened; see the log)",
	calibrate.ErrUnavailable)

func errNoLabel(camera, label string) error {
	return fmt.Errorf("%w: no label %q on camera %q", calibrate.ErrNotFound, label, camera)
}

// Mark records the user's verdict on the camera's last scored frame (or on
// a stored frame) for a label: its probability, its time, its image
// embedding and its JPEG.
func (d *daemon) Mark(ctx context.Context, camera, label string, yes bool, frame string) (calibrate.Mark, error) {
	if d.calib == nil {
		return calibrate.Mark{}, errNoCalibration
	}
	l, ok := findLabel(d.config(), camera, label)
	if !ok {
		return calibrate.Mark{}, errNoLabel(camera, label)
	}
	var (
		jpeg []byte
		at   time.Time
		p    float64
		emb  []float32
		err  error
	)
	if frame != "" { // a stored frame: scored now, from its embedding
		p, at, emb, jpeg, err = d.markStored(camera, label, frame)
		if err != nil {
			return calibrate.Mark{}, err
		}
	} else {
		var probs map[string]float64
		jpeg, at, probs, err = d.live.Snapshot(ctx, camera)
		if err != nil {
			return calibrate.Mark{}, err
		}
		if p, ok = probs[label]; !ok {
			return calibrate.Mark{}, fmt.Errorf("%w: camera %q has no scored frame yet", calibrate.ErrNotFound, camera)
		}
		if d.batch != nil {
			emb = d.batch.lastEmbedding(camera)
		}
		at = d.clock.wall(d.clock.steady(at)) // the frame's time as events and the history show it
	}
	m := calibrate.Mark{Camera: camera, Label: label, Yes: yes, Score: p, Time: at, Prompts: l.EffectivePrompts(), Embedding: emb}
	err = d.change(ctx, "mark", func() (err error) {
		m, err = d.calib.Add(m, jpeg)
		return d.calibrationWrote(err)
	})
	return m, err
}

// calibrationEffect is what a calibration folder that cannot be written
// costs. Marks and thresholds are refused rather than kept for this run
// only: a threshold the page shows as applied would otherwise be gone after
// the next restart, without a word.
const calibrationEffect = "marks and thresholds are refused on the page (503) until the disk works; nothing changes"

// calibrationWrote accounts for the result of a write of the calibration
// store (errors that are not the disk's pass through) and returns err.
func (d *daemon) calibrationWrote(err error) error {
	if err == nil || errors.Is(err, calibrate.ErrUnavailable) {
		d.state.File("calibration", calibrationEffect).Wrote(err)
	}
	return err
}

// DeleteMark removes a mark.
func (d *daemon) DeleteMark(ctx context.Context, id string) error {
	if d.calib == nil {
		return errNoCalibration
	}
	return d.change(ctx, "delete mark", func() error {
		err := d.calib.Delete(id)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: no mark %q", calibrate.ErrNotFound, id)
		}
		return d.calibrationWrote(err)
	})
}

// Calibration is what the page shows for a label: its marks, the
// threshold they suggest, a Platt fit, and what is applied.
func (d *daemon) Calibration(camera, label string) (calibrate.Report, error) {
	l, err := d.calibrationLabel(camera, label)
	if err != nil || d.calib == nil {
		return calibrate.Report{Label: l, Marks: []calibrate.ScoredMark{}}, err
	}
	return d.calib.Report(l, d.promptScorer(l.Prompts)), nil
}

// calibrationLabel is a label as a calibration report needs it.
func (d *daemon) calibrationLabel(camera, label string) (calibrate.Label, error) {
	fileLabel, ok := findLabel(d.fileConfig(), camera, label)
	if !ok {
		return calibrate.Label{}, errNoLabel(camera, label)
	}
	l := calibrate.Label{Camera: camera, Label: label, Prompts: fileLabel.EffectivePrompts(),
		Threshold: fileLabel.Threshold, ConfigThreshold: fileLabel.Threshold, Pinned: fileLabel.PinThreshold}
	if live, ok := findLabel(d.config(), camera, label); ok {
		l.Threshold = live.Threshold
	}
	return l, nil
}

// promptScorer scores a mark's embedding against each prompt on its own,
// for a label with several prompts (nil otherwise, or without a model).
// The prompts' text embeddings are made once per set of prompts.
func (d *daemon) promptScorer(prompts []string) func([]float32) map[string]float64 {
	if len(prompts) < 2 || d.model == nil {
		return nil
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
			return nil
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
func (d *daemon) ApplyCalibration(ctx context.Context, camera, label string, apply bool) (calibrate.Report, error) {
	if d.calib == nil {
		return calibrate.Report{}, errNoCalibration
	}
	if err := d.change(ctx, "calibration", func() error { return d.applyCalibration(camera, label, apply) }); err != nil {
		return calibrate.Report{}, err
	}
	return d.Calibration(camera, label)
}

// applyCalibration records the applied threshold and puts it in force; it
// runs on the change loop.
func (d *daemon) applyCalibration(camera, label string, apply bool) error {
	l, err := d.calibrationLabel(camera, label)
	if err != nil {
		return err
	}
	prev, had := d.calib.Applied(camera, label)
	if apply {
		s := d.calib.Report(l, nil).Suggestion
		if s == nil || !s.Separable {
			return fmt.Errorf("%w: the marks of %s / %s suggest no threshold (they need a yes and a no, and every yes scored above every no)",
				calibrate.ErrConflict, camera, label)
		}
		err = d.calib.Apply(camera, label, calibrate.Applied{Threshold: s.Threshold, At: d.clock.wallNow(), Marks: s.Yes + s.No, Prompts: l.Prompts})
	} else {
		err = d.calib.Clear(camera, label)
	}
	if err := d.calibrationWrote(err); err != nil {
		return err // not saved: not applied either
	}
	old := d.config()
	if err := d.apply(old, diff(old, d.effective(d.fileConfig()))); err != nil {
		// Keep the store as the running config is.
		if had {
			d.calib.Apply(camera, label, prev)
		} else {
			d.calib.Clear(camera, label)
		}
		return err
	}
	threshold := 0.0
	if now, ok := findLabel(d.config(), camera, label); ok {
		threshold = now.Threshold
	}
	d.log.Info("threshold calibrated", "camera", camera, "label", label, "applied", apply, "threshold", threshold)
	return nil
}

// MarkJPEG is the path of a mark's frame.
func (d *daemon) MarkJPEG(id string) (string, error) {
	if d.calib == nil {
		return "", errNoCalibration
	}
	p := d.calib.JPEG(id)
	if _, err := os.Stat(p); p == "" || err != nil {
		return "", fmt.Errorf("%w: no frame for mark %q", calibrate.ErrNotFound, id)
	}
	return p, nil
}
