package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/siglipd/siglipd/daemon/calibrate"
)

// Calibration is /api/calibration: a label's marks, the threshold they
// suggest, a Platt recalibration fitted to them, and what is in force.
type Calibration struct {
	Camera          string       `json:"camera"`
	Label           string       `json:"label"`
	Threshold       float64      `json:"threshold"`        // in force
	ConfigThreshold float64      `json:"config_threshold"` // the file's
	Pinned          bool         `json:"pinned"`           // pin_threshold: applied thresholds do not apply
	Applied         *AppliedInfo `json:"applied"`          // null: none
	Marks           []MarkInfo   `json:"marks"`
	Suggestion      *Suggestion  `json:"suggestion"` // null: needs a yes and a no mark
	Platt           *PlattInfo   `json:"platt"`      // null: needs 3 of each
}

// AppliedInfo is a threshold applied from marks.
type AppliedInfo struct {
	Threshold float64   `json:"threshold"`
	At        time.Time `json:"at"`
	Marks     int       `json:"marks"`
}

// MarkInfo is one mark.
type MarkInfo struct {
	ID    string    `json:"id"`
	Yes   bool      `json:"yes"`
	Score float64   `json:"score"`
	Time  time.Time `json:"time"`
	// PromptScores is the frame's probability for each of the label's
	// prompts on its own (when the label has several): which prompt
	// separates the marks, when their average does not.
	PromptScores map[string]float64 `json:"prompt_scores,omitempty"`
}

// Suggestion is the threshold that separates the yes marks from the no
// marks with the widest margin in logits.
type Suggestion struct {
	Yes       int     `json:"yes_marks"`
	No        int     `json:"no_marks"`
	Separable bool    `json:"separable"`           // every yes scores above every no
	Threshold float64 `json:"threshold,omitempty"` // when separable
	Margin    float64 `json:"margin"`              // in logits: half the gap (separable), or the overlap
	LowestYes float64 `json:"lowest_yes"`
	HighestNo float64 `json:"highest_no"`
}

// PlattInfo is p' = sigmoid(a·logit(p) + b) fitted to the marks, with the
// marks' scores before and after it (in the order of Marks).
type PlattInfo struct {
	A      float64   `json:"a"`
	B      float64   `json:"b"`
	Before []float64 `json:"before"`
	After  []float64 `json:"after"`
}

// calibrationJSON is a report as /api/calibration answers it.
func calibrationJSON(r calibrate.Report) Calibration {
	c := Calibration{Camera: r.Camera, Label: r.Label.Label, Threshold: r.Threshold, ConfigThreshold: r.ConfigThreshold,
		Pinned: r.Pinned, Marks: make([]MarkInfo, 0, len(r.Marks))}
	if a := r.Applied; a != nil {
		c.Applied = &AppliedInfo{Threshold: a.Threshold, At: a.At, Marks: a.Marks}
	}
	for _, m := range r.Marks {
		c.Marks = append(c.Marks, MarkInfo{ID: m.ID, Yes: m.Yes, Score: m.Score, Time: m.Time, PromptScores: m.PromptScores})
	}
	if s := r.Suggestion; s != nil {
		c.Suggestion = &Suggestion{Yes: s.Yes, No: s.No, Separable: s.Separable, Threshold: s.Threshold, Margin: s.Margin,
			LowestYes: s.LowestYes, HighestNo: s.HighestNo}
	}
	if p := r.Platt; p != nil {
		c.Platt = &PlattInfo{A: p.A, B: p.B, Before: p.Before, After: p.After}
	}
	return c
}

// Calibrator is the part of the daemon that marks frames and applies
// thresholds. Its errors wrap calibrate's ErrNotFound, ErrConflict or
// ErrUnavailable to say what kind they are.
type Calibrator interface {
	// Mark records a verdict on the camera's last scored frame, or, when
	// frame is not "", on that stored frame (the frame store's id).
	Mark(ctx context.Context, camera, label string, yes bool, frame string) (calibrate.Mark, error)
	DeleteMark(ctx context.Context, id string) error
	MarkJPEG(id string) (path string, err error)
	Calibration(camera, label string) (calibrate.Report, error)
	ApplyCalibration(ctx context.Context, camera, label string, apply bool) (calibrate.Report, error)
}

// sameOrigin refuses a state-changing request another web site's page
// could make: its body must be JSON (which a cross-site page cannot send
// without a CORS preflight, which this server never grants) and its Origin,
// when the browser sends one, must be this server.
func sameOrigin(w http.ResponseWriter, r *http.Request) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); r.Method != http.MethodDelete && mt != "application/json" {
		http.Error(w, "send the body as application/json", http.StatusUnsupportedMediaType)
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			http.Error(w, fmt.Sprintf("origin %q is not this server", o), http.StatusForbidden)
			return false
		}
	}
	return true
}

func (a *api) fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, calibrate.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, calibrate.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, calibrate.ErrUnavailable):
		code = http.StatusServiceUnavailable
	}
	http.Error(w, err.Error(), code)
}

// handleMark is POST /api/marks {"camera", "label", "yes"[, "frame"]}: the
// camera's last scored frame (or the stored frame) shows the label (yes)
// or not.
func (a *api) handleMark(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(w, r) {
		return
	}
	var req struct {
		Camera string `json:"camera"`
		Label  string `json:"label"`
		Yes    *bool  `json:"yes"`
		Frame  string `json:"frame"` // a stored frame's id; "" for the live frame
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.Yes == nil {
		http.Error(w, `want {"camera": "...", "label": "...", "yes": true|false[, "frame": "<stored frame id>"]}`, http.StatusBadRequest)
		return
	}
	m, err := a.Calibrator.Mark(r.Context(), req.Camera, req.Label, *req.Yes, req.Frame)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, MarkInfo{ID: m.ID, Yes: m.Yes, Score: m.Score, Time: m.Time})
}

func (a *api) handleDeleteMark(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(w, r) {
		return
	}
	if err := a.Calibrator.DeleteMark(r.Context(), r.PathValue("id")); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) handleMarkJPEG(w http.ResponseWriter, r *http.Request) {
	path, err := a.Calibrator.MarkJPEG(r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	http.ServeFile(w, r, path)
}

func (a *api) handleCalibration(w http.ResponseWriter, r *http.Request) {
	c, err := a.Calibrator.Calibration(r.URL.Query().Get("camera"), r.URL.Query().Get("label"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, calibrationJSON(c))
}

// handleApply is POST /api/calibration {"camera", "label", "apply"}: apply
// the suggested threshold (true) or return to the config's (false).
func (a *api) handleApply(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(w, r) {
		return
	}
	var req struct {
		Camera string `json:"camera"`
		Label  string `json:"label"`
		Apply  *bool  `json:"apply"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.Apply == nil {
		http.Error(w, `want {"camera": "...", "label": "...", "apply": true|false}`, http.StatusBadRequest)
		return
	}
	c, err := a.Calibrator.ApplyCalibration(r.Context(), req.Camera, req.Label, *req.Apply)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, calibrationJSON(c))
}
