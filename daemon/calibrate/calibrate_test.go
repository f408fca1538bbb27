package calibrate

import (
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
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

// TestStoreDiskFailures: on a full disk, then a read-only one, a mark, a
// deletion and a threshold each fail with ErrUnavailable and change
// nothing, in memory or on disk (no half line at the end of marks.jsonl, no
// JPEG without its mark); once the disk works they succeed, and the folder
// reopens with all of it. (marks.jsonl used to keep half a line, and the
// store then failed to open: calibration gone until someone edited it.)
func TestStoreDiskFailures(t *testing.T) {
	testenv.Integration(t)
	disk := testenv.SmallDisk(t, 512<<10)
	dir := filepath.Join(disk.Dir, "calibration")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	// An embedding as large as a real one (768 floats) makes a line longer
	// than what is left of the file's last page: a write cut short.
	emb := make([]float32, 768)
	for i := range emb {
		emb[i] = 0.0123456789 * float32(i)
	}
	mark := func(yes bool) Mark {
		return Mark{Camera: "door", Label: "car", Yes: yes, Score: map[bool]float64{true: 0.8, false: 0.1}[yes], Time: at, Prompts: []string{"car"}, Embedding: emb}
	}
	yes, err := s.Add(mark(true), []byte{0xff, 0xd8, 0xff, 0xd9})
	if err != nil {
		t.Fatal(err)
	}
	no, _ := s.Add(mark(false), nil)
	if err := s.Apply("door", "car", Applied{Threshold: 0.3, At: at, Marks: 2, Prompts: []string{"car"}}); err != nil {
		t.Fatal(err)
	}
	files := func() map[string]string {
		out := map[string]string{}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			out[e.Name()] = string(b)
		}
		return out
	}
	before := files()

	for _, fault := range []struct {
		name        string
		start, stop func()
		errno       syscall.Errno
	}{
		{"full", disk.Fill, disk.Free, syscall.ENOSPC},
		{"read-only", disk.ReadOnly, disk.Writable, syscall.EROFS},
	} {
		fault.start()
		fail := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, fault.errno) {
				t.Errorf("%s, disk %s: %v; want ErrUnavailable and %v", what, fault.name, err, fault.errno)
			}
		}
		_, err := s.Add(mark(true), nil)
		fail("mark", err)
		_, err = s.Add(mark(true), make([]byte, 64<<10))
		fail("mark with a JPEG", err)
		fail("delete", s.Delete(no.ID))
		fail("apply", s.Apply("door", "car", Applied{Threshold: 0.5, At: at, Prompts: []string{"car"}}))
		fail("clear", s.Clear("door", "car"))
		fault.stop()
		got := files()
		for _, name := range slices.Sorted(maps.Keys(got)) {
			if old, ok := before[name]; !ok {
				t.Errorf("disk %s: %s left behind (%d bytes)", fault.name, name, len(got[name]))
			} else if old != got[name] {
				t.Errorf("disk %s: %s changed (%d bytes, were %d)", fault.name, name, len(got[name]), len(old))
			}
		}
		if _, err := Open(dir); err != nil {
			t.Errorf("disk %s: the folder no longer opens: %v", fault.name, err)
		}
		if a, _ := s.Applied("door", "car"); a.Threshold != 0.3 || len(s.Marks("door", "car", []string{"car"})) != 2 {
			t.Errorf("disk %s: in memory, threshold %g and %d marks; want 0.3 and 2", fault.name, a.Threshold, len(s.Marks("door", "car", []string{"car"})))
		}
	}

	// The disk works again: all of it works, and a reopen finds it.
	third, err := s.Add(mark(true), []byte{0xff, 0xd8, 0xff, 0xd9})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(no.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply("door", "car", Applied{Threshold: 0.5, At: at, Prompts: []string{"car"}}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	var ids []string
	for _, m := range r.Marks("door", "car", []string{"car"}) {
		ids = append(ids, m.ID)
	}
	if a, _ := r.Applied("door", "car"); a.Threshold != 0.5 || !slices.Equal(ids, []string{yes.ID, third.ID}) {
		t.Errorf("reopened: threshold %g, marks %v; want 0.5 and %s, %s", a.Threshold, ids, yes.ID, third.ID)
	}
}

// TestStoreTornMark: a crash in the middle of an append leaves half a
// line at the end of marks.jsonl; the store opens without it, and the
// next mark starts a line of its own.
func TestStoreTornMark(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	a, err := s.Add(Mark{Camera: "door", Label: "car", Yes: true, Score: 0.8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, marksFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"0123456789abcdef","camera":"do`)
	f.Close()
	r, err := Open(dir)
	if err != nil {
		t.Fatalf("open with a torn last line: %v", err)
	}
	b, err := r.Add(Mark{Camera: "door", Label: "car", Yes: false, Score: 0.1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range r2.Marks("door", "car", nil) {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(ids, []string{a.ID, b.ID}) {
		t.Errorf("marks %v, want %s, %s", ids, a.ID, b.ID)
	}
}
