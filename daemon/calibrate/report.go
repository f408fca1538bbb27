package calibrate

import "errors"

// The kinds of failure a calibration request can meet, wrapped by the
// daemon's errors so that a caller (HTTP) can answer by kind without
// parsing text.
var (
	// ErrNotFound: no such camera, label or mark, or no scored frame yet.
	ErrNotFound = errors.New("not found")
	// ErrConflict: not possible with the marks there are (they suggest no
	// threshold).
	ErrConflict = errors.New("not possible now")
	// ErrUnavailable: no calibration (its folder could not be opened),
	// siglipd is stopping, or the state folder cannot be written (a full
	// or read-only disk): nothing was changed, and trying again once the
	// disk works will do.
	ErrUnavailable = errors.New("unavailable")
)

// Label is what a Report needs to know of a label besides its marks.
type Label struct {
	Camera, Label   string
	Prompts         []string // the label's prompts in the config file
	Threshold       float64  // in force
	ConfigThreshold float64  // the config file's
	Pinned          bool     // pin_threshold: applied thresholds do not apply
}

// ScoredMark is a mark with its frame's probability for each of the
// label's prompts on its own (when the label has several): which prompt
// separates the marks, when their average does not.
type ScoredMark struct {
	Mark
	PromptScores map[string]float64
}

// PlattFit is a Platt recalibration fitted to a label's marks, with the
// marks' scores before and after it (in the order of the Report's Marks).
type PlattFit struct {
	Platt
	Before, After []float64
}

// Report is a label's calibration: its marks (made with its current
// prompts), the threshold they suggest, a Platt fit, and what is applied.
type Report struct {
	Label
	Applied    *Applied // nil: none
	Marks      []ScoredMark
	Suggestion *Suggestion // nil: it needs a yes and a no mark
	Platt      *PlattFit   // nil: it needs MinPlattMarks of each
}

// Report assembles l's calibration from the store. perPrompt, when not
// nil, scores a mark's embedding against each of the label's prompts.
func (s *Store) Report(l Label, perPrompt func(embedding []float32) map[string]float64) Report {
	r := Report{Label: l, Marks: []ScoredMark{}}
	if a, ok := s.Applied(l.Camera, l.Label); ok {
		r.Applied = &a
	}
	var yes, no []float64
	for _, m := range s.Marks(l.Camera, l.Label, l.Prompts) {
		sm := ScoredMark{Mark: m}
		if perPrompt != nil {
			sm.PromptScores = perPrompt(m.Embedding)
		}
		r.Marks = append(r.Marks, sm)
		if m.Yes {
			yes = append(yes, m.Score)
		} else {
			no = append(no, m.Score)
		}
	}
	if sg, ok := Suggest(yes, no); ok {
		r.Suggestion = &sg
	}
	if p, ok := FitPlatt(yes, no); ok {
		fit := &PlattFit{Platt: p}
		for _, m := range r.Marks {
			fit.Before = append(fit.Before, m.Score)
			fit.After = append(fit.After, p.Apply(m.Score))
		}
		r.Platt = fit
	}
	return r
}
