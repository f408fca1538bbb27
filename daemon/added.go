package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/calibrate"
	"github.com/siglipd/siglipd/internal/kit"
)

// Labels added from the page ("try a label", then "add label") live in the
// state folder's labels.json, an overlay on the config file like the
// calibration's applied thresholds: the running config is the file's, plus
// these labels, with applied thresholds (effective). The file is not
// edited: its comments and layout are the user's. A label of the same name
// in the file wins over the overlay's, which is then ignored (and
// --check says so).

// addedLabelsFile is the overlay's file in the state folder.
const addedLabelsFile = "labels.json"

const addedEffect = "labels cannot be added or removed on the page (503) until the disk works; nothing changes"

// AddedLabel is a label added from the page, as labels.json keeps it.
type AddedLabel struct {
	Camera       string           `json:"camera"`
	Name         string           `json:"name"`
	Prompts      []string         `json:"prompts"`
	Threshold    float64          `json:"threshold"`
	OffThreshold *float64         `json:"off_threshold,omitempty"`
	MinFrames    int              `json:"min_frames"`
	OffFrames    int              `json:"off_frames"`
	OffDelay     configs.Duration `json:"off_delay"`
	Cooldown     configs.Duration `json:"cooldown"`
	Added        time.Time        `json:"added"`
}

// label is the overlay entry as a config label.
func (a AddedLabel) label() configs.Label {
	return configs.Label{Name: a.Name, Prompts: slices.Clone(a.Prompts), Threshold: a.Threshold, OffThreshold: a.OffThreshold,
		MinFrames: a.MinFrames, OffFrames: a.OffFrames, OffDelay: a.OffDelay, Cooldown: a.Cooldown, Source: configs.SourcePage}
}

// readAddedLabels reads the overlay; a missing file is none.
func readAddedLabels(stateDir string) ([]AddedLabel, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, addedLabelsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []AddedLabel
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(stateDir, addedLabelsFile), err)
	}
	return out, nil
}

// openAddedLabels reads the overlay at start. A file that cannot be read
// is moved aside (logged): the daemon runs on the config file's labels.
func (d *daemon) openAddedLabels(cfg *configs.Config) {
	d.state.File("labels", addedEffect)
	added, err := readAddedLabels(cfg.StateDir)
	if err != nil {
		path := filepath.Join(cfg.StateDir, addedLabelsFile)
		aside := path + ".unreadable"
		os.Rename(path, aside)
		d.log.Error("labels added on the page not read; moved aside, the config file's labels run", "err", err, "moved_to", aside)
		return
	}
	d.added = added
	for _, a := range added {
		d.log.Info("label added on the page", "camera", a.Camera, "label", a.Name, "prompts", a.Prompts, "threshold", a.Threshold)
	}
}

// withAdded is cfg with the overlay's labels appended to their cameras; an
// entry whose camera is gone, or whose name the camera has in the file, is
// left out. cfg is not modified.
func withAdded(cfg *configs.Config, added []AddedLabel) *configs.Config {
	out := *cfg
	if len(added) == 0 {
		return &out
	}
	out.Cameras = slices.Clone(cfg.Cameras)
	for _, a := range added {
		for i := range out.Cameras {
			c := &out.Cameras[i]
			if c.Name != a.Camera || slices.ContainsFunc(c.Labels, func(l configs.Label) bool { return l.Name == a.Name }) {
				continue
			}
			c.Labels = append(slices.Clone(c.Labels), a.label())
		}
	}
	return &out
}

// effective is the config to run for the file's cfg: its labels, the
// page's, and the thresholds applied from marks.
func (d *daemon) effective(cfg *configs.Config) *configs.Config {
	return withCalibration(withAdded(cfg, d.added), d.calib)
}

// checkAdded validates a label to be added as the config file's would be:
// in a copy of the running config, so errors name its place
// (cameras[1].labels[2].threshold).
func checkAdded(cfg *configs.Config, a AddedLabel) error {
	trial := withAdded(cfg, []AddedLabel{a})
	var errs configs.Errors
	for _, fe := range trial.Validate() {
		errs = append(errs, configs.Error{Path: fe.Path, Msg: fe.Msg})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// addLabel makes a label live without editing the config file: it is
// checked as the file's would be, kept in labels.json and applied through
// the change loop, as a reload is.
func (d *daemon) addLabel(ctx context.Context, a AddedLabel) (AddedLabel, error) {
	cfg := d.config()
	if !slices.ContainsFunc(cfg.Cameras, func(c configs.Camera) bool { return c.Name == a.Camera }) {
		return a, fmt.Errorf("%w: no camera %q", calibrate.ErrNotFound, a.Camera)
	}
	if _, ok := findLabel(cfg, a.Camera, a.Name); ok {
		return a, fmt.Errorf("%w: camera %q already has a label %q", calibrate.ErrConflict, a.Camera, a.Name)
	}
	if err := checkAdded(cfg, a); err != nil {
		return a, err
	}
	a.Added = d.clock.wallNow()
	err := d.change(ctx, "add label", func() error {
		return d.changeAdded(append(slices.Clone(d.added), a))
	})
	if err == nil {
		d.log.Info("label added on the page", "camera", a.Camera, "label", a.Name, "prompts", a.Prompts, "threshold", a.Threshold)
	}
	return a, err
}

// RemoveLabel takes a label added on the page away again.
func (d *daemon) RemoveLabel(ctx context.Context, camera, label string) error {
	err := d.change(ctx, "remove label", func() error {
		i := slices.IndexFunc(d.added, func(a AddedLabel) bool { return a.Camera == camera && a.Name == label })
		if i < 0 {
			if _, ok := findLabel(d.config(), camera, label); ok {
				return fmt.Errorf("%w: label %q of camera %q is in the config file; remove it there", calibrate.ErrConflict, label, camera)
			}
			return errNoLabel(camera, label)
		}
		return d.changeAdded(slices.Delete(slices.Clone(d.added), i, i+1))
	})
	if err == nil {
		d.log.Info("label added on the page removed", "camera", camera, "label", label)
	}
	return err
}

// AddedLabels is the overlay.
func (d *daemon) AddedLabels() []AddedLabel {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.added)
}

// changeAdded saves a new overlay and runs it; on the change loop. Not
// saved, not applied: a label the page shows as added must survive a
// restart. Not applied (its prompts could not be embedded), not saved.
func (d *daemon) changeAdded(next []AddedLabel) error {
	path := filepath.Join(d.fileConfig().StateDir, addedLabelsFile)
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	prev := d.added
	d.setAdded(next)
	old := d.config()
	if err := d.apply(old, diff(old, d.effective(d.fileConfig()))); err != nil {
		d.setAdded(prev)
		return err
	}
	if err := d.state.File("labels", addedEffect).Wrote(kit.WriteFile(path, b, 0o600, true)); err != nil {
		d.setAdded(prev)
		d.apply(d.config(), diff(d.config(), d.effective(d.fileConfig())))
		return fmt.Errorf("%w: %v", calibrate.ErrUnavailable, err)
	}
	return nil
}

func (d *daemon) setAdded(a []AddedLabel) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.added = a
}
