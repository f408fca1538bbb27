// Package calibrate turns a user's verdicts on frames into thresholds: a
// mark says "this frame shows the label" (yes) or "it does not" (no), with
// the probability the model gave the frame; from a label's marks Suggest
// finds the threshold that separates them with the widest margin (or says
// that no threshold can), and FitPlatt fits a recalibration of the logit.
// A threshold the user applies is kept in the state folder's calibration
// file, which the daemon reads at start: the user's YAML stays theirs.
//
// Contract: a Store has one writer: Add, Delete, Apply and Clear are
// called by one goroutine at a time (the daemon's change loop), and write
// the state folder (marks.jsonl, one JPEG per mark, calibration.json)
// before they return, without holding the lock that readers (Marks,
// Applied, Report, JPEG) take, so a slow disk never stalls a reader. A
// write that fails (a full or read-only disk) changes nothing, neither in
// memory nor on disk, and returns an error that wraps ErrUnavailable.
// Suggest and FitPlatt are pure.
package calibrate

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
)

// Mark is a user's verdict on one frame of a camera for one label.
type Mark struct {
	ID     string    `json:"id"`
	Camera string    `json:"camera"`
	Label  string    `json:"label"`
	Yes    bool      `json:"yes"`   // the label is in the frame
	Score  float64   `json:"score"` // the model's probability for it
	Time   time.Time `json:"time"`  // the frame's time
	// Prompts are the label's prompts when it was marked: a score is only
	// comparable with scores of the same prompts.
	Prompts []string `json:"prompts"`
	// Embedding is the frame's unit-length image embedding (nil when none
	// was at hand): the frame as the model saw it, for recalibrations that
	// need more than the score.
	Embedding []float32 `json:"embedding,omitempty"`
}

// Applied is a threshold the user applied to a label.
type Applied struct {
	Threshold float64   `json:"threshold"`
	At        time.Time `json:"at"`
	Marks     int       `json:"marks"` // how many marks it came from
	// Prompts are the label's prompts it was made for: with other prompts
	// the scores change, and the threshold no longer holds.
	Prompts []string `json:"prompts"`
}

type key struct{ Camera, Label string }

// Store keeps marks and applied thresholds in a folder.
type Store struct {
	dir string

	mu      sync.Mutex
	marks   []Mark
	applied map[key]Applied
}

const (
	marksFile       = "marks.jsonl"
	calibrationFile = "calibration.json"
)

// Open reads the marks and applied thresholds in dir (creating it).
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("calibration folder %s: %w", dir, errors.Unwrap(err))
	}
	s := &Store{dir: dir, applied: map[key]Applied{}}
	if err := s.readMarks(); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, calibrationFile))
	if err == nil {
		var list []struct {
			Camera, Label string
			Applied
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, calibrationFile), err)
		}
		for _, a := range list {
			s.applied[key{a.Camera, a.Label}] = a.Applied
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return s, nil
}

// readMarks reads marks.jsonl. A last line without its newline is what a
// crash in the middle of an append leaves: it is dropped, and cut from the
// file so that the next append starts a line of its own.
func (s *Store) readMarks() error {
	path := filepath.Join(s.dir, marksFile)
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	if end := bytes.LastIndexByte(raw, '\n') + 1; end < len(raw) {
		raw = raw[:end]
		os.Truncate(path, int64(end)) // failing, the next append fails too
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var m Mark
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("%s line %d: %w", path, n, err)
		}
		s.marks = append(s.marks, m)
	}
	return sc.Err()
}

// notSaved is the error of a write that failed: nothing changed.
func notSaved(what string, err error) error {
	return fmt.Errorf("%w: %s cannot be saved, so nothing changed (the state folder: %w)", ErrUnavailable, what, err)
}

// Add stores a mark and its frame's JPEG, and returns it with its id.
func (s *Store) Add(m Mark, jpeg []byte) (Mark, error) {
	id := make([]byte, 8)
	rand.Read(id)
	m.ID = hex.EncodeToString(id)
	jpegPath := filepath.Join(s.dir, m.ID+".jpg")
	if len(jpeg) > 0 {
		if err := kit.WriteFile(jpegPath, jpeg, 0o644, false); err != nil {
			return Mark{}, notSaved("the mark", err)
		}
	}
	line, _ := json.Marshal(m)
	if err := appendLine(filepath.Join(s.dir, marksFile), append(line, '\n')); err != nil {
		os.Remove(jpegPath)
		return Mark{}, notSaved("the mark", err)
	}
	s.mu.Lock()
	s.marks = append(s.marks, m)
	s.mu.Unlock()
	return m, nil
}

// appendLine appends line to the file at path, all of it or nothing: a
// write cut short (a disk that fills up in the middle of it) is cut back
// off, so the file never ends in half a line.
func appendLine(path string, line []byte) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", path, kit.UnwrapPath(err))
	}
	st, err := f.Stat()
	if err == nil {
		if _, err = f.Write(line); err != nil {
			f.Truncate(st.Size())
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, kit.UnwrapPath(err))
	}
	return nil
}

// Delete removes a mark (a wrong click).
func (s *Store) Delete(id string) error {
	s.mu.Lock()
	marks := s.marks
	s.mu.Unlock()
	i := slices.IndexFunc(marks, func(m Mark) bool { return m.ID == id })
	if i < 0 {
		return fs.ErrNotExist
	}
	kept := slices.Delete(slices.Clone(marks), i, i+1)
	var buf bytes.Buffer
	for _, m := range kept {
		line, _ := json.Marshal(m)
		buf.Write(append(line, '\n'))
	}
	if err := kit.WriteFile(filepath.Join(s.dir, marksFile), buf.Bytes(), 0o644, false); err != nil {
		return notSaved("the deletion", err)
	}
	s.mu.Lock()
	s.marks = kept
	s.mu.Unlock()
	os.Remove(filepath.Join(s.dir, id+".jpg"))
	return nil
}

// Marks returns a label's marks made with the given prompts, oldest first.
func (s *Store) Marks(camera, label string, prompts []string) []Mark {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Mark
	for _, m := range s.marks {
		if m.Camera == camera && m.Label == label && slices.Equal(m.Prompts, prompts) {
			out = append(out, m)
		}
	}
	return out
}

// JPEG is the path of a mark's frame; "" for an id that is not one (ids
// are 16 hex digits, so a path can never leave the folder).
func (s *Store) JPEG(id string) string {
	if _, err := hex.DecodeString(id); err != nil || len(id) != 16 {
		return ""
	}
	return filepath.Join(s.dir, id+".jpg")
}

// Apply records a threshold for a label.
func (s *Store) Apply(camera, label string, a Applied) error {
	return s.change(func(m map[key]Applied) { m[key{camera, label}] = a })
}

// Clear forgets a label's applied threshold.
func (s *Store) Clear(camera, label string) error {
	return s.change(func(m map[key]Applied) { delete(m, key{camera, label}) })
}

// change writes the applied thresholds as fn changes them, then keeps them.
func (s *Store) change(fn func(map[key]Applied)) error {
	s.mu.Lock()
	applied := maps.Clone(s.applied)
	s.mu.Unlock()
	fn(applied)
	type entry struct {
		Camera string `json:"camera"`
		Label  string `json:"label"`
		Applied
	}
	var list []entry
	for k, a := range applied {
		list = append(list, entry{k.Camera, k.Label, a})
	}
	slices.SortFunc(list, func(a, b entry) int {
		return cmp.Or(strings.Compare(a.Camera, b.Camera), strings.Compare(a.Label, b.Label))
	})
	b, _ := json.MarshalIndent(list, "", "  ")
	if err := kit.WriteFile(filepath.Join(s.dir, calibrationFile), b, 0o644, false); err != nil {
		return notSaved("the threshold", err)
	}
	s.mu.Lock()
	s.applied = applied
	s.mu.Unlock()
	return nil
}

// Applied returns a label's applied threshold.
func (s *Store) Applied(camera, label string) (Applied, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.applied[key{camera, label}]
	return a, ok
}

// Suggestion is the threshold that separates a label's yes marks from its
// no marks with the widest margin, measured in logits (where SigLIP's
// probabilities near 0 and 1 are spread out).
type Suggestion struct {
	Yes, No   int     // marks of each kind
	Separable bool    // every yes scores above every no
	Threshold float64 // when separable: halfway, in logits, between the lowest yes and the highest no
	// Margin is that halfway distance in logits (when separable), or how
	// far the lowest yes falls below the highest no (when not).
	Margin float64
	// LowestYes and HighestNo are the scores the suggestion stands on.
	LowestYes, HighestNo float64
}

// Suggest finds the widest-margin threshold; it needs at least one yes and
// one no.
func Suggest(yes, no []float64) (Suggestion, bool) {
	s := Suggestion{Yes: len(yes), No: len(no)}
	if len(yes) == 0 || len(no) == 0 {
		return s, false
	}
	s.LowestYes, s.HighestNo = slices.Min(yes), slices.Max(no)
	ly, hn := logit(s.LowestYes), logit(s.HighestNo)
	s.Separable = ly > hn
	if s.Separable {
		s.Threshold = sigmoid((ly + hn) / 2)
		s.Margin = (ly - hn) / 2
	} else {
		s.Margin = hn - ly
	}
	return s, true
}

// Platt is a recalibration of a label's logit: p' = sigmoid(A·logit(p) + B).
type Platt struct {
	A, B float64
}

// MinPlattMarks is how many yes and how many no marks a fit needs.
const MinPlattMarks = 3

// FitPlatt fits A and B by logistic regression of the marks on their
// logits: Newton's method with a backtracking line search, from Platt's
// start and with his smoothed targets, so that marks a threshold separates
// do not send A to infinity (Lin, Lin and Weng, "A note on Platt's
// probabilistic outputs", 2007). ok is false with too few marks.
func FitPlatt(yes, no []float64) (Platt, bool) {
	if len(yes) < MinPlattMarks || len(no) < MinPlattMarks {
		return Platt{}, false
	}
	np, nn := float64(len(yes)), float64(len(no))
	type sample struct{ x, t float64 }
	var xs []sample
	for _, p := range yes {
		xs = append(xs, sample{logit(p), (np + 1) / (np + 2)})
	}
	for _, p := range no {
		xs = append(xs, sample{logit(p), 1 / (nn + 2)})
	}
	loss := func(a, b float64) float64 {
		l := 0.0
		for _, s := range xs {
			f := a*s.x + b
			l += s.t*softplus(-f) + (1-s.t)*softplus(f)
		}
		return l
	}
	a, b := 0.0, math.Log((nn+1)/(np+1))
	for range 100 {
		var ga, gb, haa, hab, hbb float64
		for _, s := range xs {
			q := sigmoid(a*s.x + b)
			w := q * (1 - q)
			ga += (q - s.t) * s.x
			gb += q - s.t
			haa += w * s.x * s.x
			hab += w * s.x
			hbb += w
		}
		if math.Abs(ga) < 1e-9 && math.Abs(gb) < 1e-9 {
			break
		}
		haa, hbb = haa+1e-12, hbb+1e-12
		det := haa*hbb - hab*hab
		da := (hbb*ga - hab*gb) / det
		db := (haa*gb - hab*ga) / det
		// Backtrack until the loss falls enough (Armijo).
		l0, step := loss(a, b), 1.0
		for step >= 1e-10 && loss(a-step*da, b-step*db) > l0-1e-4*step*(ga*da+gb*db) {
			step /= 2
		}
		if step < 1e-10 {
			break
		}
		a, b = a-step*da, b-step*db
	}
	return Platt{A: a, B: b}, true
}

// softplus is log(1 + e^x) without overflow.
func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}

// Apply is p recalibrated.
func (p Platt) Apply(prob float64) float64 { return sigmoid(p.A*logit(prob) + p.B) }

// eps keeps logits finite: SigLIP's float32 probabilities reach 0 and 1.
const eps = 1e-7

func logit(p float64) float64 {
	p = min(max(p, eps), 1-eps)
	return math.Log(p / (1 - p))
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
