package daemon

import (
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/publish"
	"github.com/siglipd/siglipd/rules"
)

// reloadPlan is what it takes to go from the running config to a new one.
// diff computes it without touching anything, so each kind of change is a
// table test (plan_test.go); apply (changes.go) carries it out.
type reloadPlan struct {
	// cfg is the config to run: the new one, except that the sections in
	// restartOnly keep their running values.
	cfg *configs.Config
	// restartOnly names the sections that changed but apply only when the
	// process restarts (the model, its session, the sink, the HTTP server,
	// the state folder).
	restartOnly []string

	stop    []string         // cameras removed
	start   []configs.Camera // cameras added
	restart []configs.Camera // cameras whose capture settings changed
	// embed are the cameras whose labels need new text embeddings: added
	// ones, and those whose label names or prompts changed.
	embed []configs.Camera
	// gate are the cameras whose change gate (skip_unchanged) is new or
	// changed: the batcher applies it from the next frame.
	gate []configs.Camera

	// rules are the new rules and quiet timeout; nil rules when neither changed.
	rules        []rules.Rule
	quietTimeout time.Duration
	// announce is what the sink tells Home Assistant; nil when unchanged.
	announce []publish.Camera
}

// restartOnlySections are the config sections a reload cannot change.
var restartOnlySections = []string{"state_dir", "model", "inference", "sink", "mqtt", "http", "store"}

// empty reports whether the plan changes nothing that runs.
func (p reloadPlan) empty() bool {
	return len(p.stop)+len(p.start)+len(p.restart)+len(p.embed)+len(p.gate) == 0 && p.rules == nil && p.announce == nil
}

// diff plans the change from old to new. Neither is modified.
func diff(old, new *configs.Config) reloadPlan {
	cfg := *new
	p := reloadPlan{cfg: &cfg}
	for _, s := range []struct {
		name     string
		old, new any
	}{
		{"state_dir", &old.StateDir, &cfg.StateDir}, {"model", &old.Model, &cfg.Model},
		{"inference", &old.Inference, &cfg.Inference}, {"sink", &old.Sink, &cfg.Sink},
		{"mqtt", &old.MQTT, &cfg.MQTT}, {"http", &old.HTTP, &cfg.HTTP}, {"store", &old.Store, &cfg.Store},
	} {
		if !reflect.DeepEqual(s.old, s.new) {
			p.restartOnly = append(p.restartOnly, s.name)
			reflect.ValueOf(s.new).Elem().Set(reflect.ValueOf(s.old).Elem()) // keep what runs
		}
	}

	was := map[string]configs.Camera{}
	for _, c := range old.Cameras {
		was[c.Name] = c
	}
	is := map[string]bool{}
	for _, c := range cfg.Cameras {
		is[c.Name] = true
		o, existed := was[c.Name]
		switch {
		case !existed:
			p.start = append(p.start, c)
		case !captureEqual(o, c):
			p.restart = append(p.restart, c)
		}
		if !existed || !slices.EqualFunc(inferLabels(o), inferLabels(c), labelEqual) {
			p.embed = append(p.embed, c)
		}
		if !existed || o.SkipUnchanged != c.SkipUnchanged {
			p.gate = append(p.gate, c)
		}
	}
	for _, c := range old.Cameras {
		if !is[c.Name] {
			p.stop = append(p.stop, c.Name)
		}
	}

	if r, q := rulesFor(&cfg), quietTimeout(&cfg); !reflect.DeepEqual(r, rulesFor(old)) || q != quietTimeout(old) {
		p.rules, p.quietTimeout = r, q
		if p.rules == nil {
			p.rules = []rules.Rule{} // no labels left: still a change
		}
	}
	if a := publishCameras(&cfg); !reflect.DeepEqual(a, publishCameras(old)) {
		p.announce = a
	}
	return p
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
	return a.URL == b.URL && a.FPS == b.FPS && a.ReadTimeout == b.ReadTimeout && a.OpenTimeout == b.OpenTimeout &&
		a.RTSPTransport == b.RTSPTransport && a.Decode == b.Decode && a.HWAccel == b.HWAccel && a.Loop == b.Loop && crop(a.Crop) == crop(b.Crop) &&
		a.Format == b.Format && a.Width == b.Width && a.Height == b.Height && a.FrameRate == b.FrameRate
}
