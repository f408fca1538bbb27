package publish

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/siglipd/siglipd/configs"
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

	Discovery       bool
	DiscoveryPrefix string // default "homeassistant"

	ScoresEnabled    bool
	ScoresInterval   time.Duration // default 1s
	SnapshotsEnabled bool
	SnapshotMaxBytes int // default 256 KiB

	Version string // reported to Home Assistant as sw_version
	Logger  *slog.Logger
}

// retainedFile, in OutboxDir beside the outbox's own files, lists the
// retained topics we published: what Announce may have to clear.
const retainedFile = "retained.json"

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
type MQTT struct {
	opts   MQTTOptions
	log    *slog.Logger
	t      topics
	broker string // opts.Broker, password redacted: for logs and Status

	mu           sync.Mutex
	box          *outbox
	latest       map[string]message // latest value per topic (states, snapshots, scores) waiting to go out
	latestOrder  []string           // topics of latest, in the order they first changed
	states       map[string]string  // state topic → ON/OFF: what the broker should hold
	cameraUp     map[string]string  // camera availability topic → online/offline: likewise
	cams         []Camera
	announced    bool // Announce was called: until then there is nothing to announce, or to remove
	needAnnounce bool
	owned        map[string]bool      // retained topics we published (persisted in retainedFile)
	lastScores   map[string]time.Time // camera → time of the scores last published
	st           Status
	// State-change logging: each problem is logged when it starts and when it ends.
	outboxFull       bool
	droppedWhileFull uint64
	diskFailing      bool
	snapshotWarned   bool
	started, closed  bool

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
	m := &MQTT{
		opts: opts, log: opts.Logger, t: newTopics(opts.TopicPrefix, opts.DiscoveryPrefix),
		broker: configs.RedactURL(opts.Broker), box: box,
		latest: map[string]message{}, states: map[string]string{},
		owned: map[string]bool{}, lastScores: map[string]time.Time{}, cameraUp: map[string]string{},
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
	}
	m.st = Status{Sink: "mqtt", Broker: m.broker, OutboxMax: opts.OutboxMax}
	for _, p := range problems {
		m.st.OutboxErrors++
		m.log.Warn("mqtt outbox: unreadable message file set aside", "error", p)
	}
	if n := box.len(); n > 0 {
		m.log.Info("mqtt outbox: events from the previous run will be sent", "dir", opts.OutboxDir, "events", n)
	}
	if dropped := box.trim(); dropped > 0 { // OutboxMax was lowered since
		m.st.EventsDropped += uint64(dropped)
		m.log.Warn("mqtt outbox: over its new bound; dropped the oldest events", "dir", opts.OutboxDir, "dropped", dropped, "max", opts.OutboxMax)
	}
	var owned []string
	if err := m.loadJSON(retainedFile, &owned); err != nil {
		m.log.Warn("mqtt: cannot read the list of retained topics; stale Home Assistant entities may stay", "error", err)
	}
	for _, t := range owned {
		m.owned[t] = true
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
		return fmt.Errorf("mqtt: broker URL %s: %v", configs.RedactURL(o.Broker), configs.RedactURL(err.Error()))
	case !slices.Contains([]string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"}, u.Scheme):
		return fmt.Errorf("mqtt: broker URL %s: scheme must be tcp, mqtt, ssl, tls, mqtts, ws or wss", configs.RedactURL(o.Broker))
	case u.Hostname() == "":
		return fmt.Errorf("mqtt: broker URL %s has no host", configs.RedactURL(o.Broker))
	case (o.CAFile != "" || o.CertFile != "") && !isTLS(u.Scheme):
		// paho silently ignores TLS settings on a plain scheme; a user who
		// set a CA expects encryption, so say so instead of sending in clear.
		return fmt.Errorf("mqtt: TLS files are set but broker URL %s is not TLS (use ssl://, mqtts:// or wss://)", configs.RedactURL(o.Broker))
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
	return nil
}

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
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cams = nil
	present := map[string]bool{}
	for _, c := range cams {
		c.Labels = slices.Clone(c.Labels)
		m.cams = append(m.cams, c)
		up := m.t.cameraAvailable(c.Name)
		present[up] = true
		if _, ok := m.cameraUp[up]; !ok {
			m.cameraUp[up] = Offline
		}
		for _, l := range c.Labels {
			st := m.t.state(c.Name, l.Name)
			present[st] = true
			if _, ok := m.states[st]; !ok {
				m.states[st] = StateOff
			}
		}
	}
	for st := range m.states {
		if !present[st] {
			delete(m.states, st)
			m.dropLatestLocked(st)
		}
	}
	for up := range m.cameraUp {
		if !present[up] {
			delete(m.cameraUp, up)
			m.dropLatestLocked(up)
		}
	}
	m.announced, m.needAnnounce = true, true
	m.signal()
}

// Event queues ev (see Sink). The event is on disk when Event returns.
func (m *MQTT) Event(ev rules.Event, snapshot []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		m.log.Debug("mqtt: event after Close ignored", "id", ev.ID, "type", ev.Type)
		return
	}
	m.queueEventLocked(ev, snapshot)
	m.signal()
}

func (m *MQTT) queueEventLocked(ev rules.Event, snapshot []byte) {
	ev = normalizeEvent(ev)
	payload, err := json.Marshal(ev)
	if err != nil { // only a NaN or Inf score can do this; rules never produces one
		m.log.Error("mqtt: event cannot be encoded; not published", "id", ev.ID, "error", err)
		return
	}
	if m.opts.SnapshotsEnabled && ev.Type == rules.TypeStart && len(snapshot) > 0 {
		if len(snapshot) > m.opts.SnapshotMaxBytes {
			m.st.SnapshotsSkipped++
			if !m.snapshotWarned { // once per process: the size of a camera's JPEGs does not change
				m.snapshotWarned = true
				m.log.Warn("mqtt: snapshot larger than mqtt.snapshots.max_bytes not published (logged once)",
					"camera", ev.Camera, "bytes", len(snapshot), "max_bytes", m.opts.SnapshotMaxBytes)
			}
		} else {
			m.setLatestLocked(message{Topic: m.t.snapshot(ev.Camera), Payload: slices.Clone(snapshot), QoS: m.opts.QoS, Retain: true})
		}
	}

	state := StateOn
	if ev.Type == rules.TypeEnd {
		state = StateOff
	}
	if st := m.t.state(ev.Camera, ev.Label); m.states[st] != state {
		m.states[st] = state
		m.setLatestLocked(message{Topic: st, Payload: []byte(state), QoS: m.opts.QoS, Retain: true})
	}

	dropped, err := m.box.add(message{Topic: m.t.events(), Payload: payload, QoS: m.opts.QoS, Retain: m.opts.Retain})
	switch {
	case err != nil:
		m.st.OutboxErrors++
		if !m.diskFailing {
			m.diskFailing = true
			m.log.Error("mqtt outbox: cannot write events to disk; keeping them in memory (lost if the process dies)", "error", err)
		}
	case m.diskFailing:
		m.diskFailing = false
		m.log.Info("mqtt outbox: writing to disk again", "dir", m.opts.OutboxDir)
	}
	if dropped > 0 {
		m.st.EventsDropped += uint64(dropped)
		m.droppedWhileFull += uint64(dropped)
		if !m.outboxFull {
			m.outboxFull = true
			m.log.Warn("mqtt outbox full: dropping the oldest events until the broker takes them",
				"dir", m.opts.OutboxDir, "max", m.opts.OutboxMax)
		}
	}
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
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	payload := Offline
	if up {
		payload = Online
	}
	topic := m.t.cameraAvailable(camera)
	if m.cameraUp[topic] == payload {
		return
	}
	m.cameraUp[topic] = payload
	m.setLatestLocked(message{Topic: topic, Payload: []byte(payload), QoS: 1, Retain: true})
	m.signal()
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
	labels := make([]string, 0, len(probs))
	for l := range probs {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	for _, l := range labels {
		p := strconv.FormatFloat(probs[l], 'f', 4, 64)
		m.setLatestLocked(message{Topic: m.t.score(camera, l), Payload: []byte(p)})
	}
	m.signal()
}

// Close (when started) flushes what it can within ctx, publishes "offline"
// and disconnects. Events the broker has not taken stay
// in the outbox for the next run. It returns ctx's error when the flush was
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
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.box.len(); n > 0 {
		m.log.Info("mqtt: stopped with events not yet delivered; they are sent after the next start", "events", n, "dir", m.opts.OutboxDir)
	}
	m.box.close()
	return err
}

// Status reports the connection and counters.
func (m *MQTT) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.st
	s.OutboxDepth = m.box.len()
	return s
}

func (m *MQTT) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *MQTT) setLatestLocked(msg message) {
	if _, ok := m.latest[msg.Topic]; !ok {
		m.latestOrder = append(m.latestOrder, msg.Topic)
	}
	m.latest[msg.Topic] = msg
}

func (m *MQTT) dropLatestLocked(topic string) {
	if _, ok := m.latest[topic]; ok {
		delete(m.latest, topic)
		m.latestOrder = slices.DeleteFunc(m.latestOrder, func(t string) bool { return t == topic })
	}
}

// loadJSON reads OutboxDir/name into v; a missing file is no error.
func (m *MQTT) loadJSON(name string, v any) error {
	path := filepath.Join(m.opts.OutboxDir, name)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// saveJSON replaces OutboxDir/name atomically (temporary file, rename),
// fsync'ing the file first when durable.
func (m *MQTT) saveJSON(name string, v any, durable bool) error {
	path := filepath.Join(m.opts.OutboxDir, name)
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f, err := os.CreateTemp(m.opts.OutboxDir, name+"*"+tmpExt)
	if err != nil {
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	_, err = f.Write(b)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	return nil
}
