package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// t0 is the epoch of every script: step times are seconds after it.
var t0 = time.Date(2024, 11, 27, 16, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

// step is one input of a script: a sample of the rule's label (score) at a
// time, or a Tick (tick: true), or a sample without the label (missing).
type step struct {
	sec     float64
	score   float64
	tick    bool
	missing bool
}

func s(sec, score float64) step { return step{sec: sec, score: score} }
func tick(sec float64) step     { return step{sec: sec, tick: true} }

// samples makes one sample per second from start, one per score.
func samples(start float64, scores ...float64) []step {
	out := make([]step, len(scores))
	for i, sc := range scores {
		out[i] = s(start+float64(i), sc)
	}
	return out
}

func concat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// brief writes an event as "type@sec" (the frame time; for an end, the end
// time), which is what the tables compare.
func brief(ev Event) string {
	tm := ev.FrameTime
	if ev.Type == TypeEnd {
		tm = *ev.EndTime
	}
	return fmt.Sprintf("%s@%g", ev.Type, tm.Sub(t0).Seconds())
}

func run(t *testing.T, r Rule, steps []step) []Event {
	t.Helper()
	m := New([]Rule{r})
	var evs []Event
	for _, st := range steps {
		switch {
		case st.tick:
			evs = append(evs, m.Tick(at(st.sec))...)
		case st.missing:
			evs = append(evs, m.Observe(r.Camera, at(st.sec), map[string]float64{})...)
		default:
			evs = append(evs, m.Observe(r.Camera, at(st.sec), map[string]float64{r.Label: st.score})...)
		}
	}
	return evs
}

// base is the default label of the config: threshold 0.5, off 0.4,
// min_frames 2, off_frames 2, no off_delay, no cooldown (cases add it).
func base() Rule {
	return Rule{Camera: "driveway", Label: "car", Prompts: []string{"a car"},
		Threshold: 0.5, OffThreshold: 0.4, MinFrames: 2, OffFrames: 2}
}

func with(f func(*Rule)) Rule { r := base(); f(&r); return r }

func TestMachine(t *testing.T) {
	tests := []struct {
		name  string
		rule  Rule
		steps []step
		want  []string
	}{
		// Never reaching the threshold.
		{"never reaches threshold", base(), samples(0, 0.1, 0.3, 0.49, 0.4999, 0.2, 0.49), nil},
		{"threshold once with min_frames 2", base(), samples(0, 0.1, 0.9, 0.1, 0.9, 0.1), nil},

		// min_frames.
		{"min_frames 2 starts on the second", base(), samples(0, 0.2, 0.6, 0.7), []string{"start@2"}},
		{"exactly threshold counts", base(), samples(0, 0.5, 0.5), []string{"start@1"}},
		{"min_frames 1 starts at once", with(func(r *Rule) { r.MinFrames = 1 }), samples(0, 0.2, 0.6), []string{"start@1"}},
		{"min_frames 3 interrupted then met", with(func(r *Rule) { r.MinFrames = 3 }),
			samples(0, 0.6, 0.6, 0.45, 0.6, 0.6, 0.6), []string{"start@5"}},
		{"min_frames 0 means 1", with(func(r *Rule) { r.MinFrames = 0 }), samples(0, 0.6), []string{"start@0"}},

		// Flicker: one noisy frame neither starts nor ends anything.
		{"flickering score gives one start/end pair", base(),
			samples(0, 0.1, 0.55, 0.2, 0.6, 0.3, // single frames over threshold: nothing
				0.7, 0.8, // start@6
				0.3, 0.75, 0.35, 0.6, 0.2, 0.7, 0.39, 0.45, // single frames under off: still ON
				0.1, 0.1, // end@16
				0.6, 0.2, 0.7, 0.1), // flicker after the end: nothing
			[]string{"start@6", "end@16"}},

		// Hysteresis.
		{"between off and threshold stays ON", base(),
			samples(0, 0.6, 0.6, 0.45, 0.41, 0.4, 0.49, 0.45, 0.3, 0.3),
			[]string{"start@1", "end@8"}},
		{"between off and threshold does not start", base(), samples(0, 0.45, 0.45, 0.49), nil},
		{"exactly off_threshold is not below", base(),
			samples(0, 0.6, 0.6, 0.4, 0.4, 0.4), []string{"start@1"}},
		{"custom off_threshold far below", with(func(r *Rule) { r.OffThreshold = 0.1 }),
			samples(0, 0.6, 0.6, 0.2, 0.2, 0.2, 0.05, 0.05), []string{"start@1", "end@6"}},
		{"off_threshold above threshold is clamped", with(func(r *Rule) { r.OffThreshold = 0.9 }),
			samples(0, 0.6, 0.6, 0.55, 0.55, 0.45, 0.45), []string{"start@1", "end@5"}},

		// off_frames.
		{"off_frames 1 ends on the first low", with(func(r *Rule) { r.OffFrames = 1 }),
			samples(0, 0.6, 0.6, 0.1), []string{"start@1", "end@2"}},
		{"off_frames 3 reset by a high frame", with(func(r *Rule) { r.OffFrames = 3 }),
			samples(0, 0.6, 0.6, 0.1, 0.1, 0.6, 0.1, 0.1, 0.1), []string{"start@1", "end@7"}},
		{"off_frames reset by a frame between thresholds", with(func(r *Rule) { r.OffFrames = 3 }),
			samples(0, 0.6, 0.6, 0.1, 0.1, 0.45, 0.1, 0.1, 0.1), []string{"start@1", "end@7"}},

		// off_delay: both off_frames and the delay must hold.
		{"off_delay longer than off_frames: ends when the delay elapses", with(func(r *Rule) { r.OffDelay = 5 * time.Second }),
			samples(0, 0.6, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1), []string{"start@1", "end@7"}},
		{"off_delay: a high frame restarts the delay", with(func(r *Rule) { r.OffDelay = 3 * time.Second }),
			samples(0, 0.6, 0.6, 0.1, 0.1, 0.6, 0.1, 0.1, 0.1, 0.1), []string{"start@1", "end@8"}},
		{"off_delay shorter than off_frames: frames decide", with(func(r *Rule) { r.OffDelay = time.Second; r.OffFrames = 4 }),
			samples(0, 0.6, 0.6, 0.1, 0.1, 0.1, 0.1), []string{"start@1", "end@5"}},
		{"off_delay ended by Tick when samples stop", with(func(r *Rule) { r.OffDelay = 10 * time.Second }),
			concat(samples(0, 0.6, 0.6, 0.1, 0.1), []step{tick(5), tick(11.9), tick(12), tick(13)}),
			[]string{"start@1", "end@12"}},
		{"off_delay end time does not depend on the tick rate", with(func(r *Rule) { r.OffDelay = 10 * time.Second }),
			concat(samples(0, 0.6, 0.6, 0.1, 0.1), []step{tick(20)}),
			[]string{"start@1", "end@12"}},
		{"off_delay end found by the next sample", with(func(r *Rule) { r.OffDelay = 10 * time.Second }),
			[]step{s(0, 0.6), s(1, 0.6), s(2, 0.1), s(3, 0.1), s(14, 0.1)},
			[]string{"start@1", "end@12"}},
		{"off_delay: tick before off_frames is met does nothing", with(func(r *Rule) { r.OffDelay = time.Second; r.OffFrames = 3 }),
			concat(samples(0, 0.6, 0.6, 0.1, 0.1), []step{tick(10), s(11, 0.1)}),
			[]string{"start@1", "end@11"}},

		// Cooldown.
		{"cooldown holds off a new start", with(func(r *Rule) { r.Cooldown = 5 * time.Second }),
			samples(0, 0.6, 0.6, 0.1, 0.1, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6),
			[]string{"start@1", "end@3", "start@8"}},
		{"cooldown: start needs fresh frames after it too", with(func(r *Rule) { r.Cooldown = 5 * time.Second }),
			samples(0, 0.6, 0.6, 0.1, 0.1, 0.6, 0.1, 0.1, 0.1, 0.6, 0.1, 0.6, 0.6),
			[]string{"start@1", "end@3", "start@11"}},
		{"cooldown 0 restarts at once", base(),
			samples(0, 0.6, 0.6, 0.1, 0.1, 0.6, 0.6), []string{"start@1", "end@3", "start@5"}},
		{"cooldown counts from the computed end time", with(func(r *Rule) { r.Cooldown = 2 * time.Second; r.OffDelay = 4 * time.Second }),
			[]step{s(0, 0.6), s(1, 0.6), s(2, 0.1), s(3, 0.1), s(7, 0.6), s(7.5, 0.6), s(8, 0.6)},
			[]string{"start@1", "end@6", "start@8"}},

		// Updates.
		{"update when the top rises notably, after the interval", base(),
			samples(0, 0.6, 0.6, 0.62, 0.64, 0.7, 0.7, 0.7, 0.7, 0.71, 0.72),
			[]string{"start@1", "update@6"}},
		{"small rises never update", base(),
			samples(0, 0.6, 0.6, 0.61, 0.62, 0.63, 0.64, 0.645, 0.64, 0.63, 0.62, 0.62), []string{"start@1"}},
		{"updates are rate limited", base(),
			samples(0, 0.55, 0.55, 0.6, 0.7, 0.75, 0.8, 0.8, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95),
			[]string{"start@1", "update@6", "update@11"}},
		{"no update while going off", base(),
			samples(0, 0.6, 0.6, 0.1, 0.1), []string{"start@1", "end@3"}},

		// Camera gone quiet.
		{"quiet camera ends an ON event", base(),
			concat(samples(0, 0.6, 0.6, 0.7), []step{tick(20), tick(31.9), tick(32), tick(60)}),
			[]string{"start@1", "end@32"}},
		{"quiet end found by the next sample", base(),
			[]step{s(0, 0.6), s(1, 0.6), s(100, 0.6), s(101, 0.6)},
			[]string{"start@1", "end@31", "start@101"}},
		{"a quiet gap breaks a trigger run", with(func(r *Rule) { r.MinFrames = 3 }),
			[]step{s(0, 0.6), s(1, 0.6), tick(40), s(41, 0.6), s(42, 0.6), s(43, 0.6)},
			[]string{"start@43"}},
		{"frames without the label are not samples", base(),
			[]step{s(0, 0.6), {sec: 1, missing: true}, s(2, 0.6), {sec: 3, missing: true}, s(4, 0.1), {sec: 5, missing: true}, s(6, 0.1)},
			[]string{"start@2", "end@6"}},

		// Bad input.
		{"NaN is ignored", base(), []step{s(0, 0.6), s(1, math.NaN()), s(2, 0.6)}, []string{"start@2"}},
		{"out of order and repeated frame times are ignored", base(),
			[]step{s(10, 0.6), s(9, 0.6), s(10, 0.6), s(11, 0.6)}, []string{"start@11"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, ev := range run(t, tt.rule, tt.steps) {
				got = append(got, brief(ev))
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("events = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestEventFields checks what each event carries, beyond its type and time.
func TestEventFields(t *testing.T) {
	r := with(func(r *Rule) { r.Cooldown = 10 * time.Second })
	evs := run(t, r, samples(0, 0.55, 0.7, 0.6, 0.8, 0.7, 0.7, 0.9, 0.3, 0.2))
	if len(evs) != 3 {
		t.Fatalf("got %d events, want start, update, end: %v", len(evs), evs)
	}
	start, update, end := evs[0], evs[1], evs[2]
	wantID := "1732723201.000000-driveway-car"
	for i, ev := range evs {
		if ev.V != 1 || ev.ID != wantID || ev.Camera != "driveway" || ev.Label != "car" ||
			ev.Threshold != 0.5 || !ev.StartTime.Equal(at(1)) || len(ev.Prompts) != 1 || ev.Prompts[0] != "a car" {
			t.Errorf("event %d = %+v: wrong common fields", i, ev)
		}
	}
	// The start reports the run's top score, not only the triggering frame's.
	if start.Score != 0.7 || start.TopScore != 0.7 || !start.FrameTime.Equal(at(1)) || start.EndTime != nil {
		t.Errorf("start = %+v", start)
	}
	if update.Type != TypeUpdate || update.Score != 0.9 || update.TopScore != 0.9 || !update.FrameTime.Equal(at(6)) || update.EndTime != nil {
		t.Errorf("update = %+v", update)
	}
	if end.Type != TypeEnd || end.Score != 0.2 || end.TopScore != 0.9 || !end.FrameTime.Equal(at(8)) || !end.EndTime.Equal(at(8)) {
		t.Errorf("end = %+v", end)
	}
	run2 := run(t, with(func(r *Rule) { r.Label, r.Slug = "Garage door open!", "garage_door_open" }), samples(0, 0.6, 0.6))
	if run2[0].ID != "1732723201.000000-driveway-garage_door_open" {
		t.Errorf("id of a label with a slug = %q", run2[0].ID)
	}
}

// TestJSON pins the v1 payload: field names, order, RFC 3339 times, null end.
func TestJSON(t *testing.T) {
	end := at(12.25)
	ev := Event{V: 1, Type: TypeEnd, ID: "1732723201.000000-driveway-car", Camera: "driveway", Label: "car",
		Prompts: []string{"a car", "a parked car"}, Score: 0.2, TopScore: 0.93, Threshold: 0.5,
		StartTime: at(1), EndTime: &end, FrameTime: at(12)}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"type":"end","id":"1732723201.000000-driveway-car","camera":"driveway","label":"car",` +
		`"prompts":["a car","a parked car"],"score":0.2,"top_score":0.93,"threshold":0.5,` +
		`"start_time":"2024-11-27T16:00:01Z","end_time":"2024-11-27T16:00:12.25Z","frame_time":"2024-11-27T16:00:12Z"}`
	if string(b) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", b, want)
	}
	// A start from the machine: end_time null, prompts [] even with none configured.
	evs := run(t, with(func(r *Rule) { r.Prompts = nil }), samples(0, 0.6, 0.6))
	b, _ = json.Marshal(evs[0])
	if !strings.Contains(string(b), `"prompts":[],`) || !strings.Contains(string(b), `"end_time":null,`) {
		t.Errorf("start JSON = %s, want prompts [] and end_time null", b)
	}
}

func TestCamerasAndLabelsAreIndependent(t *testing.T) {
	car, person := base(), with(func(r *Rule) { r.Label = "person"; r.Threshold = 0.3; r.OffThreshold = 0.2 })
	garage := with(func(r *Rule) { r.Camera = "garage"; r.Label = "car" })
	m := New([]Rule{car, person, garage})
	var got []string
	obs := func(cam string, sec float64, p map[string]float64) {
		for _, ev := range m.Observe(cam, at(sec), p) {
			got = append(got, ev.Camera+"/"+ev.Label+":"+brief(ev))
		}
	}
	obs("driveway", 0, map[string]float64{"car": 0.6, "person": 0.35, "dog": 0.99})
	obs("garage", 0.5, map[string]float64{"car": 0.9})
	obs("driveway", 1, map[string]float64{"car": 0.6, "person": 0.35})
	obs("garage", 1.5, map[string]float64{"car": 0.9})
	obs("nowhere", 2, map[string]float64{"car": 0.9})
	obs("driveway", 2, map[string]float64{"car": 0.1, "person": 0.1})
	obs("driveway", 3, map[string]float64{"car": 0.1, "person": 0.1})
	want := "driveway/car:start@1 driveway/person:start@1 garage/car:start@1.5 driveway/car:end@3 driveway/person:end@3"
	if strings.Join(got, " ") != want {
		t.Errorf("events =\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}

func TestSetRules(t *testing.T) {
	car, person := base(), with(func(r *Rule) { r.Label = "person" })
	m := New([]Rule{car, person})
	m.Observe("driveway", at(0), map[string]float64{"car": 0.6, "person": 0.6})
	evs := m.Observe("driveway", at(1), map[string]float64{"car": 0.6, "person": 0.6})
	if len(evs) != 2 {
		t.Fatalf("want two starts, got %v", evs)
	}

	// Re-tune car (higher off threshold, off_frames 1), drop person, add dog.
	retuned := car
	retuned.Threshold, retuned.OffThreshold, retuned.OffFrames = 0.7, 0.55, 1
	dog := with(func(r *Rule) { r.Label = "dog" })
	evs = m.SetRules([]Rule{retuned, dog, dog}, at(5))
	if len(evs) != 1 || evs[0].Label != "person" || evs[0].Type != TypeEnd || !evs[0].EndTime.Equal(at(5)) ||
		!evs[0].FrameTime.Equal(at(1)) || evs[0].ID != "1732723201.000000-driveway-person" {
		t.Fatalf("SetRules events = %+v, want the end of person at 5", evs)
	}
	st := m.States()
	if len(st) != 2 || st[0].Label != "car" || !st[0].On || st[0].EventID != "1732723201.000000-driveway-car" ||
		!st[0].StartTime.Equal(at(1)) || st[1].Label != "dog" || st[1].On {
		t.Fatalf("States after reload = %+v", st)
	}
	// The re-tuned car kept its event and follows its new off threshold.
	evs = m.Observe("driveway", at(6), map[string]float64{"car": 0.5})
	if len(evs) != 1 || evs[0].Type != TypeEnd || evs[0].ID != "1732723201.000000-driveway-car" {
		t.Fatalf("re-tuned car: %+v, want its end", evs)
	}
	// A removed pair that was OFF ends nothing; the empty set removes all.
	if evs := m.SetRules(nil, at(7)); len(evs) != 0 {
		t.Errorf("removing OFF pairs gave %+v", evs)
	}
	if len(m.States()) != 0 {
		t.Errorf("States after removing all = %+v", m.States())
	}
}

func TestStates(t *testing.T) {
	m := New([]Rule{with(func(r *Rule) { r.Cooldown = 10 * time.Second })})
	if st := m.States(); len(st) != 1 || st[0].On || !st[0].LastSample.IsZero() {
		t.Fatalf("initial States = %+v", st)
	}
	for i, sc := range []float64{0.6, 0.7, 0.65} {
		m.Observe("driveway", at(float64(i)), map[string]float64{"car": sc})
	}
	st := m.States()[0]
	if !st.On || st.Score != 0.65 || st.TopScore != 0.7 || !st.StartTime.Equal(at(1)) || !st.LastSample.Equal(at(2)) {
		t.Errorf("ON state = %+v", st)
	}
	if !m.On("driveway") || m.On("garden") {
		t.Errorf("On(driveway) = %v, On(garden) = %v; want true, false", m.On("driveway"), m.On("garden"))
	}
	m.Observe("driveway", at(3), map[string]float64{"car": 0.1})
	m.Observe("driveway", at(4), map[string]float64{"car": 0.1})
	st = m.States()[0]
	if st.On || st.TopScore != 0 || st.EventID != "" || !st.CooldownUntil.Equal(at(14)) {
		t.Errorf("OFF state = %+v", st)
	}
	if m.On("driveway") {
		t.Error("On(driveway) after the event ended")
	}
}

// TestInvariants drives random rules with random noisy scores and ticks and
// checks what must always hold, whatever the sequence: per pair, events go
// start (update)* end; ids are unique per event and shared within it; no
// start comes before the previous end + cooldown; times are ordered.
func TestInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		r := Rule{Camera: "c", Label: "l", Threshold: 0.3 + 0.5*rng.Float64(),
			MinFrames: 1 + rng.IntN(4), OffFrames: 1 + rng.IntN(4),
			OffDelay: time.Duration(rng.IntN(4)) * time.Second, Cooldown: time.Duration(rng.IntN(6)) * time.Second}
		r.OffThreshold = r.Threshold - 0.2*rng.Float64()
		m := New([]Rule{r})
		var evs []Event
		sec, level := 0.0, rng.Float64()
		for range 400 {
			sec += 0.1 + rng.Float64()
			if rng.IntN(50) == 0 {
				sec += 40 // a quiet camera now and then
			}
			if rng.IntN(10) == 0 {
				level = rng.Float64()
			}
			if rng.IntN(4) == 0 {
				evs = append(evs, m.Tick(at(sec))...)
				continue
			}
			score := min(max(level+0.3*(rng.Float64()-0.5), 0), 1)
			evs = append(evs, m.Observe("c", at(sec), map[string]float64{"l": score})...)
		}
		checkInvariants(t, trial, r, evs)
	}
}

func checkInvariants(t *testing.T, trial int, r Rule, evs []Event) {
	t.Helper()
	on := false
	var cur Event
	var lastEnd time.Time
	ids := map[string]bool{}
	for i, ev := range evs {
		bad := func(why string) { t.Fatalf("trial %d rule %+v: event %d %+v: %s", trial, r, i, ev, why) }
		switch ev.Type {
		case TypeStart:
			if on {
				bad("start while ON")
			}
			if ids[ev.ID] {
				bad("id reused")
			}
			if !lastEnd.IsZero() && ev.StartTime.Before(lastEnd.Add(r.Cooldown)) {
				bad("start within the cooldown")
			}
			if ev.Score < r.Threshold || ev.TopScore < ev.Score {
				bad("start below threshold")
			}
			ids[ev.ID], on, cur = true, true, ev
		case TypeUpdate, TypeEnd:
			if !on || ev.ID != cur.ID || !ev.StartTime.Equal(cur.StartTime) {
				bad("update/end outside its event")
			}
			if ev.TopScore < cur.TopScore {
				bad("top score went down")
			}
			cur = ev
			if ev.Type == TypeEnd {
				if ev.EndTime == nil || ev.EndTime.Before(ev.StartTime) {
					bad("end before start")
				}
				on, lastEnd = false, *ev.EndTime
			}
		default:
			bad("unknown type")
		}
	}
}

// TestClose: Close ends every ON event at the given time, in rule order, and
// nothing else; the Machine stays usable. Ended turns a journal's last
// start or update into that event's end.
func TestClose(t *testing.T) {
	car, person, dog := base(), with(func(r *Rule) { r.Label = "person" }), with(func(r *Rule) { r.Label = "dog" })
	m := New([]Rule{car, person, dog})
	m.Observe("driveway", at(0), map[string]float64{"car": 0.6, "person": 0.6, "dog": 0.1})
	m.Observe("driveway", at(1), map[string]float64{"car": 0.6, "person": 0.6, "dog": 0.1})
	evs := m.Close(at(3))
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Label+" "+brief(ev))
	}
	if strings.Join(got, ", ") != "car end@3, person end@3" {
		t.Fatalf("Close = %v, want the ends of car and person at 3", got)
	}
	if evs := m.Close(at(4)); len(evs) != 0 {
		t.Errorf("a second Close ended %v", evs)
	}
	for _, st := range m.States() {
		if st.On {
			t.Errorf("%s still ON after Close", st.Label)
		}
	}

	start := evs[0]
	start.Type, start.EndTime = TypeStart, nil
	end := Ended(start, at(9))
	if end.Type != TypeEnd || !end.EndTime.Equal(at(9)) || end.ID != start.ID || !end.StartTime.Equal(start.StartTime) {
		t.Errorf("Ended = %+v, want the end of %s at 9", end, start.ID)
	}
	if start.Type != TypeStart || start.EndTime != nil {
		t.Errorf("Ended changed its argument: %+v", start)
	}
}
