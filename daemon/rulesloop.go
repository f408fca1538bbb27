package daemon

import (
	"log/slog"
	"time"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/live"
	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/publish"
	"github.com/siglipd/siglipd/rules"
)

// rulesLoop owns the rules Machine: one goroutine feeds it every scored
// frame, ticks it (so the events of a camera gone quiet still end), swaps
// its rules on reload, and tells the sink which cameras deliver frames.
// Every event goes out through the emitter. When in closes (the batcher
// stopped) it ends the events still open and closes done.
//
// The Machine runs on the clock's steady time, so no wall-clock jump starts,
// ends or delays an event; each tick the loop checks the wall clock and, on
// a jump, has everything this run labelled follow it (clockJumped).
type rulesLoop struct {
	machine *rules.Machine
	clock   *clock
	in      chan scoredFrame // from the batcher, which closes it
	updates chan ruleUpdate
	emit    *emitter
	sink    publish.Sink // scores and camera availability
	live    *live.Board
	metrics *metrics
	cameras func() []capture.Status // the running cameras, for availability
	tick    time.Duration
	log     *slog.Logger
	done    chan struct{}
	keeper  *frameKeeper // nil: the frame store is off

	up map[string]bool // camera → availability last told to the sink
}

// ruleUpdate asks the loop to replace its rules (config reload).
type ruleUpdate struct {
	rules        []rules.Rule
	quietTimeout time.Duration
	done         chan struct{}
}

// startRules opens the event journal, ends the events the last run left
// open, and starts the rules loop.
func (d *daemon) startRules(cfg *configs.Config) *rulesLoop {
	j, left, err := openJournal(cfg.StateDir, d.state.File("journal", journalEffect), d.log)
	if err != nil {
		d.log.Warn("event journal unavailable; events open at a crash would not be ended", "err", err)
	}
	e := &emitter{sink: d.sink, journal: j, history: d.history, metrics: d.metrics, log: d.log, clock: d.clock,
		snapshots: cfg.Sink == "mqtt" && cfg.MQTT.Snapshots.Enabled}
	e.endLeftOpen(left)
	l := newRulesLoop(rulesFor(cfg), quietTimeout(cfg), 2*cfg.Inference.BatchSize, e, d.live, d.Cameras)
	if d.frames != nil {
		l.keeper = &frameKeeper{store: d.frames, every: cfg.Store.Every.D(), last: map[string]time.Time{}}
	}
	go l.run()
	return l
}

// newRulesLoop makes a loop for rules whose input holds buffer frames;
// run starts it. cameras reports the running cameras.
func newRulesLoop(r []rules.Rule, quiet time.Duration, buffer int, e *emitter, board *live.Board, cameras func() []capture.Status) *rulesLoop {
	m := rules.New(r)
	m.QuietTimeout = quiet
	m.WallOffset = e.clock.wallOffset()
	return &rulesLoop{
		machine: m, clock: e.clock, in: make(chan scoredFrame, buffer), updates: make(chan ruleUpdate),
		emit: e, sink: e.sink, live: board, metrics: e.metrics, cameras: cameras,
		tick: time.Second, log: e.log, done: make(chan struct{}), up: map[string]bool{},
	}
}

func (l *rulesLoop) run() {
	defer close(l.done)
	ticker := time.NewTicker(l.tick)
	defer ticker.Stop()
	for {
		select {
		case s, ok := <-l.in:
			if !ok {
				if ends := l.machine.Close(l.clock.now()); len(ends) > 0 {
					l.log.Info("shutting down: ending the events still open", "events", len(ends))
					l.emit.emit(ends, nil)
				}
				return
			}
			l.observe(s)
		case now := <-ticker.C:
			l.checkClock()
			l.emit.emit(l.machine.Tick(l.clock.steady(now)), nil)
			l.emit.retry(now)
			l.live.SetStates(l.machine.States())
			l.reportAvailability()
		case u := <-l.updates:
			l.machine.QuietTimeout = u.quietTimeout
			l.emit.emit(l.machine.SetRules(u.rules, l.clock.now()), nil)
			l.live.SetStates(l.machine.States())
			close(u.done)
		}
	}
}

func (l *rulesLoop) observe(s scoredFrame) {
	f := s.frame
	probs := make(map[string]float64, len(s.names))
	for i, n := range s.names {
		probs[n] = float64(s.probs[i])
		l.metrics.probability.WithLabelValues(f.Camera, n).Set(float64(s.probs[i]))
	}
	t := l.clock.steady(f.Time)
	l.emit.history.Add(f.Camera, l.clock.wall(t), probs)
	wasOn := l.machine.On(f.Camera)
	l.emit.emit(l.machine.Observe(f.Camera, t, probs), f)
	l.keeper.keep(s, wasOn || l.machine.On(f.Camera))
	l.sink.Scores(f.Camera, f.Time, probs)
	l.live.SetScores(f, probs, l.machine.States()) // takes ownership of f
}

// checkClock follows a jump of the wall clock: events report the new wall
// time from now on, and what this run labelled with the old one (the score
// history, the journal's open events) moves by the jump, so the history
// stays continuous and in order and the retention windows, which compare
// labels with the wall time now, neither drop it early nor keep it too
// long. One line is logged per jump.
func (l *rulesLoop) checkClock() {
	jump, ok := l.clock.check()
	if !ok {
		return
	}
	l.machine.WallOffset = l.clock.wallOffset()
	l.emit.history.ClockJumped(jump)
	if l.emit.journal != nil {
		l.emit.journal.clockJumped(jump)
	}
	l.metrics.clockJumps.Inc()
	now := l.clock.wallNow()
	l.log.Warn("the wall clock jumped; event times, ids and the score history follow it, durations do not",
		"by", jump.Round(time.Millisecond), "from", now.Add(-jump).Format(time.RFC3339), "to", now.Format(time.RFC3339))
}

// setRules hands the loop new rules and waits until they apply. Only the
// change loop calls it, and that ends before the rules loop does (the
// batcher closes the rules loop's input in shutdown, after the change loop
// has returned), so the loop is there to take them; should it have ended,
// nothing is left to apply them to.
func (l *rulesLoop) setRules(r []rules.Rule, quiet time.Duration) {
	u := ruleUpdate{rules: r, quietTimeout: quiet, done: make(chan struct{})}
	select {
	case l.updates <- u:
		<-u.done
	case <-l.done:
	}
}

// reportAvailability tells the sink which cameras deliver frames (state
// connected), when that changed since it last told. Called every tick, so a
// camera that goes down is unavailable in Home Assistant within a tick of
// capture noticing. A camera a reload removed is forgotten: the sink forgets
// it too, so if it comes back it must be told again.
func (l *rulesLoop) reportAvailability() {
	present := map[string]bool{}
	for _, st := range l.cameras() {
		present[st.Name] = true
		up := st.State == capture.StateConnected
		if was, ok := l.up[st.Name]; !ok || was != up {
			l.up[st.Name] = up
			l.sink.CameraAvailable(st.Name, up)
		}
	}
	for name := range l.up {
		if !present[name] {
			delete(l.up, name)
		}
	}
}

func rulesFor(cfg *configs.Config) []rules.Rule {
	var out []rules.Rule
	for _, c := range cfg.Cameras {
		for _, l := range c.Labels {
			out = append(out, rules.Rule{
				Camera: c.Name, Label: l.Name, Prompts: l.EffectivePrompts(),
				Threshold: l.Threshold, OffThreshold: l.EffectiveOffThreshold(),
				MinFrames: l.MinFrames, OffFrames: l.OffFrames,
				OffDelay: l.OffDelay.D(), Cooldown: l.Cooldown.D(), Slug: kit.Slug(l.Name),
			})
		}
	}
	return out
}

// quietTimeout ends the events of a camera that stopped delivering frames,
// but not those of one stall and reopen: the stall is noticed after
// read_timeout, the reopen follows within about 2 s (the stalled read lets
// go, the first backoff step) and may take open_timeout; 5 s cover the
// gaps. Decoding key frames only (decode keyframes or auto), frames come a
// keyframe interval apart, a stall is noticed after open_timeout at most
// and the stalled read lets go only then (capture's reader.watched): allow
// open_timeout twice. A dead camera ends its events.
func quietTimeout(cfg *configs.Config) time.Duration {
	q := rules.DefaultQuietTimeout
	for _, c := range cfg.Cameras {
		q = max(q, 3*c.ReadTimeout.D(), c.ReadTimeout.D()+c.OpenTimeout.D()+5*time.Second)
		if c.Decode != "all" {
			q = max(q, 2*c.OpenTimeout.D()+5*time.Second)
		}
	}
	return q
}
