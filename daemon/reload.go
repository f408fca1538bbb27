package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/rules"
)

// DefaultWatchInterval is how often the config file is checked for changes.
// Polling (not inotify) also sees changes through bind mounts and editors
// that replace the file, and a write caught half-done is simply rejected and
// picked up complete at the next poll.
const DefaultWatchInterval = 2 * time.Second

// serveReloads applies reloads until ctx is cancelled.
func (d *daemon) serveReloads(ctx context.Context) {
	var poll <-chan time.Time
	var last [32]byte
	if d.opts.WatchInterval > 0 && d.opts.ConfigPath != "" {
		last, _ = fileSum(d.opts.ConfigPath)
		t := time.NewTicker(d.opts.WatchInterval)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.opts.Reload:
			d.reload("SIGHUP")
			last, _ = fileSum(d.opts.ConfigPath)
		case <-poll:
			sum, err := fileSum(d.opts.ConfigPath)
			if err == nil && sum != last {
				last = sum
				d.reload("config file changed")
			}
		}
	}
}

func fileSum(path string) ([32]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// reload re-reads and re-validates the whole file. An invalid file changes
// nothing. A valid one is applied camera by camera: only cameras whose
// capture settings changed are restarted, labels whose prompts changed are
// re-embedded, the rules keep the state of every camera × label that stays,
// Home Assistant discovery is re-announced. Sections that cannot change
// while running (model, inference, sink, mqtt, http, state_dir) keep their
// running values and the log says a restart is needed.
func (d *daemon) reload(reason string) error {
	path := d.opts.ConfigPath
	cfg, err := configs.Load(path)
	if err != nil {
		var errs configs.Errors
		lines := []string{err.Error()}
		problems := 1
		if errors.As(err, &errs) {
			lines, problems = errs.Lines(), len(errs)
		}
		d.log.Error("config reload rejected; the running config stays", "reason", reason, "file", path, "problems", problems, "errors", lines)
		d.metrics.reloads.WithLabelValues("rejected").Inc()
		return err
	}

	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()
	var needRestart []string
	for _, s := range []struct {
		name     string
		old, new any
	}{
		{"model", &old.Model, &cfg.Model}, {"inference", &old.Inference, &cfg.Inference}, {"sink", &old.Sink, &cfg.Sink},
		{"mqtt", &old.MQTT, &cfg.MQTT}, {"http", &old.HTTP, &cfg.HTTP}, {"state_dir", &old.StateDir, &cfg.StateDir},
	} {
		if !reflect.DeepEqual(s.old, s.new) {
			needRestart = append(needRestart, s.name)
			reflect.ValueOf(s.new).Elem().Set(reflect.ValueOf(s.old).Elem()) // keep what is running
		}
	}

	// Embed new and changed labels first: if that fails, nothing changes.
	oldCams := map[string]configs.Camera{}
	for _, c := range old.Cameras {
		oldCams[c.Name] = c
	}
	newSets := map[string]*infer.LabelSet{}
	for _, c := range cfg.Cameras {
		if o, ok := oldCams[c.Name]; ok && slices.EqualFunc(inferLabels(o), inferLabels(c), labelEqual) {
			continue
		}
		set, err := d.model.EmbedLabels(inferLabels(c))
		if err != nil {
			d.log.Error("config reload rejected; the running config stays", "reason", reason, "file", path, "camera", c.Name, "err", err)
			d.metrics.reloads.WithLabelValues("rejected").Inc()
			return err
		}
		newSets[c.Name] = set
	}

	var added, removed, restarted, relabelled []string
	d.mu.Lock()
	newNames := map[string]bool{}
	for _, c := range cfg.Cameras {
		newNames[c.Name] = true
	}
	for _, c := range old.Cameras {
		if !newNames[c.Name] {
			d.stopCamera(c.Name)
			d.sets.set(c.Name, nil)
			d.live.forget(c.Name)
			removed = append(removed, c.Name)
		}
	}
	for _, c := range cfg.Cameras {
		if set, ok := newSets[c.Name]; ok {
			d.sets.set(c.Name, set)
		}
		o, existed := oldCams[c.Name]
		switch {
		case !existed:
			if err := d.startCamera(c); err != nil {
				d.log.Error("reload: camera not started", "camera", c.Name, "err", err)
				continue
			}
			added = append(added, c.Name)
		case !captureEqual(o, c):
			d.stopCamera(c.Name)
			if err := d.startCamera(c); err != nil {
				d.log.Error("reload: camera not restarted", "camera", c.Name, "err", err)
				continue
			}
			restarted = append(restarted, c.Name)
		default:
			if run, ok := d.cameras[c.Name]; ok {
				run.cfg = c
			}
			if _, ok := newSets[c.Name]; ok {
				relabelled = append(relabelled, c.Name)
			}
		}
	}
	d.cfg = cfg
	d.mu.Unlock()
	d.forgetMetrics(old, cfg)

	d.updateRules(rulesFor(cfg))
	d.sink.Announce(publishCameras(cfg))
	d.metrics.reloads.WithLabelValues("applied").Inc()
	d.log.Info("config reloaded", "reason", reason, "file", path, "added", added, "removed", removed,
		"restarted", restarted, "labels_changed", relabelled)
	if len(needRestart) > 0 {
		d.log.Warn("these config sections changed but only apply after a restart; running values kept", "sections", needRestart)
	}
	return nil
}

// updateRules hands the rules loop its new rules and waits until applied.
func (d *daemon) updateRules(r []rules.Rule) {
	u := ruleUpdate{rules: r, done: make(chan struct{})}
	select {
	case d.ruleUpdates <- u:
		<-u.done
	case <-time.After(5 * time.Second):
		d.log.Error("rules loop did not take the new rules within 5s")
	}
}

func labelEqual(a, b infer.Label) bool {
	return a.Name == b.Name && slices.Equal(a.Prompts, b.Prompts)
}

// captureEqual reports whether two camera configs capture the same way
// (labels and thresholds aside), so the camera can keep running.
func captureEqual(a, b configs.Camera) bool {
	crop := func(r *configs.Region) string {
		if r == nil {
			return ""
		}
		return fmt.Sprintf("%+v", *r)
	}
	return a.URL == b.URL && a.FPS == b.FPS && a.ReadTimeout == b.ReadTimeout && a.OpenTimeout == b.OpenTimeout && a.RTSPTransport == b.RTSPTransport &&
		a.Loop == b.Loop && crop(a.Crop) == crop(b.Crop)
}

// forgetMetrics drops the per-label series of cameras and labels that are
// gone, so a dashboard does not show their last probability forever.
func (d *daemon) forgetMetrics(old, cfg *configs.Config) {
	kept := map[[2]string]bool{}
	for _, c := range cfg.Cameras {
		for _, l := range c.Labels {
			kept[[2]string{c.Name, l.Name}] = true
		}
	}
	for _, c := range old.Cameras {
		for _, l := range c.Labels {
			if !kept[[2]string{c.Name, l.Name}] {
				d.metrics.probability.DeleteLabelValues(c.Name, l.Name)
			}
		}
	}
}
