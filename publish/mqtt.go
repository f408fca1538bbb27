package publish

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/rules"
)

// MQTTOptions configures the MQTT sink. The daemon fills it from the
// config's mqtt section; zero values get the defaults noted.
type MQTTOptions struct {
	Broker   string // tcp://, mqtt://, ssl://, tls://, mqtts://, ws://, wss:// (required)
	ClientID string // stable, so the broker keeps our session; default "siglipd"
	Username string
	Password string // never logged
	// CAFile, CertFile and KeyFile are read at every connection attempt, so a
	// fixed file is picked up without a restart. They need a TLS scheme.
	CAFile, CertFile, KeyFile string
	InsecureSkipVerify        bool

	TopicPrefix string // default "siglipd"
	QoS         byte   // of events, states, snapshots and discovery configs, as given (the config defaults to 1)
	Retain      bool   // retain event messages (states are always retained)

	OutboxDir string // required; must survive restarts (e.g. <state_dir>/mqtt)
	OutboxMax int    // events kept while the broker is away; default 10000
	// State accounts for the writes of the outbox ("outbox") and of the
	// list of retained topics ("retained"); default: a set of its own.
	State *kit.StateFiles

	Discovery       bool
	DiscoveryPrefix string // default "homeassistant"

	ScoresEnabled    bool
	ScoresInterval   time.Duration // default 1s
	SnapshotsEnabled bool
	SnapshotMaxBytes int // default 256 KiB

	Version string // reported to Home Assistant as sw_version
	Logger  *slog.Logger
}

// Timing of the connection. None came from a measurement; they are the
// usual values for a LAN broker.
const (
	connectTimeout = 10 * time.Second // TCP + TLS + CONNACK
	keepAlive      = 30 * time.Second // the broker fires our LWT ≈ 1.5 × this after we vanish without a FIN
	pingTimeout    = 10 * time.Second
	publishTimeout = 30 * time.Second       // no PUBACK by then: the connection is treated as broken
	goodbyeTimeout = 2 * time.Second        // for "offline" on close...
	lastWord       = 250 * time.Millisecond // ...and once Close's deadline has passed
	retryMin       = 1 * time.Second        // connection retry backoff: doubles per failure...
	retryMax       = 30 * time.Second       // ...up to this
	remindEvery    = 5 * time.Minute        // a connection that keeps failing is logged again this often
)

// MQTT publishes events to an MQTT broker. It is safe for concurrent use.
//
// Its state is in three parts, each with its own lock: queue (what waits to
// be sent: latest values, then outbox events), ha (the retained states and
// Home Assistant discovery) and link (the connection's state and counters;
// conn.go runs the connection). MQTT's own mutex guards only the few fields
// below it.
type MQTT struct {
	opts   MQTTOptions
	log    *slog.Logger
	t      topics
	broker string // opts.Broker, password redacted: for logs and Status

	queue *pending
	ha    *discovery
	link  link

	mu               sync.Mutex
	lastScores       map[string]time.Time // camera → time of the scores last published
	snapshotsSkipped uint64
	snapshotWarned   bool // logged once per process: a camera's JPEG size does not change
	started, closed  bool

	flapWindow time.Duration // connLog's window: flapWindow, shorter in tests

	wake      chan struct{} // buffered 1: "something to send"
	closing   chan struct{} // closed by Close: flush, say offline, stop
	cancel    context.CancelFunc
	done      chan struct{} // closed when run returns
	closeOnce sync.Once
}

// NewMQTT checks opts and opens the outbox. Events given before Start are
// kept and sent once connected; so are those a previous run could not
// deliver.
func NewMQTT(opts MQTTOptions) (*MQTT, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	box, problems, err := openOutbox(opts.OutboxDir, opts.OutboxMax)
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	t := newTopics(opts.TopicPrefix, opts.DiscoveryPrefix)
	m := &MQTT{
		opts: opts, log: opts.Logger, t: t, broker: kit.RedactURL(opts.Broker),
		queue: newPending(box, opts.State.File("outbox", outboxEffect), opts.Logger), ha: newDiscovery(opts, t), lastScores: map[string]time.Time{},
		flapWindow: flapWindow,
		wake:       make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
	}
	for _, p := range problems {
		m.log.Warn("mqtt outbox: unreadable message file set aside", "error", p)
	}
	if n := box.len(); n > 0 {
		m.log.Info("mqtt outbox: events from the previous run will be sent", "dir", opts.OutboxDir, "events", n)
	}
	if dropped := box.trim(); dropped > 0 { // OutboxMax was lowered since
		m.queue.eventsDropped += uint64(dropped)
		m.log.Warn("mqtt outbox: over its new bound; dropped the oldest events", "dir", opts.OutboxDir, "dropped", dropped, "max", opts.OutboxMax)
	}
	return m, nil
}

// fill applies defaults and rejects options that can never work.
func (o *MQTTOptions) fill() error {
	u, err := url.Parse(o.Broker)
	switch {
	case o.Broker == "":
		return errors.New("mqtt: broker URL is empty")
	case err != nil:
		return fmt.Errorf("mqtt: broker URL %s: %v", kit.RedactURL(o.Broker), kit.RedactURL(err.Error()))
	case !slices.Contains([]string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"}, u.Scheme):
		return fmt.Errorf("mqtt: broker URL %s: scheme must be tcp, mqtt, ssl, tls, mqtts, ws or wss", kit.RedactURL(o.Broker))
	case u.Hostname() == "":
		return fmt.Errorf("mqtt: broker URL %s has no host", kit.RedactURL(o.Broker))
	case (o.CAFile != "" || o.CertFile != "") && !isTLS(u.Scheme):
		// paho silently ignores TLS settings on a plain scheme; a user who
		// set a CA expects encryption, so say so instead of sending in clear.
		return fmt.Errorf("mqtt: TLS files are set but broker URL %s is not TLS (use ssl://, mqtts:// or wss://)", kit.RedactURL(o.Broker))
	case (o.CertFile == "") != (o.KeyFile == ""):
		return errors.New("mqtt: client certificate and key must be given together")
	case o.QoS > 2:
		return fmt.Errorf("mqtt: QoS must be 0, 1 or 2, got %d", o.QoS)
	case o.OutboxDir == "":
		return errors.New("mqtt: outbox folder is required (it keeps events across restarts)")
	}
	o.ClientID = cmp.Or(o.ClientID, "siglipd")
	o.TopicPrefix = cmp.Or(o.TopicPrefix, "siglipd")
	o.DiscoveryPrefix = cmp.Or(o.DiscoveryPrefix, "homeassistant")
	for _, p := range []string{o.TopicPrefix, o.DiscoveryPrefix} {
		if strings.ContainsAny(p, "+#\x00") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
			return fmt.Errorf("mqtt: topic prefix %q must not contain +, # or empty levels", p)
		}
	}
	o.OutboxMax = cmp.Or(max(o.OutboxMax, 0), 10000)
	o.ScoresInterval = cmp.Or(max(o.ScoresInterval, 0), time.Second)
	o.SnapshotMaxBytes = cmp.Or(max(o.SnapshotMaxBytes, 0), 256<<10)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.State == nil {
		o.State = kit.NewStateFiles(o.Logger)
	}
	return nil
}

// outboxEffect is what a full or read-only disk costs the outbox, for the
// line that says so (once, see kit.StateFile).
const outboxEffect = "the outbox cannot hold more events: they are published from memory, and those the broker has not taken are lost if siglipd stops"

func isTLS(scheme string) bool {
	return scheme == "ssl" || scheme == "tls" || scheme == "mqtts" || scheme == "wss"
}

// Start connects in the background and delivers until Close. ctx only
// passes its values on: cancelling it does not stop delivery (Close does),
// so the events of a shutdown are not lost to the cancellation that caused it.
func (m *MQTT) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.closed {
		return errors.New("mqtt: Start called twice or after Close")
	}
	m.started = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	go m.run(runCtx)
	return nil
}

// Announce declares the cameras and labels (see Sink). Labels new to the
// sink start OFF; a label that is ON stays ON.
func (m *MQTT) Announce(cams []Camera) {
	m.queue.dropLatest(m.ha.announce(cams)...)
	m.signal()
}

// Event queues ev (see Sink). The event is on disk when Event returns,
// unless the disk is full or read-only: then it is kept in memory, within
// the outbox's bound, and still published (see outbox).
func (m *MQTT) Event(ev rules.Event, snapshot []byte) {
	if m.isClosed() {
		m.log.Debug("mqtt: event after Close ignored", "id", ev.ID, "type", ev.Type)
		return
	}
	ev = normalizeEvent(ev)
	payload, err := json.Marshal(ev)
	if err != nil { // only a NaN or Inf score can do this; rules never produces one
		m.log.Error("mqtt: event cannot be encoded; not published", "id", ev.ID, "error", err)
		return
	}
	var with []message // sent before the event: its snapshot and its label's state
	if m.opts.SnapshotsEnabled && ev.Type == rules.TypeStart && len(snapshot) > 0 {
		if msg, ok := m.snapshot(ev, snapshot); ok {
			with = append(with, msg)
		}
	}
	state := StateOn
	if ev.Type == rules.TypeEnd {
		state = StateOff
	}
	if msg, changed := m.ha.setState(ev.Camera, ev.Label, state); changed {
		with = append(with, msg)
	}
	event := []message{{Topic: m.t.events(), Payload: payload, QoS: m.opts.QoS, Retain: m.opts.Retain}}
	if m.opts.Discovery && (ev.Type == rules.TypeStart || ev.Type == rules.TypeEnd) {
		event = append(event, m.entityEvent(ev))
	}
	if !m.queue.addEvent(event, with...) {
		m.log.Debug("mqtt: event after Close ignored", "id", ev.ID, "type", ev.Type) // Close ran meanwhile
		return
	}
	m.signal()
}

// haEvent is what a label's Home Assistant event entity receives at a
// start or an end (topics.labelEvent). event_type is the key Home Assistant
// reads; the others become the entity's attributes.
type haEvent struct {
	EventType   string    `json:"event_type"` // start | end
	ID          string    `json:"id"`
	Camera      string    `json:"camera"`
	Label       string    `json:"label"`
	Probability float64   `json:"probability"` // of the frame that caused it: the event's score
	FrameTime   time.Time `json:"frame_time"`
}

// entityEvent is the message of ev for its label's event entity. It is
// never retained, whatever Retain says: Home Assistant ignores a retained
// message on an event entity's topic (the broker replays it to every new
// subscription, so it is no news), and one kept by the broker would only
// be stale.
func (m *MQTT) entityEvent(ev rules.Event) message {
	return message{Topic: m.t.labelEvent(ev.Camera, ev.Label), Payload: haEventPayload(ev), QoS: m.opts.QoS}
}

// haEventPayload is ev as its label's event entity receives it.
func haEventPayload(ev rules.Event) []byte {
	b, _ := json.Marshal(haEvent{EventType: ev.Type, ID: ev.ID, Camera: ev.Camera, Label: ev.Label,
		Probability: ev.Score, FrameTime: ev.FrameTime}) // ev itself encoded: cannot fail
	return b
}

// snapshot is the retained message of an event's JPEG, unless it is larger
// than SnapshotMaxBytes (counted, logged once).
func (m *MQTT) snapshot(ev rules.Event, jpeg []byte) (message, bool) {
	if len(jpeg) <= m.opts.SnapshotMaxBytes {
		return message{Topic: m.t.snapshot(ev.Camera), Payload: slices.Clone(jpeg), QoS: m.opts.QoS, Retain: true}, true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snapshotsSkipped++
	if !m.snapshotWarned {
		m.snapshotWarned = true
		m.log.Warn("mqtt: snapshot larger than mqtt.snapshots.max_bytes not published (logged once)",
			"camera", ev.Camera, "bytes", len(jpeg), "max_bytes", m.opts.SnapshotMaxBytes)
	}
	return message{}, false
}

// normalizeEvent fills what a caller may leave zero, so the payload keeps
// its documented form: "v":1 and "prompts":[] rather than 0 and null.
func normalizeEvent(ev rules.Event) rules.Event {
	if ev.V == 0 {
		ev.V = rules.Version
	}
	if ev.Prompts == nil {
		ev.Prompts = []string{}
	}
	return ev
}

// CameraAvailable records whether camera delivers frames (see Sink); a
// change is published, retained, QoS 1 like the daemon's own availability.
func (m *MQTT) CameraAvailable(camera string, up bool) {
	if m.isClosed() {
		return
	}
	if msg, changed := m.ha.setAvailable(camera, up); changed {
		m.queue.setLatest(msg)
		m.signal()
	}
}

func (m *MQTT) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// Scores offers the latest probabilities of a camera's labels; at most one
// set per camera per ScoresInterval (by frame time) is published, QoS 0, not
// retained: a stale probability is worse than none.
func (m *MQTT) Scores(camera string, at time.Time, probs map[string]float64) {
	if !m.opts.ScoresEnabled {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if last, ok := m.lastScores[camera]; ok && at.Sub(last) < m.opts.ScoresInterval && !at.Before(last) {
		return
	}
	m.lastScores[camera] = at
	var msgs []message
	for _, l := range slices.Sorted(maps.Keys(probs)) {
		p := strconv.FormatFloat(probs[l], 'f', 4, 64)
		msgs = append(msgs, message{Topic: m.t.score(camera, l), Payload: []byte(p)})
	}
	m.queue.setLatest(msgs...)
	m.signal()
}

// Close (when started) flushes what it can within ctx, publishes "offline"
// and disconnects. Events the broker has not taken stay in the outbox for
// the next run, except those the disk could not take (full, read-only):
// they are lost, and said so. It returns ctx's error when the flush was
// cut short; saying "offline" may then take up to ≈ 0.5 s more. With the
// broker unusable it does not wait: one more connection attempt, then stop.
func (m *MQTT) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	started := m.started
	m.mu.Unlock()

	var err error
	if started {
		m.closeOnce.Do(func() { close(m.closing) })
		select {
		case <-m.done:
		case <-ctx.Done():
			err = fmt.Errorf("mqtt: flush cut short: %w", ctx.Err())
			m.cancel()
			<-m.done
		}
		m.cancel()
	}
	kept, lost := m.queue.close()
	if kept > 0 {
		m.log.Info("mqtt: stopped with events not yet delivered; they are sent after the next start", "events", kept, "dir", m.opts.OutboxDir)
	}
	if lost > 0 {
		m.log.Warn("mqtt: stopped with events not yet delivered that the disk could not take; they are lost", "events", lost, "dir", m.opts.OutboxDir)
	}
	return err
}

// Status reports the connection and counters.
func (m *MQTT) Status() Status {
	s := Status{Sink: "mqtt", Broker: m.broker, OutboxMax: m.opts.OutboxMax}
	m.link.status(&s)
	m.queue.status(&s)
	m.mu.Lock()
	s.SnapshotsSkipped = m.snapshotsSkipped
	m.mu.Unlock()
	return s
}

func (m *MQTT) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}
