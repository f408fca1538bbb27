// Package rules turns the stream of SigLIP probabilities into trustworthy
// events: per camera × label, a small state machine decides when a label
// starts being seen, when it is seen "more" (update) and when it is gone.
//
// The package is pure: no I/O, no goroutines, no wall clock. Every time comes
// from a sample's frame time (Observe) or from the caller (Tick, SetRules),
// so a test drives it with made-up times and gets the same answer every run.
//
// Two clocks: the times the Machine is given and compares (frame times,
// ticks, cooldowns, off_delay, the quiet timeout) are one timeline that must
// not jump; the daemon gives it a monotonic one. The times it reports (in
// events and states) are wall-clock times: that timeline + WallOffset. When
// the wall clock is stepped (an edge box without a real-time clock syncing
// NTP, days after it booted), the caller changes WallOffset: reported times
// follow the new wall clock from the next event on, and nothing starts,
// ends or waits longer because of the step.
//
// # The state machine of one camera × label
//
//	       p ≥ threshold for min_frames consecutive samples
//	       and the cooldown since the last end has passed
//	OFF ───────────────────────────────────────────────────▶ ON   (start)
//	 ▲                                                        │
//	 │   p < off_threshold for off_frames consecutive         │  top score rises by
//	 │   samples AND for at least off_delay (both must hold), │  UpdateMinRise, at most
//	 └─── or no sample for QuietTimeout (camera gone quiet) ──┘  once per UpdateMinInterval (update)
//	                            (end)
//
// Trigger: consecutive samples rather than a median window, because a count
// is what users reason about ("two frames in a row") and it needs no buffer.
// A sample between off_threshold and threshold keeps an ON label ON and an
// OFF label OFF (hysteresis); it also resets both consecutive counts.
//
// Cooldown: samples at or above threshold during the cooldown still count
// toward min_frames, but the start waits for the first such sample at or
// after end_time + cooldown. So a label that stays visible starts again as
// soon as the cooldown is over, and never before.
//
// Times: start_time is the frame time of the sample that completed the
// trigger. end_time is the moment both off conditions held: the frame time of
// the sample that completed off_frames, or below_since + off_delay when the
// delay was the last to elapse. Because that moment is computed, not observed,
// the end time does not depend on how often Tick is called: Observe runs the
// same time checks as Tick (as of the new frame's time) before it looks at
// the sample.
//
// Quiet camera: an ON label whose camera has sent no sample for QuietTimeout
// ends at last_sample + QuietTimeout. An ON state with no evidence behind it
// would be a lie to the automation that acts on it; the default is long
// enough that one camera reconnect does not end events.
//
// Every event has an end. Events still ON when the daemon stops end with
// Close; events a run left ON when it died (SIGKILL, power cut) are ended by
// the next run with Ended, from a journal the daemon keeps for this package
// (it holds the last start or update of each event not ended). So ending
// events is not a sink's business: every sink gets every end.
//
// Samples must come in increasing frame time per camera; a sample that is not
// after the previous one of its pair is ignored (the pipeline reorders
// nothing and its timeline does not jump, so this is only a guard). NaN
// probabilities and labels without a rule are ignored.
package rules

import (
	"cmp"
	"fmt"
	"math"
	"time"
)

// Version is the "v" of every event payload. It changes only when a field
// changes meaning or disappears; new fields may be added within a version.
const Version = 1

// Event types.
const (
	TypeStart  = "start"
	TypeUpdate = "update"
	TypeEnd    = "end"
)

const (
	// UpdateMinRise is how much the top score must rise (in probability) since
	// the last start/update before an update is sent: smaller rises are the
	// frame-to-frame noise of a still scene and would only spam subscribers.
	// A choice, not a measurement.
	UpdateMinRise = 0.05
	// UpdateMinInterval is the least time between two reports (start or update)
	// of one event. A rise during the interval is reported by the first sample
	// after it. A choice, not a measurement.
	UpdateMinInterval = 5 * time.Second
	// DefaultQuietTimeout ends ON events of a camera that stopped sending
	// samples: 3 × the default camera read_timeout (10 s), so one stall and
	// reconnect does not end events, a dead camera does.
	DefaultQuietTimeout = 30 * time.Second
)

// Rule is the trigger configuration of one camera × label.
type Rule struct {
	Camera, Label string
	Prompts       []string // reported in events; the texts the label was scored with
	// Threshold starts an event; OffThreshold (≤ Threshold) is the probability
	// under which an active label counts as gone. Both are used as given: the
	// daemon passes configs.Label.EffectiveOffThreshold (threshold − 0.1, or half
	// the threshold under 0.2).
	Threshold, OffThreshold float64
	// MinFrames consecutive samples ≥ Threshold start an event; OffFrames
	// consecutive samples < OffThreshold, lasting at least OffDelay, end it.
	// Values below 1 count as 1.
	MinFrames, OffFrames int
	OffDelay             time.Duration
	// Cooldown is the least time from an end to the next start.
	Cooldown time.Duration
	// Slug is the label's topic-safe name (lower case, a-z, 0-9 and "_"),
	// which event ids end with; the daemon gives the one MQTT topics use.
	// Empty: the label as it is.
	Slug string
}

// Event is what the rules report. Its JSON form is the payload published on
// <prefix>/events (schema v1, see docs/03-mqtt-home-assistant.md):
//
//	{"v":1,"type":"start","id":"1732723200.500000-driveway-car","camera":"driveway",
//	 "label":"car","prompts":["a car"],"score":0.81,"top_score":0.81,"threshold":0.5,
//	 "start_time":"2024-11-27T16:00:00.5Z","end_time":null,"frame_time":"2024-11-27T16:00:00.5Z"}
//
// ID is the same on the start, updates and end of one event. Its time part
// is the start's wall time as the clock read then, made unique per camera ×
// label: after a wall-clock jump it may differ from StartTime, which always
// follows the wall clock of the message.
type Event struct {
	V         int        `json:"v"`
	Type      string     `json:"type"` // start | update | end
	ID        string     `json:"id"`
	Camera    string     `json:"camera"`
	Label     string     `json:"label"`
	Prompts   []string   `json:"prompts"`
	Score     float64    `json:"score"`     // probability of the frame that caused this event
	TopScore  float64    `json:"top_score"` // highest probability since the event started
	Threshold float64    `json:"threshold"`
	StartTime time.Time  `json:"start_time"`
	EndTime   *time.Time `json:"end_time"` // null until the end event
	FrameTime time.Time  `json:"frame_time"`
}

// LabelState is one camera × label as of now, for status pages.
type LabelState struct {
	Camera, Label string
	On            bool
	Score         float64   // last sample's probability
	TopScore      float64   // highest probability of the current event; 0 when off
	StartTime     time.Time // start of the current event; zero when off
	EventID       string    // id of the current event; "" when off
	LastSample    time.Time // zero before the first sample
	CooldownUntil time.Time // no start before this time
}

// Engine is what the daemon drives; *Machine implements it.
type Engine interface {
	// Observe feeds the probabilities (by label name) of one frame of one
	// camera and returns the events they cause, in order.
	Observe(camera string, frameTime time.Time, probs map[string]float64) []Event
	// Tick lets time-based rules act without new samples: off_delay elapsed,
	// camera gone quiet (see the package comment).
	Tick(now time.Time) []Event
	// SetRules replaces the rule set on config reload: pairs whose rule is
	// unchanged or re-tuned keep their state; removed pairs that were ON end
	// with an end event at now.
	SetRules(rules []Rule, now time.Time) []Event
	// Close ends every event that is ON, at now, in rule order (shutdown).
	Close(now time.Time) []Event
	// States reports every pair's current state, in rule order.
	States() []LabelState
}

var _ Engine = (*Machine)(nil)

type key struct{ camera, label string }

// Machine holds the state machines of all camera × label pairs. It is not
// safe for concurrent use: the daemon calls it from one goroutine.
type Machine struct {
	// QuietTimeout ends an ON event when its camera sent no sample for this
	// long; 0 disables the rule. New sets DefaultQuietTimeout.
	QuietTimeout time.Duration
	// WallOffset is added to every time the Machine reports (an Event's
	// start, end and frame times, a LabelState's times): the wall clock
	// minus the timeline the Machine is driven on. 0 when that timeline is
	// the wall clock, as in tests. See the package comment.
	WallOffset time.Duration

	pairs    map[key]*pair
	order    []*pair            // rule order: events and States come out in it
	byCamera map[string][]*pair // rule order within the camera
}

// pair is the state of one camera × label.
type pair struct {
	rule Rule
	m    *Machine // for WallOffset

	lastID time.Time // wall time in the id of the last start: ids only grow

	seen      bool // a sample has arrived
	lastTime  time.Time
	lastScore float64

	// While OFF.
	run           int     // consecutive samples ≥ Threshold
	runTop        float64 // highest score of the run
	cooldownUntil time.Time

	// While ON.
	on          bool
	id          string
	start       time.Time
	top         float64
	below       int       // consecutive samples < OffThreshold
	belowSince  time.Time // frame time of the first of them
	reportedTop float64   // TopScore of the last start/update
	reportedAt  time.Time // frame time of the last start/update
}

// New returns a Machine for rules (see SetRules for how they are read).
func New(rules []Rule) *Machine {
	m := &Machine{QuietTimeout: DefaultQuietTimeout}
	m.SetRules(rules, time.Time{})
	return m
}

// SetRules replaces the rule set. A pair is identified by camera and label
// name: a rule whose name stays keeps its state whatever else changed
// (thresholds, frames, prompts); the new values apply from the next sample.
// A pair that is no longer in rules and was ON ends at now. When rules holds
// the same camera and label twice, the first wins.
func (m *Machine) SetRules(rules []Rule, now time.Time) []Event {
	old := m.pairs
	m.pairs = make(map[key]*pair, len(rules))
	m.order = m.order[:0:0]
	m.byCamera = map[string][]*pair{}
	for _, r := range rules {
		k := key{r.Camera, r.Label}
		if _, dup := m.pairs[k]; dup {
			continue
		}
		p := old[k]
		if p == nil {
			p = &pair{m: m}
		}
		p.rule = normalize(r)
		m.pairs[k] = p
		m.order = append(m.order, p)
		m.byCamera[r.Camera] = append(m.byCamera[r.Camera], p)
	}
	// End the removed pairs that were ON, in their old rule order.
	var evs []Event
	for _, p := range m.sortedOld(old) {
		if _, kept := m.pairs[key{p.rule.Camera, p.rule.Label}]; !kept && p.on {
			evs = append(evs, p.end(now))
		}
	}
	return evs
}

// sortedOld lists the old pairs in a deterministic order (camera, label),
// since the old rule order is gone with the old slices.
func (m *Machine) sortedOld(old map[key]*pair) []*pair {
	ps := make([]*pair, 0, len(old))
	for _, p := range old {
		ps = append(ps, p)
	}
	for i := 1; i < len(ps); i++ { // insertion sort: reloads are rare and small
		for j := i; j > 0 && less(ps[j], ps[j-1]); j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
	return ps
}

func less(a, b *pair) bool {
	if a.rule.Camera != b.rule.Camera {
		return a.rule.Camera < b.rule.Camera
	}
	return a.rule.Label < b.rule.Label
}

func normalize(r Rule) Rule {
	r.MinFrames = max(r.MinFrames, 1)
	r.OffFrames = max(r.OffFrames, 1)
	r.OffThreshold = min(r.OffThreshold, r.Threshold)
	r.OffDelay = max(r.OffDelay, 0)
	r.Cooldown = max(r.Cooldown, 0)
	r.Prompts = append([]string{}, r.Prompts...) // never null in JSON, never shared with the caller
	return r
}

// Observe feeds one frame's probabilities of one camera.
func (m *Machine) Observe(camera string, frameTime time.Time, probs map[string]float64) []Event {
	var evs []Event
	for _, p := range m.byCamera[camera] {
		evs = append(evs, p.expire(frameTime, m.QuietTimeout)...)
		s, ok := probs[p.rule.Label]
		if !ok || math.IsNaN(s) || (p.seen && !frameTime.After(p.lastTime)) {
			continue
		}
		evs = append(evs, p.observe(frameTime, s)...)
	}
	return evs
}

// Tick applies the time-based rules as of now to every pair.
func (m *Machine) Tick(now time.Time) []Event {
	var evs []Event
	for _, p := range m.order {
		evs = append(evs, p.expire(now, m.QuietTimeout)...)
	}
	return evs
}

// Close ends every ON pair at now, in rule order: the daemon calls it when
// it stops, so no event is left without an end. The pairs stay, OFF (with
// their cooldown), so the Machine remains usable.
func (m *Machine) Close(now time.Time) []Event {
	var evs []Event
	for _, p := range m.order {
		if p.on {
			evs = append(evs, p.end(now))
		}
	}
	return evs
}

// Ended is ev, the last start or update of an event, turned into the end of
// that event at the given time: for events a run left open when it died,
// ended by the next run from its journal.
func Ended(ev Event, at time.Time) Event {
	ev.Type, ev.EndTime = TypeEnd, &at
	return ev
}

// Rules returns the rules in force, in order.
func (m *Machine) Rules() []Rule {
	out := make([]Rule, len(m.order))
	for i, p := range m.order {
		out[i] = p.rule
	}
	return out
}

// On reports whether one of the camera's labels is ON (an event open),
// without the copying States does: the daemon asks it for every frame.
func (m *Machine) On(camera string) bool {
	for _, p := range m.byCamera[camera] {
		if p.on {
			return true
		}
	}
	return false
}

// States reports every pair in rule order.
func (m *Machine) States() []LabelState {
	out := make([]LabelState, 0, len(m.order))
	for _, p := range m.order {
		s := LabelState{
			Camera: p.rule.Camera, Label: p.rule.Label, On: p.on,
			Score: p.lastScore, LastSample: m.wall(p.lastTime), CooldownUntil: m.wall(p.cooldownUntil),
		}
		if p.on {
			s.TopScore, s.StartTime, s.EventID = p.top, m.wall(p.start), p.id
		}
		out = append(out, s)
	}
	return out
}

// wall is t in wall-clock time; the zero time stays zero ("none").
func (m *Machine) wall(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Add(m.WallOffset)
}

// expire applies the time-based rules as of now: an ON pair ends when its
// off_delay or the quiet timeout has passed; an OFF pair forgets a trigger
// run interrupted by a quiet gap (consecutive means without such a gap).
func (p *pair) expire(now time.Time, quiet time.Duration) []Event {
	if !p.seen {
		return nil
	}
	quietAt := p.lastTime.Add(quiet)
	if !p.on {
		if quiet > 0 && p.run > 0 && !now.Before(quietAt) {
			p.run, p.runTop = 0, 0
		}
		return nil
	}
	deadline, ok := time.Time{}, false
	if p.below >= p.rule.OffFrames {
		// off_frames is met; observe would have ended the event already if
		// off_delay had elapsed too, so the delay is what is left.
		deadline, ok = p.belowSince.Add(p.rule.OffDelay), true
	}
	if quiet > 0 && (!ok || quietAt.Before(deadline)) {
		deadline, ok = quietAt, true
	}
	if ok && !now.Before(deadline) {
		return []Event{p.end(deadline)}
	}
	return nil
}

// observe applies one sample (already known to be newer than the last).
func (p *pair) observe(t time.Time, s float64) []Event {
	p.seen, p.lastTime, p.lastScore = true, t, s
	r := p.rule
	if !p.on {
		if s >= r.Threshold {
			p.run++
			p.runTop = max(p.runTop, s)
		} else {
			p.run, p.runTop = 0, 0
		}
		if p.run >= r.MinFrames && !t.Before(p.cooldownUntil) {
			return []Event{p.begin(t)}
		}
		return nil
	}

	p.top = max(p.top, s)
	if s < r.OffThreshold {
		if p.below == 0 {
			p.belowSince = t
		}
		p.below++
		if p.below >= r.OffFrames && !t.Before(p.belowSince.Add(r.OffDelay)) {
			return []Event{p.end(t)}
		}
		return nil
	}
	p.below = 0
	if p.top >= p.reportedTop+UpdateMinRise && t.Sub(p.reportedAt) >= UpdateMinInterval {
		p.reportedTop, p.reportedAt = p.top, t
		return []Event{p.event(TypeUpdate, nil)}
	}
	return nil
}

func (p *pair) begin(t time.Time) Event {
	p.on = true
	p.start = t
	// The id's time is the wall time of the start, to the microsecond,
	// after the last id's: a wall clock stepped back must not make an id
	// that was already used.
	at := p.m.wall(t).Truncate(time.Microsecond)
	if !at.After(p.lastID) {
		at = p.lastID.Add(time.Microsecond)
	}
	p.lastID = at
	p.id = eventID(at, p.rule.Camera, cmp.Or(p.rule.Slug, p.rule.Label))
	p.top = p.runTop
	p.below = 0
	p.reportedTop, p.reportedAt = p.top, t
	p.run, p.runTop = 0, 0
	return p.event(TypeStart, nil)
}

func (p *pair) end(at time.Time) Event {
	ev := p.event(TypeEnd, &at)
	p.on = false
	p.cooldownUntil = at.Add(p.rule.Cooldown)
	p.run, p.runTop, p.below = 0, 0, 0
	return ev
}

func (p *pair) event(typ string, end *time.Time) Event {
	if end != nil {
		wallEnd := p.m.wall(*end)
		end = &wallEnd
	}
	return Event{
		V: Version, Type: typ, ID: p.id,
		Camera: p.rule.Camera, Label: p.rule.Label, Prompts: append([]string{}, p.rule.Prompts...),
		Score: p.lastScore, TopScore: p.top, Threshold: p.rule.Threshold,
		StartTime: p.m.wall(p.start), EndTime: end, FrameTime: p.m.wall(p.lastTime),
	}
}

// eventID is unique per event and readable in logs: the start time in Unix
// seconds with microseconds (as Frigate writes its ids), the camera and the
// label's topic form (slug). begin makes the times of one pair's ids
// strictly increase, even when the wall clock is stepped back.
func eventID(start time.Time, camera, slug string) string {
	return fmt.Sprintf("%d.%06d-%s-%s", start.Unix(), start.Nanosecond()/1000, camera, slug)
}
