package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/siglipd/siglipd/configs"
)

// LabelRequest is a label to try on the stored frames (POST /api/preview)
// or to add (POST /api/labels): a camera, a name, prompts and the rule
// settings, each absent one taken from the config's label_defaults.
type LabelRequest struct {
	Camera       string            `json:"camera"`
	Label        string            `json:"label"`
	Prompts      []string          `json:"prompts"`
	Threshold    *float64          `json:"threshold"`
	OffThreshold *float64          `json:"off_threshold"`
	MinFrames    *int              `json:"min_frames"`
	OffFrames    *int              `json:"off_frames"`
	OffDelay     *configs.Duration `json:"off_delay"`
	Cooldown     *configs.Duration `json:"cooldown"`
	// Since is how far back a preview looks: a duration ("24h"), an RFC
	// 3339 time or Unix milliseconds, as /api/history's; default 24h.
	Since string `json:"since,omitempty"`
}

// Labels adds labels from the page, and takes them away again. Errors
// wrap calibrate's kinds, or are configs.Errors (a setting out of range:
// 400, naming the setting).
type Labels interface {
	AddLabel(ctx context.Context, req LabelRequest) (configs.Label, error)
	RemoveLabel(ctx context.Context, camera, label string) error
}

// Preview is /api/preview's body: what a label would have done on the
// stored frames of its camera — each frame's probability, computed from
// its stored embedding exactly as it would have been live, and the events
// the rules (the same code the live ones run) would have made.
type Preview struct {
	Camera       string         `json:"camera"`
	Label        string         `json:"label"`
	Prompts      []string       `json:"prompts"`
	Threshold    float64        `json:"threshold"`
	OffThreshold float64        `json:"off_threshold"`
	MinFrames    int            `json:"min_frames"`
	OffFrames    int            `json:"off_frames"`
	OffDelay     string         `json:"off_delay"`
	Cooldown     string         `json:"cooldown"`
	Since        time.Time      `json:"since"`
	Frames       []PreviewFrame `json:"frames"`
	Events       []PreviewEvent `json:"events"`
	OtherModel   int            `json:"other_model"` // stored frames another model embedded, left out
	Loading      bool           `json:"loading"`
	TookMS       float64        `json:"took_ms"`
}

// PreviewFrame is a stored frame and the label's probability on it.
type PreviewFrame struct {
	ID          string    `json:"id"`
	Time        time.Time `json:"time"`
	Probability float64   `json:"probability"`
}

// PreviewEvent is an event the label would have had.
type PreviewEvent struct {
	Start    time.Time  `json:"start"`
	End      *time.Time `json:"end"` // null: still on at the last stored frame
	TopScore float64    `json:"top_score"`
	Best     Hit        `json:"best"` // the event's highest-probability frame
}

func (a *api) handlePreview(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(w, r) {
		return
	}
	start := time.Now()
	req, ok := readLabelRequest(w, r)
	if !ok {
		return
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	s := req.Since
	if s == "" {
		s = "24h"
	}
	since, err := parseSince(s, now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p, err := a.Frames.Preview(req, since)
	if err != nil {
		a.labelError(w, err)
		return
	}
	p.TookMS = float64(time.Since(start).Microseconds()) / 1000
	writeJSON(w, http.StatusOK, p)
}

func (a *api) handleAddLabel(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(w, r) {
		return
	}
	req, ok := readLabelRequest(w, r)
	if !ok {
		return
	}
	l, err := a.Labels.AddLabel(r.Context(), req)
	if err != nil {
		a.labelError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, Label{Name: l.Name, Threshold: l.Threshold, OffThreshold: l.EffectiveOffThreshold(), Added: true})
}

func (a *api) handleRemoveLabel(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(w, r) {
		return
	}
	if err := a.Labels.RemoveLabel(r.Context(), r.PathValue("camera"), r.PathValue("label")); err != nil {
		a.labelError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func readLabelRequest(w http.ResponseWriter, r *http.Request) (LabelRequest, bool) {
	var req LabelRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "want {\"camera\", \"label\", \"prompts\": [...], \"threshold\", ...}: "+err.Error(), http.StatusBadRequest)
		return req, false
	}
	return req, true
}

func (a *api) labelError(w http.ResponseWriter, err error) {
	var errs configs.Errors
	if errors.As(err, &errs) {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.fail(w, err)
}
