// Package publish delivers rules' events to the outside world: over MQTT
// (events, retained ON/OFF states, Home Assistant discovery with an event
// entity per label and an image entity per camera's snapshot, optional
// scores and snapshots, with an on-disk outbox so nothing is lost while the
// broker is away) or as JSON lines on stdout. docs/03-mqtt-home-assistant.md
// describes the topics and payloads for users; this comment is the map for
// readers of the code.
//
// # MQTT, in one picture
//
//	Event, Scores, Announce, CameraAvailable (any goroutine; never the network)
//	   │ states, availability, cameras         │ events, latest values
//	   ▼                                        ▼
//	discovery (discovery.go)              pending (pending.go)
//	  what the broker should hold           the latest value per topic (states,
//	  retained; Home Assistant              availability, snapshots, scores),
//	  configs; the retained topics          then the outbox: events, as files
//	  we own                                on disk, in order
//	   │                                        │
//	   └────────────────┬───────────────────────┘ wake
//	                    ▼
//	run goroutine (conn.go): connect with backoff ─▶ session: online, subscribe
//	  homeassistant/status, announce when due, then latest values, then outbox
//	  events one at a time (an event's messages in order: the events topic's,
//	  then its label's event entity's), each removed only after the broker's
//	  PUBACKs; link holds the connection's state and counters
//
// Each of the three parts has its own lock; MQTT (mqtt.go) holds them
// together and keeps only its open/closed state and the scores' pacing.
//
// One message in flight at a time keeps the order trivially right across
// reconnects, at the cost of one round trip per message: BenchmarkBacklogDrain
// measures it (figures in docs/measurements.md); a full default outbox goes
// out in seconds.
//
// Delivery is at least once: an event whose PUBACK was lost with the
// connection is sent again after reconnecting (all its messages).
// Subscribers de-duplicate by (id, type, frame_time).
package publish

import (
	"context"
	"regexp"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/rules"
)

// Sink is where events go: *MQTT or *Stdout.
type Sink interface {
	// Start begins delivery. For MQTT it connects in the background: a broker
	// that is down or refuses us is retried with backoff forever and logged
	// once per state change; Start itself fails only on misuse (twice). The
	// delivery runs until Close, not until ctx ends, so the last events are
	// still flushed when the daemon's context is cancelled at shutdown.
	Start(ctx context.Context) error
	// Announce declares cameras and labels: Home Assistant discovery configs
	// and initial retained OFF states. Called at start and after every config
	// reload; entities that are no longer present are removed (empty retained
	// config).
	Announce(cams []Camera)
	// Event queues an event and its state change (ON on start and update, OFF
	// on end) and, with Home Assistant discovery, a start or an end on its
	// label's event entity, which is part of the event (in the outbox, with
	// it). It never blocks on the network; nothing is dropped except when
	// the outbox is full (oldest first, counted, logged). An event the disk
	// cannot take (full, read-only) is kept in memory within the same bound
	// and published all the same; it is lost only if the process ends before
	// the broker has it. snapshot is an optional JPEG of the frame that
	// started the event.
	Event(ev rules.Event, snapshot []byte)
	// Scores offers the latest probabilities of one camera's labels; they are
	// published at most once per interval, when enabled.
	Scores(camera string, at time.Time, probs map[string]float64)
	// CameraAvailable says whether a camera delivers frames. MQTT keeps it
	// retained on <prefix>/<camera>/available (online/offline), which Home
	// Assistant reads with the daemon's own availability: a dead camera's
	// entities show unavailable, not "off". Until it is called for a camera
	// that camera counts as offline.
	CameraAvailable(camera string, up bool)
	// Close publishes "offline", flushes what it can within ctx and
	// disconnects. It does not end events: ending them is the rules' job
	// (their ends reach the sink before Close), so every sink gets every end.
	Close(ctx context.Context) error
	// Status reports connection state and counters for /metrics and the
	// status page.
	Status() Status
}

var (
	_ Sink = (*MQTT)(nil)
	_ Sink = (*Stdout)(nil)
)

// Camera is one camera as Home Assistant sees it: a device.
type Camera struct {
	Name   string
	Labels []Label
}

// Label is one binary_sensor of a camera's device.
type Label struct {
	Name        string
	DeviceClass string // Home Assistant binary_sensor device_class; "" for none
	Prompts     []string
}

// Status is a sink's state and counters. Counters only grow while the
// process runs; the daemon exports them as Prometheus counters.
type Status struct {
	Sink           string    // "mqtt" or "stdout"
	Broker         string    // broker URL, password redacted ("" for stdout)
	Connected      bool      // an MQTT session is up (stdout: always true)
	ConnectedSince time.Time // zero while disconnected
	LastError      string    // last connection or delivery problem, explained; "" if none yet
	LastErrorTime  time.Time

	ConnectFailures uint64 // connection attempts that failed
	OutboxDepth     int    // events waiting for the broker's acknowledgement
	OutboxMax       int
	// EventsDropped counts events that were not delivered: MQTT drops the
	// oldest when the outbox is full, stdout a line it could not write.
	EventsDropped uint64

	Published        uint64 // messages acknowledged by the broker (QoS 0: sent), any topic
	EventsPublished  uint64 // of which events
	SnapshotsSkipped uint64 // snapshots larger than SnapshotMaxBytes, not published
}

// Event states on <prefix>/<camera>/<label>/state and availability payloads.
const (
	StateOn  = "ON"
	StateOff = "OFF"

	Online  = "online"
	Offline = "offline"
)

// topics names every topic siglipd publishes, so the rules for topic-safe
// names live in one place:
//   - label names are kit.Slug'ed: lower case, every run of characters
//     other than a-z and 0-9 becomes one "_" ("Garage door open!" →
//     "garage_door_open"), so "+", "#" and "/" never reach a topic;
//   - camera names are used as they are: the config allows only letters,
//     digits, "_" and "-" (anything else, from a caller that skipped the
//     config's validation, is slugged too).
type topics struct {
	prefix    string // siglipd
	discovery string // homeassistant
	node      string // Slug(prefix): the Home Assistant node id and unique_id prefix
}

func newTopics(prefix, discovery string) topics {
	return topics{prefix: prefix, discovery: discovery, node: kit.Slug(prefix)}
}

var cameraLevelRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func cameraLevel(name string) string {
	if cameraLevelRe.MatchString(name) {
		return name
	}
	return kit.Slug(name)
}

func (t topics) available() string { return t.prefix + "/available" }

// cameraAvailable is a camera's own availability. It cannot be a label's
// topic: those have a third level, ".../<label>/state".
func (t topics) cameraAvailable(camera string) string {
	return t.prefix + "/" + cameraLevel(camera) + "/available"
}
func (t topics) events() string { return t.prefix + "/events" }

func (t topics) state(camera, label string) string {
	return t.prefix + "/" + cameraLevel(camera) + "/" + kit.Slug(label) + "/state"
}

func (t topics) score(camera, label string) string {
	return t.prefix + "/" + cameraLevel(camera) + "/" + kit.Slug(label) + "/score"
}

func (t topics) snapshot(camera string) string {
	return t.prefix + "/" + cameraLevel(camera) + "/snapshot"
}

// labelEvent is the state_topic of a label's Home Assistant event entity:
// each start and end as {"event_type": ...}, never retained.
func (t topics) labelEvent(camera, label string) string {
	return t.prefix + "/" + cameraLevel(camera) + "/" + kit.Slug(label) + "/event"
}

// haStatus is where Home Assistant announces its restarts.
func (t topics) haStatus() string { return t.discovery + "/status" }

// objectID names one label entity. A label's slug never contains "__" (runs
// collapse to one "_"), so splitting at the last "__" recovers the camera:
// two (camera, label) pairs never share an id.
func (t topics) objectID(camera, label string) string {
	return cameraLevel(camera) + "__" + kit.Slug(label)
}

func (t topics) uniqueID(camera, label string) string {
	return t.node + "_" + t.objectID(camera, label)
}

func (t topics) discoveryConfig(camera, label string) string {
	return t.discovery + "/binary_sensor/" + t.node + "/" + t.objectID(camera, label) + "/config"
}

// probabilityConfig is the discovery config of a label's probability
// sensor (published with scores).
func (t topics) probabilityConfig(camera, label string) string {
	return t.discovery + "/sensor/" + t.node + "/" + t.objectID(camera, label) + "_probability/config"
}

// eventConfig is the discovery config of a label's event entity.
func (t topics) eventConfig(camera, label string) string {
	return t.discovery + "/event/" + t.node + "/" + t.objectID(camera, label) + "_event/config"
}

// imageConfig is the discovery config of a camera's snapshot as an image
// entity: one per camera, so its object id is the camera's, with a suffix
// (as the probability sensor's) that says what it is.
func (t topics) imageConfig(camera string) string {
	return t.discovery + "/image/" + t.node + "/" + cameraLevel(camera) + "_snapshot/config"
}
