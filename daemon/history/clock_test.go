package history

import (
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/siglipd/siglipd/rules"
)

// addSeconds adds one point a second of camera door, label car, from
// from for n seconds.
func addSeconds(s *Store, from time.Time, n int) {
	for i := range n {
		s.Add("door", from.Add(time.Duration(i)*time.Second), map[string]float64{"car": float64(i%60) / 59})
	}
}

// ordered fails t unless every series is in order: points by time, closed
// buckets strictly increasing and before the open one, events by start, and
// every event ending at or after its start.
func ordered(t *testing.T, s *Store) {
	t.Helper()
	for k, sr := range s.m {
		for i := 1; i < len(sr.Recent); i++ {
			if sr.Recent[i].Ms < sr.Recent[i-1].Ms {
				t.Fatalf("%v: point %d (%d) before point %d (%d)", k, i, sr.Recent[i].Ms, i-1, sr.Recent[i-1].Ms)
			}
		}
		bs := sr.Buckets
		if sr.Open.N > 0 {
			bs = append(bs[:len(bs):len(bs)], sr.Open)
		}
		for i := 1; i < len(bs); i++ {
			if !bs[i].T.After(bs[i-1].T) {
				t.Fatalf("%v: bucket %d at %s not after bucket %d at %s", k, i, bs[i].T, i-1, bs[i-1].T)
			}
		}
		for i, e := range sr.Events {
			if i > 0 && e.Start.Before(sr.Events[i-1].Start) {
				t.Fatalf("%v: event %s starts before %s", k, e.ID, sr.Events[i-1].ID)
			}
			if e.End != nil && e.End.Before(e.Start) {
				t.Fatalf("%v: event %s ends before it starts", k, e.ID)
			}
		}
	}
}

// frames is the number of points all buckets (closed and open) count.
func frames(s *Store) int {
	n := 0
	for _, sr := range s.m {
		for _, b := range sr.Buckets {
			n += b.N
		}
		n += sr.Open.N
	}
	return n
}

// TestClockJumped: when the wall clock jumps, what this run recorded moves
// with it and what the last run saved does not: nothing is dropped (a jump
// forward by days would otherwise age the recent window out at once),
// nothing is out of order (a jump back would otherwise put new points
// before old ones), buckets that land on one minute are merged, and the
// points added after the jump continue the series.
func TestClockJumped(t *testing.T) {
	if n := unsafe.Sizeof(Point{}); n != 16 {
		t.Errorf("a Point is %d bytes, want 16: its flag must fit in the padding", n)
	}
	const day = 24 * time.Hour
	for _, tt := range []struct {
		name string
		// The last run's points (saved, then loaded at t0): from prev for
		// prevN seconds (none when 0).
		prev  time.Time
		prevN int
		// This run: from run for runN seconds, then the jump by d, then
		// 60 s more.
		run  time.Time
		runN int
		d    time.Duration
	}{
		{name: "forward 72h", run: t0, runN: 1800, d: 3 * day},
		{name: "back 1h", run: t0, runN: 1800, d: -time.Hour},
		{name: "back 1h and a part of a minute", run: t0, runN: 1800, d: -time.Hour - 25500*time.Millisecond},
		{name: "forward 72h after a loaded run", prev: t0.Add(-20 * time.Minute), prevN: 600, run: t0, runN: 600, d: 3 * day},
		{name: "back 1h onto the loaded run's minutes", prev: t0.Add(-50 * time.Minute), prevN: 1200, run: t0, runN: 600, d: -time.Hour},
		// A box that booted with an old clock: this run's labels are
		// a day before the last run's until NTP moves them.
		{name: "clock behind the loaded run, then corrected", prev: t0, prevN: 600, run: t0.Add(-day), runN: 600, d: day + 20*time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Recent: 2 * time.Hour})
			if tt.prevN > 0 {
				last := New(Options{Recent: 2 * time.Hour})
				addSeconds(last, tt.prev, tt.prevN)
				path := filepath.Join(t.TempDir(), "history.gob")
				if err := last.Save(path); err != nil {
					t.Fatal(err)
				}
				if err := s.Load(path, tt.run); err != nil {
					t.Fatal(err)
				}
			}
			addSeconds(s, tt.run, tt.runN)
			s.Event(rules.Event{Type: rules.TypeStart, ID: "a", Camera: "door", Label: "car", StartTime: tt.run.Add(time.Minute)})
			ordered(t, s)
			before, points := frames(s), len(s.m[key{"door", "car"}].Recent)

			s.ClockJumped(tt.d)
			ordered(t, s)
			if got := frames(s); got != before {
				t.Errorf("the buckets count %d frames after the jump, %d before", got, before)
			}
			if got := len(s.m[key{"door", "car"}].Recent); got != points {
				t.Errorf("%d points after the jump, %d before", got, points)
			}

			// This run goes on after the jump, its labels now on the new clock.
			next := tt.run.Add(time.Duration(tt.runN)*time.Second + tt.d)
			addSeconds(s, next, 60)
			s.Event(rules.Event{Type: rules.TypeEnd, ID: "a", Camera: "door", Label: "car", StartTime: tt.run.Add(time.Minute + tt.d),
				EndTime: ptr(next.Add(30 * time.Second))})
			ordered(t, s)
			r := s.Query("door", "car", time.Time{})
			if r.ClockJumps != 1 {
				t.Errorf("ClockJumps %d, want 1", r.ClockJumps)
			}
			// This run's points are one series without a gap: the jump moved them all.
			runPoints := 0
			for i, p := range r.Points {
				if p.Ms >= tt.run.Add(tt.d).UnixMilli() {
					runPoints++
					if i > 0 && r.Points[i-1].Ms >= tt.run.Add(tt.d).UnixMilli() && p.Ms-r.Points[i-1].Ms != 1000 {
						t.Fatalf("a gap or overlap in this run's points: %d then %d", r.Points[i-1].Ms, p.Ms)
					}
				}
			}
			if runPoints < tt.runN+60 {
				t.Errorf("%d of this run's %d points are at or after its start on the new clock", runPoints, tt.runN+60)
			}
			// Every frame of both runs is still counted in the per-minute
			// buckets, and the last run's stay where it put them.
			if got, want := frames(s), tt.prevN+tt.runN+60; got != want {
				t.Errorf("the buckets count %d frames, want %d: the last run's and all of this run's", got, want)
			}
			first := tt.run.Add(tt.d)
			if tt.prevN > 0 && tt.prev.Before(first) {
				first = tt.prev
			}
			if b := s.m[key{"door", "car"}].Buckets[0]; !b.T.Equal(first.Truncate(time.Minute)) {
				t.Errorf("the first bucket is at %s, want %s", b.T, first.Truncate(time.Minute))
			}
			if len(r.Events) != 1 || !r.Events[0].Start.Equal(tt.run.Add(time.Minute+tt.d)) || r.Events[0].End == nil {
				t.Errorf("event %+v: want it moved by %s, and ended", r.Events, tt.d)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
