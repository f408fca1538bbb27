package history

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/siglipd/siglipd/rules"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// TestRecentAndBuckets: the recent window holds every point; older points
// survive as per-minute buckets (min, max, mean, count); a query since a
// time returns the points since then and the buckets before them.
func TestRecentAndBuckets(t *testing.T) {
	s := New(Options{Recent: 10 * time.Minute})
	// Two hours at 1 frame per second: p rises 0 → 1 within each minute.
	for sec := 0; sec < 2*3600; sec++ {
		s.Add("door", t0.Add(time.Duration(sec)*time.Second), map[string]float64{"car": float64(sec%60) / 59})
	}
	now := t0.Add(2*time.Hour - time.Second)
	for _, tt := range []struct {
		name        string
		since       time.Time
		wantPoints  int
		wantBuckets int
	}{
		{"last minute", now.Add(-time.Minute + time.Second), 60, 0},
		{"recent window", now.Add(-10 * time.Minute), 601, 0},
		{"two hours", t0, 601, 110},
		{"before anything", t0.Add(-time.Hour), 601, 110},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.Query("door", "car", tt.since)
			if len(r.Points) < tt.wantPoints-1 || len(r.Points) > tt.wantPoints+1 {
				t.Errorf("%d points, want about %d", len(r.Points), tt.wantPoints)
			}
			if len(r.Buckets) < tt.wantBuckets-1 || len(r.Buckets) > tt.wantBuckets+1 {
				t.Errorf("%d buckets, want about %d", len(r.Buckets), tt.wantBuckets)
			}
			for _, b := range r.Buckets {
				if b.N != 60 || b.Min != 0 || b.Max != 1 || b.Mean < 0.49 || b.Mean > 0.51 {
					t.Fatalf("bucket %v: want 60 points from 0 to 1, mean 0.5", b)
				}
				if len(r.Points) > 0 && !b.T.Before(r.Points[0].Time()) {
					t.Fatalf("bucket at %s overlaps the points from %s", b.T, r.Points[0].Time())
				}
			}
			for i := 1; i < len(r.Points); i++ {
				if r.Points[i].Ms <= r.Points[i-1].Ms {
					t.Fatalf("points out of order at %d", i)
				}
			}
		})
	}
	if r := s.Query("door", "person", t0); len(r.Points)+len(r.Buckets) != 0 {
		t.Errorf("a label never added has history: %+v", r)
	}
}

// TestBounds: a series never holds more than MaxRecent points, nor
// buckets and events older than Keep.
func TestBounds(t *testing.T) {
	s := New(Options{Recent: time.Hour, Keep: 30 * time.Minute, MaxRecent: 500})
	for i := 0; i < 5000; i++ {
		s.Add("door", t0.Add(time.Duration(i)*time.Second), map[string]float64{"car": 0.5})
	}
	sr := s.m[key{"door", "car"}]
	if n := len(sr.Recent); n > 500+1024 {
		t.Errorf("%d recent points kept, bound 500 (+ slack)", n)
	}
	if r := s.Query("door", "car", t0); len(r.Points) > 500+1024 {
		t.Errorf("query returned %d points", len(r.Points))
	}
	if oldest := sr.Buckets[0].T; oldest.Before(t0.Add(5000*time.Second - 31*time.Minute)) {
		t.Errorf("oldest bucket %s is older than Keep", oldest)
	}
}

func event(typ, id string, start, end time.Time) rules.Event {
	ev := rules.Event{Type: typ, ID: id, Camera: "door", Label: "car", StartTime: start, TopScore: 0.8}
	if typ == rules.TypeEnd {
		ev.EndTime = &end
	}
	return ev
}

// TestEvents: a start opens a span, its end closes it; a query returns the
// spans that overlap the time asked; an end without a start is ignored.
func TestEvents(t *testing.T) {
	s := New(Options{})
	s.Event(event(rules.TypeStart, "a", t0, time.Time{}))
	s.Event(event(rules.TypeEnd, "a", t0, t0.Add(time.Minute)))
	s.Event(event(rules.TypeStart, "b", t0.Add(10*time.Minute), time.Time{}))
	s.Event(event(rules.TypeEnd, "ghost", t0, t0.Add(time.Minute)))
	for _, tt := range []struct {
		since time.Time
		want  []string
	}{
		{t0.Add(-time.Hour), []string{"a", "b"}},
		{t0.Add(5 * time.Minute), []string{"b"}}, // a ended before
		{t0.Add(time.Hour), []string{"b"}},       // b still on
	} {
		var got []string
		for _, e := range s.Query("door", "car", tt.since).Events {
			got = append(got, e.ID)
		}
		if len(got) != len(tt.want) || (len(got) > 0 && got[0] != tt.want[0]) {
			t.Errorf("since %s: events %v, want %v", tt.since.Format("15:04"), got, tt.want)
		}
	}
	if e := s.Query("door", "car", t0.Add(-time.Hour)).Events[0]; e.End == nil || !e.End.Equal(t0.Add(time.Minute)) {
		t.Errorf("event a: end %v", e.End)
	}
}

// TestSaveLoad: what Save wrote, Load reads back whole; what is past the
// windows by the time of loading is dropped; a damaged file is an error.
func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.gob")
	s := New(Options{})
	for i := 0; i < 300; i++ {
		s.Add("door", t0.Add(time.Duration(i)*time.Second), map[string]float64{"car": 0.25, "person": 0.75})
	}
	s.Event(event(rules.TypeStart, "a", t0, time.Time{}))
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	l := New(Options{})
	if err := l.Load(path, t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	a, b := s.Query("door", "car", t0), l.Query("door", "car", t0)
	if len(a.Points) != 300 || len(b.Points) != len(a.Points) || b.Points[299] != a.Points[299] || len(b.Events) != 1 {
		t.Errorf("loaded %d points and %d events, saved %d and %d", len(b.Points), len(b.Events), len(a.Points), len(a.Events))
	}
	if err := l.Load(path, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r := l.Query("door", "person", t0); len(r.Points) != 0 || len(r.Buckets) == 0 {
		t.Errorf("loaded 2 h later: %d points (want 0: past the recent window), %d buckets (want the minutes)", len(r.Points), len(r.Buckets))
	}
	if err := New(Options{}).Load(filepath.Join(t.TempDir(), "none"), t0); err != nil {
		t.Errorf("a missing file: %v", err)
	}
	if err := osWrite(path, []byte("not gob")); err != nil {
		t.Fatal(err)
	}
	if err := New(Options{}).Load(path, t0); err == nil {
		t.Error("a damaged file loaded without error")
	}
}

func osWrite(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }
