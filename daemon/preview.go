package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/calibrate"
	"github.com/siglipd/siglipd/daemon/framestore"
	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/rules"
)

// "Try a label": a label's prompts are embedded, each stored frame of its
// camera is scored from its stored embedding by the model's own Score (so
// the probability is the one the frame would have had live), and the
// frames go through a rules.Machine of that one rule — the code the live
// rules run — in stored order.

// addedFromRequest is the label a request describes, with the config's
// label_defaults for what it leaves out.
func addedFromRequest(cfg *configs.Config, req httpapi.LabelRequest) AddedLabel {
	d := cfg.Defaults
	a := AddedLabel{Camera: req.Camera, Name: strings.TrimSpace(req.Label), Threshold: d.Threshold, MinFrames: d.MinFrames,
		OffFrames: d.OffFrames, OffDelay: d.OffDelay, Cooldown: d.Cooldown, OffThreshold: req.OffThreshold}
	for _, p := range req.Prompts {
		if p = strings.TrimSpace(p); p != "" {
			a.Prompts = append(a.Prompts, p)
		}
	}
	if req.Threshold != nil {
		a.Threshold = *req.Threshold
	}
	if req.MinFrames != nil {
		a.MinFrames = *req.MinFrames
	}
	if req.OffFrames != nil {
		a.OffFrames = *req.OffFrames
	}
	if req.OffDelay != nil {
		a.OffDelay = *req.OffDelay
	}
	if req.Cooldown != nil {
		a.Cooldown = *req.Cooldown
	}
	return a
}

// previewName is the name a preview's label runs under when it has none,
// and when the camera has a label of its name already: a preview may try
// new prompts for a label that exists.
const previewName = "preview"

func (a framesAPI) Preview(req httpapi.LabelRequest, since time.Time) (httpapi.Preview, error) {
	d, s := a.d, a.d.frames
	cfg := d.config()
	l := addedFromRequest(cfg, req)
	if !slices.ContainsFunc(cfg.Cameras, func(c configs.Camera) bool { return c.Name == l.Camera }) {
		return httpapi.Preview{}, fmt.Errorf("%w: no camera %q", calibrate.ErrNotFound, l.Camera)
	}
	check := l
	if check.Name == "" {
		l.Name, check.Name = previewName, previewName
	}
	if _, ok := findLabel(cfg, l.Camera, check.Name); ok {
		check.Name += " (preview)" // checked as a new label; named as asked
	}
	if err := checkAdded(cfg, check); err != nil {
		return httpapi.Preview{}, err
	}
	label := l.label()
	set, err := d.model.EmbedLabels([]infer.Label{{Name: label.Name, Prompts: label.EffectivePrompts()}})
	if err != nil {
		return httpapi.Preview{}, fmt.Errorf("embedding the prompts: %w", err)
	}
	rule := rules.Rule{Camera: l.Camera, Label: label.Name, Prompts: label.EffectivePrompts(), Threshold: label.Threshold,
		OffThreshold: label.EffectiveOffThreshold(), MinFrames: label.MinFrames, OffFrames: label.OffFrames,
		OffDelay: label.OffDelay.D(), Cooldown: label.Cooldown.D(), Slug: kit.Slug(label.Name)}
	m := rules.New([]rules.Rule{rule})
	// Stored frames of a quiet scene are store.every apart; a longer gap
	// is the camera away, which ends an event live (the quiet timeout).
	m.QuietTimeout = max(rules.DefaultQuietTimeout, 2*cfg.Store.Every.D()+time.Second)
	out := httpapi.Preview{Camera: l.Camera, Label: label.Name, Prompts: label.EffectivePrompts(), Threshold: rule.Threshold,
		OffThreshold: rule.OffThreshold, MinFrames: max(1, rule.MinFrames), OffFrames: max(1, rule.OffFrames),
		OffDelay: rule.OffDelay.String(), Cooldown: rule.Cooldown.String(), Since: since,
		Frames: []httpapi.PreviewFrame{}, Events: []httpapi.PreviewEvent{}}
	var open *httpapi.PreviewEvent
	best := 0.0
	observe := func(evs []rules.Event) {
		for _, ev := range evs {
			switch ev.Type {
			case rules.TypeStart:
				out.Events = append(out.Events, httpapi.PreviewEvent{Start: ev.StartTime})
				open, best = &out.Events[len(out.Events)-1], -1
			case rules.TypeEnd:
				if open != nil {
					end := *ev.EndTime
					open.End, open.TopScore = &end, ev.TopScore
					open = nil
				}
			}
		}
	}
	err = s.Embeddings(l.Camera, since, time.Time{}, func(f framestore.Frame, emb []float32) error {
		p := float64(d.model.Score(emb, set)[0])
		out.Frames = append(out.Frames, httpapi.PreviewFrame{ID: f.ID.String(), Time: f.Time, Probability: p})
		observe(m.Tick(f.Time))
		observe(m.Observe(l.Camera, f.Time, map[string]float64{label.Name: p}))
		if open != nil {
			open.TopScore = max(open.TopScore, p)
			if p > best {
				best = p
				open.Best = httpapi.Hit{ID: f.ID.String(), Camera: f.Camera, Time: f.Time, Reason: f.Reason.String(),
					Probability: &p, Thumbnail: "/api/frames/" + f.ID.String() + "/thumbnail.jpg"}
			}
		}
		return nil
	})
	if err != nil {
		return httpapi.Preview{}, err
	}
	st := s.Stats()
	out.Loading = st.Loading
	out.OtherModel = st.Frames - st.Searchable
	return out, nil
}

// labelsAPI is the daemon as package httpapi's Labels sees it.
type labelsAPI struct{ d *daemon }

var _ httpapi.Labels = labelsAPI{}

func (a labelsAPI) AddLabel(ctx context.Context, req httpapi.LabelRequest) (configs.Label, error) {
	l := addedFromRequest(a.d.config(), req)
	if l.Name == "" {
		return configs.Label{}, configs.Errors{{Path: "label", Msg: "must not be empty"}}
	}
	added, err := a.d.addLabel(ctx, l)
	if err != nil {
		return configs.Label{}, err
	}
	if now, ok := findLabel(a.d.config(), added.Camera, added.Name); ok {
		return *now, nil
	}
	return added.label(), nil
}

func (a labelsAPI) RemoveLabel(ctx context.Context, camera, label string) error {
	return a.d.RemoveLabel(ctx, camera, label)
}

// markStored is a mark of a stored frame: its probability for the label
// as configured now, computed from its stored embedding, its time and its
// thumbnail.
func (d *daemon) markStored(camera, label, frame string) (p float64, at time.Time, emb []float32, jpeg []byte, err error) {
	if d.frames == nil {
		return 0, at, nil, nil, fmt.Errorf("%w: the frame store is off", calibrate.ErrNotFound)
	}
	id, err := framestore.ParseID(frame)
	if err != nil {
		return 0, at, nil, nil, fmt.Errorf("%w: %v", calibrate.ErrNotFound, err)
	}
	st, err := d.frames.Get(id)
	if err != nil {
		return 0, at, nil, nil, fmt.Errorf("%w: stored frame %s: %v", calibrate.ErrNotFound, frame, err)
	}
	if st.Camera != camera {
		return 0, at, nil, nil, fmt.Errorf("%w: stored frame %s is of camera %q, not %q", calibrate.ErrConflict, frame, st.Camera, camera)
	}
	set, _ := d.sets.get(camera)
	i := -1
	if set != nil {
		i = slices.Index(set.Names, label)
	}
	if i < 0 {
		return 0, at, nil, nil, errNoLabel(camera, label)
	}
	jpeg, err = d.frames.Thumbnail(id)
	if err != nil {
		return 0, at, nil, nil, fmt.Errorf("%w: stored frame %s: %v", calibrate.ErrNotFound, frame, err)
	}
	return float64(d.model.Score(st.Embedding, set)[i]), st.Time, st.Embedding, jpeg, nil
}
