package daemon

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/siglipd/siglipd/daemon/history"
	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/rules"
)

// TestClock: steady time follows the monotonic clock whatever the wall
// clock does; check reports a step of the wall clock once, as the change
// of wall − steady, and not the nanoseconds between two clock reads.
func TestClock(t *testing.T) {
	var shift atomic.Int64
	c := newClock(func(now time.Time) time.Time { return now.Round(0).Add(time.Duration(shift.Load())) })
	for range 1000 {
		if j, ok := c.check(); ok {
			t.Fatalf("a jump of %s reported with the clock left alone", j)
		}
	}
	before := time.Now()
	s0 := c.steady(before)
	for _, step := range []time.Duration{72 * time.Hour, -time.Hour, clockJumpMin + time.Millisecond, -clockJumpMin / 2} {
		shift.Add(int64(step))
		j, ok := c.check()
		if want := step.Abs() >= clockJumpMin; ok != want || (ok && (j-step).Abs() > time.Millisecond) {
			t.Errorf("a step of %s: check says %s, %v", step, j, ok)
		}
		if j, ok := c.check(); ok {
			t.Errorf("after a step of %s: another jump of %s", step, j)
		}
	}
	// Steady time went on by the monotonic clock only.
	if d := c.now().Sub(s0) - time.Since(before); d.Abs() > 50*time.Millisecond {
		t.Errorf("steady time moved %s more than the monotonic clock", d)
	}
	// Wall time is steady time + the offset in force: the steps that were followed.
	if got, want := c.wallNow().Sub(c.now()), 71*time.Hour+clockJumpMin+time.Millisecond; (got - want).Abs() > time.Millisecond {
		t.Errorf("wall − steady = %s, want %s", got, want)
	}
}

// TestWallClockJumps, the whole daemon (a file camera, the fake model, the
// rules loop, the history, the journal, HTTP): the camera shows blue for
// 3 s and black for 3 s, in turn. Label "open" (no cooldown) is ON 3 s of
// every 6; label "cool" has a 4.5 s cooldown, so it starts 1.5 s into each
// blue phase, when the cooldown ends. While "open" is ON and "cool"'s
// cooldown runs, the wall clock is stepped forward by 72 h; later, at the
// same point of the cycle, back by 1 h. Nothing may change but the times
// users see: the events are those the video makes (no end at the step, no
// start in a cooldown, none missing), ids are unique, one line is logged
// per jump, /api/history stays continuous and in order (nothing dropped),
// the journal's open event follows the clock, and every durations is right.
func TestWallClockJumps(t *testing.T) {
	testenv.Integration(t)
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=black", Duration: 12 * time.Second, FPS: 10,
		Filter: "drawbox=x=0:y=0:w=iw:h=ih:color=blue:t=fill:enable='lt(mod(t,6),3)'"})
	state := t.TempDir()
	config := fmt.Sprintf(`
state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
label_defaults: {threshold: 0.5, min_frames: 3, off_frames: 3}
cameras: [{name: door, url: %s, loop: true, fps: 10,
           labels: [{name: open, off_threshold: 0.3, cooldown: 0s}, {name: cool, off_threshold: 0.3, cooldown: 4500ms}]}]
`, state, filepath.Join(t.TempDir(), "no-model"), video)
	// The live page's chart is checked too. Chromium starts first: its start
	// takes both cores of a small machine for a moment.
	br := testenv.StartBrowser(t, 900, 700)
	var shift atomic.Int64
	var d *daemon
	r := startDaemon(t, config, func(h *hooks) {
		h.classifier = &fakeModel{}
		h.started = func(started *daemon) { d = started }
		h.wallClock = func(now time.Time) time.Time { return now.Round(0).Add(time.Duration(shift.Load())) }
	})

	events := func() []rules.Event {
		var evs []rules.Event
		for _, line := range strings.Split(r.stdout.String(), "\n") {
			var ev rules.Event
			if json.Unmarshal([]byte(line), &ev) == nil && ev.ID != "" {
				evs = append(evs, ev)
			}
		}
		return evs
	}
	ended := func(label string) int { return count(events(), label, rules.TypeEnd) }
	jumpsLogged := func() int { return strings.Count(r.logs.String(), "the wall clock jumped") }
	points := func() [][2]float64 { // since=1: Unix ms, the whole history
		_, body := r.get("/api/history?camera=door&label=open&since=1")
		var h struct{ Points [][2]float64 }
		json.Unmarshal(body, &h)
		return h.Points
	}
	// continuous fails unless the points are in order without a gap: the
	// camera delivers 10 frames a second; a loaded machine may pause it for
	// a few seconds, a wrong history is hours off.
	continuous := func(when string, ps [][2]float64, atLeast int) {
		t.Helper()
		if len(ps) < atLeast {
			t.Errorf("%s: /api/history has %d points, had %d before: points were dropped", when, len(ps), atLeast)
		}
		for i := 1; i < len(ps); i++ {
			if gap := ps[i][0] - ps[i-1][0]; gap <= 0 || gap > 5000 {
				t.Errorf("%s: /api/history points %d and %d are %.0f ms apart: out of order or a gap", when, i-1, i, gap)
				return
			}
		}
	}
	// The live page's chart keeps the points it fetched and asks only for
	// newer ones, so it must notice that the history moved.
	br.Navigate(r.base + "/?window=120")
	pagePoints := func() (n int, last float64) {
		var v struct{ N, Last float64 }
		json.Unmarshal(br.Eval(`(() => { const p = (typeof series === "object" && series["door/open"]?.points) || [];
			return {N: p.length, Last: p.length ? p[p.length-1][0] : 0}; })()`), &v)
		return int(v.N), v.Last
	}
	pageFollows := func(when string) {
		t.Helper()
		var n int
		var last, now float64
		if !testenv.Eventually(10*time.Second, func() bool {
			n, last = pagePoints()
			now = float64(d.clock.wallNow().UnixMilli())
			return n > 0 && math.Abs(now-last) < 2000
		}) {
			t.Errorf("%s: the page's last point is %.0f s from now", when, (last-now)/1000)
		}
		// Not the old points as well as the moved ones: at most the window's.
		if n > 120*10+50 {
			t.Errorf("%s: the page holds %d points of a 120 s window at 10 fps", when, n)
		}
	}
	testenv.WaitFor(t, 20*time.Second, func() bool { n, _ := pagePoints(); return n > 0 }, "the page to chart door/open")

	// stepWhileOpenAndCooling waits for the point of the cycle where
	// "open" is ON and "cool"'s cooldown runs (1.2 s of each 6, fewer when
	// frames come late), steps the wall clock there and waits for the
	// daemon to notice (on its next tick).
	stepWhileOpenAndCooling := func(step time.Duration, jumpsBefore int) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, func() bool {
			_, _, st := d.live.Scores("door")
			return st["open"].On && !st["cool"].On && st["cool"].CooldownUntil.Sub(d.clock.wallNow()) > 300*time.Millisecond
		}, `"open" ON while "cool"'s cooldown runs`)
		n := len(points())
		shift.Add(int64(step))
		testenv.WaitFor(t, 5*time.Second, func() bool { return jumpsLogged() > jumpsBefore }, "the jump by %s to be logged", step)
		if _, _, st := d.live.Scores("door"); !st["open"].On || st["cool"].On {
			t.Logf("(the daemon noticed the jump after the cycle moved on: open %v, cool %v)", st["open"].On, st["cool"].On)
		}
		after := points()
		t.Logf("the jump by %s: /api/history had %d points before, %d after", step, n, len(after))
		continuous(fmt.Sprintf("just after the jump by %s", step), after, n)
		pageFollows(fmt.Sprintf("after the jump by %s", step))
	}
	// journalFollows fails unless the journal's open events carry times of
	// the clock now in force (the event open at the jump moved with it).
	journalFollows := func(when string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(state, journalFile))
		var open []rules.Event
		if err != nil || json.Unmarshal(b, &open) != nil {
			t.Fatalf("%s: journal: %v %s", when, err, b)
		}
		now := d.clock.wallNow()
		for _, ev := range open {
			if ev.StartTime.After(ev.FrameTime) || ev.FrameTime.After(now) || now.Sub(ev.StartTime) > 10*time.Second {
				t.Errorf("%s: the journal holds %s from %s to %s, now is %s", when, ev.ID, ev.StartTime, ev.FrameTime, now)
			}
		}
	}

	testenv.WaitFor(t, 30*time.Second, func() bool { return ended("cool") >= 1 }, "a first cool event")
	stepWhileOpenAndCooling(72*time.Hour, 0)
	journalFollows("after the jump forward")
	from := ended("cool")
	testenv.WaitFor(t, 30*time.Second, func() bool { return ended("cool") >= from+2 }, "two cool events after the jump forward")
	stepWhileOpenAndCooling(-time.Hour, 1)
	journalFollows("after the jump back")
	from = ended("cool")
	testenv.WaitFor(t, 30*time.Second, func() bool { return ended("cool") >= from+2 }, "two cool events after the jump back")
	ps := points()
	continuous("at the end", ps, 0)
	if n := jumpsLogged(); n != 2 {
		t.Errorf("%d log lines say the wall clock jumped, want 2 (one per jump)", n)
	}
	if n := counterSum(r.metrics(), "siglipd_clock_jumps_total"); n != 2 {
		t.Errorf("siglipd_clock_jumps_total %v, want 2", n)
	}
	_, body := r.get("/api/history?camera=door&label=cool&since=1")
	var hist struct {
		ClockJumps int `json:"clock_jumps"`
		Events     []struct {
			ID         string
			Start, End *time.Time
		}
	}
	json.Unmarshal(body, &hist)
	if hist.ClockJumps != 2 {
		t.Errorf("/api/history clock_jumps %d, want 2", hist.ClockJumps)
	}
	for i, e := range hist.Events {
		if e.Start == nil || (e.End != nil && e.End.Before(*e.Start)) || (i > 0 && e.Start.Before(*hist.Events[i-1].Start)) {
			t.Errorf("/api/history event %d out of order: %+v", i, e)
		}
	}
	running := len(events()) // the events before the stop; it ends the open ones early
	r.stop()
	if b, err := os.ReadFile(filepath.Join(state, journalFile)); err != nil || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("the journal after a clean stop: %s %v, want []", b, err)
	}

	// The events, as the video makes them whatever the clock did.
	evs := events()
	steps := []time.Duration{72 * time.Hour, time.Hour}
	for _, tt := range []struct {
		label string
		// Of one event: the blue phase (3 s), less what the cooldown
		// took (1.5 s). Wide: a loaded machine delays frames, and what
		// this catches is hours (a start_time left on the old clock) or an
		// end the jump caused (early, or 35 s late by the quiet timeout).
		min, max time.Duration
		gap      time.Duration // least time from an end to the next start: exact, the rules measure it on steady time
	}{
		{"open", 1500 * time.Millisecond, 6 * time.Second, 0},
		{"cool", 500 * time.Millisecond, 4 * time.Second, 4500 * time.Millisecond},
	} {
		var seq []string // the types, in order
		ids := map[string]bool{}
		var open *rules.Event
		var lastEnd time.Time
		for i, ev := range evs {
			if ev.Label != tt.label {
				continue
			}
			seq = append(seq, ev.Type)
			switch ev.Type {
			case rules.TypeStart:
				if open != nil {
					t.Errorf("%s: start %s while %s is open", tt.label, ev.ID, open.ID)
				}
				if ids[ev.ID] {
					t.Errorf("%s: id %s used twice", tt.label, ev.ID)
				}
				ids[ev.ID] = true
				if !lastEnd.IsZero() {
					// The end and this start may be either side of a jump.
					gap := nearest(ev.StartTime.Sub(lastEnd), steps)
					if gap < tt.gap-300*time.Millisecond {
						t.Errorf("%s: start %s %s after the last end; want at least %s", tt.label, ev.ID, gap, tt.gap)
					}
				}
				ev := ev
				open = &ev
			case rules.TypeUpdate:
				if open == nil || ev.ID != open.ID {
					t.Errorf("%s: update %s of no open event", tt.label, ev.ID)
				}
			case rules.TypeEnd:
				if open == nil || ev.ID != open.ID {
					t.Errorf("%s: end %s of no open event", tt.label, ev.ID)
					continue
				}
				// The end carries start_time on its own clock: the
				// duration is the event's, across a jump too.
				// (The first event may start mid-phase, and without a cooldown before it.)
				if took := ev.EndTime.Sub(ev.StartTime); i < running && !lastEnd.IsZero() && (took < tt.min || took > tt.max) {
					t.Errorf("%s: event %s lasted %s (start %s, end %s); the video makes %s–%s",
						tt.label, ev.ID, took, ev.StartTime.Format(time.RFC3339Nano), ev.EndTime.Format(time.RFC3339Nano), tt.min, tt.max)
				}
				lastEnd, open = *ev.EndTime, nil
			}
		}
		if n := count(evs, tt.label, rules.TypeStart); n < 5 {
			t.Errorf("%s: %d events, want at least 5 in the run", tt.label, n)
		}
		t.Logf("%s: %d events: %s", tt.label, len(ids), strings.Join(seq, " "))
	}
	for _, line := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(line, "clock") {
			t.Log(line)
		}
	}
}

// nearest is d, or d less one of steps, whichever is nearest zero: a
// time between two messages made either side of a wall-clock jump.
func nearest(d time.Duration, steps []time.Duration) time.Duration {
	best := d
	for _, s := range steps {
		for _, c := range []time.Duration{d - s, d + s} {
			if math.Abs(float64(c)) < math.Abs(float64(best)) {
				best = c
			}
		}
	}
	return best
}

// TestRulesLoopFollowsClockJump: the rules loop notices a step of the wall
// clock on its next tick and has everything this run labelled follow it:
// the rules' wall times (an event open across the step ends with its start
// moved, its id kept, and its real length), the score history (moved, in
// order), the journal's open event; the jump is counted once.
func TestRulesLoopFollowsClockJump(t *testing.T) {
	var shift atomic.Int64
	c := newClock(func(now time.Time) time.Time { return now.Round(0).Add(time.Duration(shift.Load())) })
	r := newRulesRigClock(t, c, time.Hour, rule("door", "red"))
	jumps := func() float64 {
		var m dto.Metric
		r.loop.metrics.clockJumps.Write(&m)
		return m.GetCounter().GetValue()
	}
	history := func() []history.Point { return r.loop.emit.history.Query("door", "red", time.Time{}).Points }
	near := func(what string, got, want time.Time) {
		t.Helper()
		if d := got.Sub(want); d.Abs() > time.Second {
			t.Errorf("%s %s, want about %s", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}

	began := time.Now()
	r.score("door", 1, 0.9, "red")
	r.waitEvents(t, "start red")
	for i, step := range []time.Duration{72 * time.Hour, -time.Hour} {
		shift.Add(int64(step))
		testenv.WaitFor(t, 5*time.Second, func() bool { return jumps() == float64(i+1) }, "the jump by %s to be counted", step)
		now := time.Now().Add(time.Duration(shift.Load()))
		near("wall now", c.wallNow(), now)
		// (The file and the board, not the loop's own journal and Machine: the loop runs on.)
		var open []rules.Event
		if b, err := os.ReadFile(r.journal.path); err != nil || json.Unmarshal(b, &open) != nil || len(open) != 1 {
			t.Fatalf("journal %s %v", b, err)
		}
		near("the journal's open event starts", open[0].StartTime, began.Add(time.Duration(shift.Load())))
		// The board gets the states after the tick that noticed the jump.
		testenv.WaitFor(t, 5*time.Second, func() bool {
			_, _, st := r.loop.live.Scores("door")
			return st["red"].On && st["red"].StartTime.Sub(began.Add(time.Duration(shift.Load()))).Abs() < time.Second
		}, "the board to show red ON since its start on the new clock")
		r.score("door", uint64(2+i), 0.9, "red")
	}
	r.score("door", 9, 0.1, "red")
	r.waitEvents(t, "start red", "end red")
	r.sink.mu.Lock()
	start, end := r.sink.events[0], r.sink.events[1]
	r.sink.mu.Unlock()
	if start.ID != end.ID {
		t.Errorf("start id %s, end id %s", start.ID, end.ID)
	}
	near("start_time in the start", start.StartTime, began)
	near("start_time in the end", end.StartTime, began.Add(71*time.Hour))
	if took := end.EndTime.Sub(end.StartTime); took < 0 || took > time.Since(began)+time.Second {
		t.Errorf("the event lasted %s by its end message; it was open %s", took, time.Since(began))
	}
	ps := history()
	if len(ps) != 4 {
		t.Errorf("history: %d points, want the 4 frames", len(ps))
	}
	for i, p := range ps {
		if i > 0 && p.Ms < ps[i-1].Ms {
			t.Errorf("history out of order: %v", ps)
		}
		near(fmt.Sprintf("history point %d", i), p.Time(), began.Add(71*time.Hour))
	}
	if n := jumps(); n != 2 {
		t.Errorf("%v jumps counted, want 2", n)
	}
}

// TestEndLeftOpenClockBehind: events a crashed run left open end at now,
// unless the clock is behind their last frame (a box that booted with an
// old time): then at that frame's time, so that no end comes before its
// event's own frames.
func TestEndLeftOpenClockBehind(t *testing.T) {
	frame := time.Now().Round(0).Add(-time.Minute)
	left := []rules.Event{{V: 1, Type: rules.TypeStart, ID: "x-door-red", Camera: "door", Label: "red",
		StartTime: frame.Add(-time.Second), FrameTime: frame}}
	for _, tt := range []struct {
		name  string
		shift time.Duration // of this run's wall clock
		want  func(now time.Time) time.Time
	}{
		{"clock right", 0, func(now time.Time) time.Time { return now }},
		{"clock a day behind", -24 * time.Hour, func(time.Time) time.Time { return frame }},
		{"clock in 1970", -time.Since(time.Unix(0, 0)), func(time.Time) time.Time { return frame }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &testenv.SyncBuffer{}
			sink := &recordingSink{}
			j, _, err := openJournal(t.TempDir(), nil, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			c := newClock(func(now time.Time) time.Time { return now.Round(0).Add(tt.shift) })
			e := &emitter{sink: sink, journal: j, history: history.New(history.Options{}), metrics: newMetrics(noStatus{}),
				log: slog.New(slog.NewTextHandler(logs, nil)), clock: c}
			e.endLeftOpen(left)
			want := tt.want(c.wallNow())
			if len(sink.events) != 1 || sink.events[0].Type != rules.TypeEnd {
				t.Fatalf("events %+v, want one end", sink.events)
			}
			end := *sink.events[0].EndTime
			if end.Sub(want).Abs() > time.Second || end.Before(frame) {
				t.Errorf("end_time %s, want %s (last frame %s)", end, want, frame)
			}
			if behind := strings.Contains(logs.String(), "the clock is behind"); behind != (tt.shift != 0) {
				t.Errorf("logged the clock behind: %v; log:\n%s", behind, logs)
			}
		})
	}
}
