package rules

import (
	"slices"
	"testing"
	"time"
)

// TestWallClockJumps: the Machine runs on a timeline that does not jump;
// when the wall clock is stepped (WallOffset changes) while an event is ON
// or a cooldown runs, the same events come out at the same machine times as
// without the step: nothing starts, ends or waits longer because of it. Their
// reported times are machine time + the offset in force when they were made;
// an event keeps its id across the step, and ids stay unique when the step
// back makes a start fall on the wall time of an earlier one.
func TestWallClockJumps(t *testing.T) {
	r := with(func(r *Rule) { r.Cooldown = 5 * time.Second })
	// start@1, end@7 (cooldown to 12), start@12 (samples 8–11 count but wait), end@16;
	// a tick at 20 ends nothing.
	script := append(samples(0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1), tick(20))
	want := []string{"start@1", "end@7", "start@12", "end@16"}
	const day = 24 * time.Hour
	for _, tt := range []struct {
		name  string
		steps map[float64]time.Duration // script second → WallOffset from then on
	}{
		{"no step", nil},
		{"forward 72h while on", map[float64]time.Duration{3: 3 * day}},
		{"back 1h while on", map[float64]time.Duration{3: -time.Hour}},
		{"forward 72h during the cooldown", map[float64]time.Duration{9: 3 * day}},
		{"back 1h during the cooldown", map[float64]time.Duration{9: -time.Hour}},
		{"forward, then back", map[float64]time.Duration{3: 3 * day, 9: 3*day - time.Hour}},
		// The second start (machine 12) is shown at wall t0+1, the first's time.
		{"back onto the first start's wall time", map[float64]time.Duration{10: -11 * time.Second}},
		{"step at the tick", map[float64]time.Duration{20: 3 * day}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := New([]Rule{r})
			var got []string
			var evs []Event
			for _, st := range script {
				if off, ok := tt.steps[st.sec]; ok {
					m.WallOffset = off
				}
				var out []Event
				if st.tick {
					out = m.Tick(at(st.sec))
				} else {
					out = m.Observe(r.Camera, at(st.sec), map[string]float64{r.Label: st.score})
				}
				for _, ev := range out {
					// Back to machine time: every reported time carries the offset in force.
					mt := ev
					mt.StartTime, mt.FrameTime = ev.StartTime.Add(-m.WallOffset), ev.FrameTime.Add(-m.WallOffset)
					if ev.EndTime != nil {
						end := ev.EndTime.Add(-m.WallOffset)
						mt.EndTime = &end
					}
					got = append(got, brief(mt))
					if mt.StartTime.After(mt.FrameTime) || (mt.EndTime != nil && mt.EndTime.Before(mt.StartTime)) {
						t.Errorf("%s %s: times out of order: %+v", ev.Type, ev.ID, ev)
					}
					if s := m.States()[0]; s.On && !s.StartTime.Equal(ev.StartTime) {
						t.Errorf("state's start %s, the event's %s", s.StartTime, ev.StartTime)
					}
				}
				evs = append(evs, out...)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("events %v, want %v (the step changed what happened)", got, want)
			}
			// One id per event, shared by its start and end, never reused.
			if evs[0].ID != evs[1].ID || evs[2].ID != evs[3].ID || evs[0].ID == evs[2].ID {
				t.Errorf("ids %q %q %q %q: want start and end to share one, the two events to differ",
					evs[0].ID, evs[1].ID, evs[2].ID, evs[3].ID)
			}
			t.Logf("ids %s, %s; first event %s – %s", evs[0].ID, evs[2].ID,
				evs[1].StartTime.Format(time.RFC3339), evs[1].EndTime.Format(time.RFC3339))
		})
	}
}
