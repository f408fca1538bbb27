package publish

import (
	"log/slog"
	"slices"
	"sync"

	"github.com/siglipd/siglipd/internal/kit"
)

// pending is what waits to be sent, in the order it goes out: first the
// latest value of each topic whose value changes (label states, camera
// availability, snapshots, scores: only the newest matters, so a newer one
// replaces an older one), then the events in the outbox, oldest first, each
// kept on disk until the broker acknowledges it.
//
// It is safe for concurrent use: the sink's methods add, the connection
// takes. One message is in flight at a time (next, then done or putBack).
type pending struct {
	log *slog.Logger

	mu          sync.Mutex
	box         *outbox
	latest      map[string]message // topic → newest value not yet sent
	latestOrder []string           // topics of latest, in the order they first changed
	closed      bool

	// Counters, for Status.
	eventsDropped, eventsPublished uint64
	// State changes, each logged when it starts and when it ends.
	full             bool // the outbox is full: the oldest events are dropped
	droppedWhileFull uint64
	disk             *kit.StateFile // the outbox's files: events that could not be written are kept in memory
}

// item is what is taken for sending: a latest value (one message) or an
// event (its messages, in order).
type item struct {
	msgs  []message
	event bool   // from the outbox (else a latest value)
	seq   uint64 // outbox sequence of an event
}

func newPending(box *outbox, disk *kit.StateFile, log *slog.Logger) *pending {
	return &pending{log: log, box: box, disk: disk, latest: map[string]message{}}
}

// addEvent queues an event (its messages, one outbox record), after the
// latest values that go with it (its label's state, its snapshot), which
// are therefore sent first. After close it does nothing and returns false.
func (p *pending) addEvent(event []message, with ...message) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, m := range with {
		p.setLatestLocked(m)
	}
	dropped, err := p.box.add(event...)
	if p.disk.Wrote(err) == nil {
		p.persistLocked() // the disk works: write what it could not take
	}
	if dropped > 0 {
		p.eventsDropped += uint64(dropped)
		p.droppedWhileFull += uint64(dropped)
		if !p.full {
			p.full = true
			p.log.Warn("mqtt outbox full: dropping the oldest events until the broker takes them", "dir", p.box.dir, "max", p.box.max)
		}
	}
	return true
}

// persist writes the events kept in memory only, and removes the files of
// delivered events that could not be removed, as far as the disk lets it
// (a batch at a time). Called again and again (at every event, at every
// failed connection attempt), so that what a full or read-only disk left
// undone is done soon after it works again, without a loop of its own.
func (p *pending) persist() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.persistLocked()
	}
}

func (p *pending) persistLocked() {
	if len(p.box.stale) > 0 || p.box.memoryOnly() > 0 {
		p.disk.Retried(p.box.persist())
	}
}

// setLatest makes msg its topic's value to send.
func (p *pending) setLatest(msgs ...message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		p.setLatestLocked(m)
	}
}

func (p *pending) setLatestLocked(msg message) {
	if _, ok := p.latest[msg.Topic]; !ok {
		p.latestOrder = append(p.latestOrder, msg.Topic)
	}
	p.latest[msg.Topic] = msg
}

// dropLatest forgets the unsent values of topics (a label or camera that is
// gone).
func (p *pending) dropLatest(topics ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range topics {
		p.dropLatestLocked(t)
	}
}

func (p *pending) dropLatestLocked(topic string) {
	if _, ok := p.latest[topic]; ok {
		delete(p.latest, topic)
		p.latestOrder = slices.DeleteFunc(p.latestOrder, func(t string) bool { return t == topic })
	}
}

// dropStale forgets the unsent values that are not retained (scores): after
// a time without a connection they are stale.
func (p *pending) dropStale() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range slices.Clone(p.latestOrder) {
		if !p.latest[t].Retain {
			p.dropLatestLocked(t)
		}
	}
}

// next takes the next item to send: a latest value, else the oldest
// event. false when nothing waits.
func (p *pending) next() (item, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.latestOrder) > 0 {
		topic := p.latestOrder[0]
		msg := p.latest[topic]
		p.dropLatestLocked(topic)
		return item{msgs: []message{msg}}, true
	}
	rec, ok := p.box.take()
	if !ok {
		return item{}, false
	}
	return item{msgs: rec.msgs, event: true, seq: rec.seq}, true
}

// done records that the broker took it.
func (p *pending) done(it item) {
	if !it.event {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.box.done(it.seq)
	p.eventsPublished++
	if p.full && p.box.len() < p.box.max {
		p.log.Info("mqtt outbox has room again", "dropped_while_full", p.droppedWhileFull)
		p.full, p.droppedWhileFull = false, 0
	}
}

// putBack returns an item that could not be sent, to go first next time
// (a latest value only if no newer one came meanwhile). An event goes back
// whole: those of its messages the broker took are sent again, which
// at-least-once delivery allows and keeps one record per event.
func (p *pending) putBack(it item) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if it.event {
		p.box.release()
		return
	}
	msg := it.msgs[0]
	if _, newer := p.latest[msg.Topic]; !newer {
		p.latest[msg.Topic] = msg
		p.latestOrder = slices.Insert(p.latestOrder, 0, msg.Topic)
	}
}

// events is how many events wait in the outbox.
func (p *pending) events() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.box.len()
}

// status fills the outbox's part of a Status.
func (p *pending) status(s *Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.OutboxDepth = p.box.len()
	s.EventsDropped, s.EventsPublished = p.eventsDropped, p.eventsPublished
}

// close writes what it can of the events kept in memory only, closes the
// outbox, and returns how many events wait on disk for the next run
// (kept) and how many could not be written (lost).
func (p *pending) close() (kept, lost int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for n := p.box.memoryOnly(); n > 0; n = p.box.memoryOnly() {
		p.persistLocked()
		if p.box.memoryOnly() == n { // the disk takes no more
			break
		}
	}
	p.box.close()
	lost = p.box.memoryOnly()
	return p.box.len() - lost, lost
}
