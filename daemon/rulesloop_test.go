package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/daemon/history"
	"github.com/siglipd/siglipd/daemon/live"
	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/publish"
	"github.com/siglipd/siglipd/rules"
)

// recordingSink is a publish.Sink that remembers what it was given.
type recordingSink struct {
	mu     sync.Mutex
	events []rules.Event
	avail  []string // "camera up|down", in order
	scores int
}

func (s *recordingSink) Start(context.Context) error { return nil }
func (s *recordingSink) Announce([]publish.Camera)   {}
func (s *recordingSink) Event(ev rules.Event, _ []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
}
func (s *recordingSink) Scores(string, time.Time, map[string]float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scores++
}
func (s *recordingSink) CameraAvailable(camera string, up bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.avail = append(s.avail, fmt.Sprintf("%s %v", camera, map[bool]string{true: "up", false: "down"}[up]))
}
func (s *recordingSink) Close(context.Context) error { return nil }
func (s *recordingSink) Status() publish.Status      { return publish.Status{} }

// types is the type of every event received, "start red", "end red", ...
func (s *recordingSink) types() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.events {
		out = append(out, ev.Type+" "+ev.Label)
	}
	return out
}

func (s *recordingSink) availability() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.avail)
}

// rulesRig is a rules loop with a recording sink, a journal and a camera
// list the test controls.
type rulesRig struct {
	loop    *rulesLoop
	sink    *recordingSink
	journal *journal
	mu      sync.Mutex
	cams    []capture.Status
	asked   int // calls of cameras
}

func newRulesRig(t *testing.T, quiet time.Duration, rs ...rules.Rule) *rulesRig {
	return newRulesRigClock(t, newClock(nil), quiet, rs...)
}

// newRulesRigClock is newRulesRig on the clock given.
func newRulesRigClock(t *testing.T, c *clock, quiet time.Duration, rs ...rules.Rule) *rulesRig {
	log := slog.New(slog.DiscardHandler)
	j, _, err := openJournal(t.TempDir(), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	r := &rulesRig{sink: &recordingSink{}, journal: j}
	e := &emitter{sink: r.sink, journal: j, history: history.New(history.Options{}), metrics: newMetrics(noStatus{}), log: log, clock: c}
	r.loop = newRulesLoop(rs, quiet, 4, e, live.New(nil), r.cameras)
	r.loop.tick = 10 * time.Millisecond
	go r.loop.run()
	t.Cleanup(func() {
		select {
		case <-r.loop.done:
		default:
			close(r.loop.in)
			<-r.loop.done
		}
		r.loop.live.Close()
	})
	return r
}

func (r *rulesRig) cameras() []capture.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked++
	return slices.Clone(r.cams)
}

// setCameras changes the running cameras and waits until the loop has
// finished two looks at them: the first acted on the change, the second
// (a tick with nothing changed) must add nothing.
func (r *rulesRig) setCameras(t *testing.T, cams ...capture.Status) {
	r.mu.Lock()
	r.cams = cams
	mark := r.asked
	r.mu.Unlock()
	testenv.WaitFor(t, 10*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.asked >= mark+3
	}, "the rules loop to look at the cameras")
}

// score sends one frame of camera with probability p for every label.
func (r *rulesRig) score(camera string, seq uint64, p float32, labels ...string) {
	probs := make([]float32, len(labels))
	for i := range probs {
		probs[i] = p
	}
	r.loop.in <- scoredFrame{frame: testFrame(camera, seq, 0), names: labels, probs: probs}
}

func (r *rulesRig) waitEvents(t *testing.T, want ...string) {
	t.Helper()
	if !testenv.Eventually(10*time.Second, func() bool { return slices.Equal(r.sink.types(), want) }) {
		t.Fatalf("events %q, want %q", r.sink.types(), want)
	}
}

func rule(camera, label string) rules.Rule {
	return rules.Rule{Camera: camera, Label: label, Prompts: []string{label}, Threshold: 0.5, OffThreshold: 0.4, MinFrames: 1, OffFrames: 1}
}

// TestRulesLoop: every event the rules make — from a frame, a tick, a
// reload or the shutdown — reaches the sink once, is counted once and is
// journaled until its end; the sink is told when a camera's availability
// changes, and only then.
func TestRulesLoop(t *testing.T) {
	t.Run("frame starts, shutdown ends", func(t *testing.T) {
		r := newRulesRig(t, time.Hour, rule("door", "red"), rule("door", "blue"))
		r.score("door", 1, 0.9, "red")
		r.waitEvents(t, "start red")
		if open := r.journal.list(); len(open) != 1 || open[0].Label != "red" {
			t.Errorf("journal holds %v, want the red event", open)
		}
		close(r.loop.in) // the batcher stopped
		<-r.loop.done
		r.waitEvents(t, "start red", "end red")
		if open := r.journal.list(); len(open) != 0 {
			t.Errorf("journal holds %v after the end", open)
		}
		for _, typ := range []string{"start", "end"} {
			var m dto.Metric
			if err := r.loop.metrics.events.WithLabelValues("door", "red", typ).Write(&m); err != nil {
				t.Fatal(err)
			}
			if n := m.GetCounter().GetValue(); n != 1 {
				t.Errorf("siglipd_events_total{type=%q} = %v, want 1", typ, n)
			}
		}
	})

	t.Run("quiet camera ends on a tick", func(t *testing.T) {
		r := newRulesRig(t, 100*time.Millisecond, rule("door", "red"))
		r.score("door", 1, 0.9, "red")
		r.waitEvents(t, "start red", "end red") // no more frames: the tick ends it
	})

	t.Run("reload removes a label that is on", func(t *testing.T) {
		r := newRulesRig(t, time.Hour, rule("door", "red"), rule("door", "blue"))
		r.score("door", 1, 0.9, "red", "blue")
		r.waitEvents(t, "start red", "start blue")
		r.loop.setRules([]rules.Rule{rule("door", "red")}, time.Hour)
		if got := r.sink.types(); !slices.Equal(got, []string{"start red", "start blue", "end blue"}) {
			t.Errorf("events %q when setRules returned, want blue ended", got)
		}
	})

	t.Run("availability told on change", func(t *testing.T) {
		r := newRulesRig(t, time.Hour)
		up := func(name string) capture.Status { return capture.Status{Name: name, State: capture.StateConnected} }
		down := func(name string) capture.Status { return capture.Status{Name: name, State: capture.StateReconnecting} }
		steps := []struct {
			cams []capture.Status
			want []string // all availability calls so far
		}{
			{[]capture.Status{up("door"), down("yard")}, []string{"door up", "yard down"}},
			{[]capture.Status{down("door"), down("yard")}, []string{"door up", "yard down", "door down"}},
			{[]capture.Status{down("door")}, []string{"door up", "yard down", "door down"}}, // yard removed
			{[]capture.Status{down("door"), down("yard")}, []string{"door up", "yard down", "door down", "yard down"}},
		}
		for i, s := range steps {
			r.setCameras(t, s.cams...)
			if got := r.sink.availability(); !slices.Equal(got, s.want) {
				t.Fatalf("step %d: availability calls %q, want %q", i, got, s.want)
			}
		}
	})
}
