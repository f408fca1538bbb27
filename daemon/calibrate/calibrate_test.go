package calibrate

import (
	"math"
	"path/filepath"
	"testing"
	"time"
)

// TestSuggest: separable marks give the threshold halfway between them in
// logits; overlapping ones are reported with how far they overlap; one
// side alone gives nothing.
func TestSuggest(t *testing.T) {
	for _, tt := range []struct {
		name      string
		yes, no   []float64
		ok        bool
		separable bool
		threshold float64
	}{
		{"separable", []float64{0.9, 0.6, 0.95}, []float64{0.01, 0.2, 0.05}, true, true, sigmoid((logit(0.6) + logit(0.2)) / 2)},
		{"near 0, as SigLIP's are", []float64{0.003, 0.01}, []float64{1e-5, 2e-6}, true, true, sigmoid((logit(0.003) + logit(1e-5)) / 2)},
		{"overlapping", []float64{0.3, 0.8}, []float64{0.5, 0.1}, true, false, 0},
		{"yes only", []float64{0.9}, nil, false, false, 0},
		{"no only", nil, []float64{0.1}, false, false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := Suggest(tt.yes, tt.no)
			if ok != tt.ok || s.Separable != tt.separable || math.Abs(s.Threshold-tt.threshold) > 1e-12 {
				t.Errorf("got %+v, %v; want ok %v, separable %v, threshold %g", s, ok, tt.ok, tt.separable, tt.threshold)
			}
			if ok && s.Separable {
				for _, y := range tt.yes {
					if y < s.Threshold {
						t.Errorf("yes %g below the threshold %g", y, s.Threshold)
					}
				}
				for _, n := range tt.no {
					if n >= s.Threshold {
						t.Errorf("no %g at or above the threshold %g", n, s.Threshold)
					}
				}
			}
			if ok && !s.Separable && s.Margin <= 0 {
				t.Errorf("overlap %g, want > 0", s.Margin)
			}
		})
	}
}

// TestFitPlatt: the fit maps yes marks above 0.5 and no marks below on
// separable and overlapping sets, is monotonic (A > 0), and needs three
// marks of each kind.
func TestFitPlatt(t *testing.T) {
	for _, tt := range []struct {
		name    string
		yes, no []float64
	}{
		{"separable near 0", []float64{0.002, 0.004, 0.01, 0.02}, []float64{1e-6, 5e-6, 2e-5, 1e-4}},
		{"overlapping", []float64{0.3, 0.6, 0.8, 0.9, 0.2}, []float64{0.05, 0.1, 0.35, 0.02}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := FitPlatt(tt.yes, tt.no)
			if !ok || p.A <= 0 {
				t.Fatalf("fit %+v, %v", p, ok)
			}
			right := 0
			for _, y := range tt.yes {
				if p.Apply(y) > 0.5 {
					right++
				}
			}
			for _, n := range tt.no {
				if p.Apply(n) < 0.5 {
					right++
				}
			}
			t.Logf("A %.3f B %.3f: %d of %d marks on their side of 0.5", p.A, p.B, right, len(tt.yes)+len(tt.no))
			if min := len(tt.yes) + len(tt.no) - 2; right < min {
				t.Errorf("%d marks on their side of 0.5, want at least %d", right, min)
			}
		})
	}
	if _, ok := FitPlatt([]float64{0.9, 0.8}, []float64{0.1, 0.2, 0.3}); ok {
		t.Error("a fit from two yes marks")
	}
}

// TestStore: marks and applied thresholds survive a reopen; a deleted mark
// is gone, its JPEG too; marks of other prompts are not a label's.
func TestStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "calibration")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	a, err := s.Add(Mark{Camera: "door", Label: "car", Yes: true, Score: 0.8, Time: at, Prompts: []string{"a car"}}, []byte{0xff, 0xd8})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Add(Mark{Camera: "door", Label: "car", Yes: false, Score: 0.1, Time: at, Prompts: []string{"a car"}}, nil)
	s.Add(Mark{Camera: "door", Label: "car", Yes: false, Score: 0.2, Time: at, Prompts: []string{"a red car"}}, nil)
	if err := s.Apply("door", "car", Applied{Threshold: 0.3, At: at, Marks: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(b.ID); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Marks("door", "car", []string{"a car"})
	if len(got) != 1 || got[0].ID != a.ID || got[0].Score != 0.8 || !got[0].Yes {
		t.Errorf("after reopening: %+v, want mark %s alone", got, a.ID)
	}
	if ap, ok := r.Applied("door", "car"); !ok || ap.Threshold != 0.3 {
		t.Errorf("applied %+v, %v", ap, ok)
	}
	if err := r.Clear("door", "car"); err != nil {
		t.Fatal(err)
	}
	if r2, _ := Open(dir); r2 != nil {
		if _, ok := r2.Applied("door", "car"); ok {
			t.Error("a cleared threshold came back")
		}
	}
	if p := r.JPEG(a.ID); filepath.Dir(p) != dir {
		t.Errorf("JPEG(%s) = %s, not in %s", a.ID, p, dir)
	}
	for _, bad := range []string{"..", "../../etc/passwd", "0123456789abcdeZ", ""} {
		if p := r.JPEG(bad); p != "" {
			t.Errorf("JPEG(%q) = %q, want none", bad, p)
		}
	}
	if r.Delete("nope") == nil {
		t.Error("deleting a mark that does not exist: no error")
	}
}
