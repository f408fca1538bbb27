package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/rules"
)

// haConfig is a Home Assistant MQTT discovery config of one entity: a
// binary_sensor (https://www.home-assistant.io/integrations/binary_sensor.mqtt/),
// a sensor, an event (event.mqtt) or an image (image.mqtt). Only the fields
// siglipd sets; field names are Home Assistant's, and each component gets
// only its own (Home Assistant drops a key it does not know, silently).
type haConfig struct {
	Name       string `json:"name"`
	UniqueID   string `json:"unique_id"`
	StateTopic string `json:"state_topic,omitempty"` // all but the image
	PayloadOn  string `json:"payload_on,omitempty"`
	PayloadOff string `json:"payload_off,omitempty"`
	// An event's: the event_type values its state_topic carries.
	EventTypes []string `json:"event_types,omitempty"`
	// An image's: the topic of the JPEG itself, raw bytes.
	ImageTopic  string `json:"image_topic,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	// A sensor's: "measurement" lets Home Assistant keep statistics (a
	// graph over days); 3 decimals is what siglipd publishes.
	StateClass       string           `json:"state_class,omitempty"`
	DisplayPrecision int              `json:"suggested_display_precision,omitempty"`
	ExpireAfter      int              `json:"expire_after,omitempty"`
	Availability     []haAvailability `json:"availability"`
	// AvailabilityMode "all": available only while both siglipd and the
	// camera are online.
	AvailabilityMode string   `json:"availability_mode"`
	DeviceClass      string   `json:"device_class,omitempty"`
	Icon             string   `json:"icon,omitempty"`
	Device           haDevice `json:"device"`
	Origin           haOrigin `json:"origin"`
}

type haAvailability struct {
	Topic               string `json:"topic"`
	PayloadAvailable    string `json:"payload_available"`
	PayloadNotAvailable string `json:"payload_not_available"`
}

type haDevice struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model"`
	SWVersion    string   `json:"sw_version,omitempty"`
}

type haOrigin struct {
	Name      string `json:"name"`
	SWVersion string `json:"sw_version,omitempty"`
}

// discoveryConfig is the retained config of one camera's label: one device
// per camera (identified by <node>_<camera>), one binary_sensor per label.
// Home Assistant names the entity "<camera> <label>" (binary_sensor.driveway_car).
func (t topics) discoveryPayload(cam Camera, l Label, version string) []byte {
	b, _ := json.Marshal(t.labelConfig(cam, l, version)) // plain strings and slices: cannot fail
	return b
}

// labelConfig is a label's binary_sensor config, which its probability
// sensor's starts from.
func (t topics) labelConfig(cam Camera, l Label, version string) haConfig {
	c := t.cameraEntity(cam, version)
	c.Name = l.Name
	c.UniqueID = t.uniqueID(cam.Name, l.Name)
	c.StateTopic = t.state(cam.Name, l.Name)
	c.PayloadOn, c.PayloadOff = StateOn, StateOff
	c.DeviceClass = l.DeviceClass
	if l.DeviceClass == "" {
		c.Icon = "mdi:cctv" // without a class Home Assistant shows a generic dot
	}
	return c
}

// cameraEntity is what every entity of a camera's device has: the
// availability (siglipd's and the camera's), the device and the origin.
func (t topics) cameraEntity(cam Camera, version string) haConfig {
	return haConfig{
		Availability: []haAvailability{
			{Topic: t.available(), PayloadAvailable: Online, PayloadNotAvailable: Offline},
			{Topic: t.cameraAvailable(cam.Name), PayloadAvailable: Online, PayloadNotAvailable: Offline},
		},
		AvailabilityMode: "all",
		Device: haDevice{
			Identifiers:  []string{t.node + "_" + cameraLevel(cam.Name)},
			Name:         cam.Name,
			Manufacturer: "siglipd",
			Model:        "SigLIP zero-shot camera labels",
			SWVersion:    version,
		},
		Origin: haOrigin{Name: "siglipd", SWVersion: version},
	}
}

// probabilityPayload is the discovery config of a label's probability as a
// sensor entity ("<camera> <label> probability"), on the label's score
// topic, in the same device. Scores are not retained and come at most
// once per interval, so the sensor expires (shows unknown) when they stop.
func (t topics) probabilityPayload(cam Camera, l Label, version string, interval time.Duration) []byte {
	c := t.labelConfig(cam, l, version)
	c.Name = l.Name + " probability"
	c.UniqueID = t.uniqueID(cam.Name, l.Name) + "_probability"
	c.StateTopic = t.score(cam.Name, l.Name)
	c.PayloadOn, c.PayloadOff, c.DeviceClass = "", "", ""
	c.StateClass, c.DisplayPrecision, c.Icon = "measurement", 3, "mdi:chart-bell-curve"
	c.ExpireAfter = int(max(60*time.Second, 10*interval) / time.Second)
	b, _ := json.Marshal(c) // plain strings and slices: cannot fail
	return b
}

// eventPayload is the discovery config of a label's event entity ("<label>
// event", event.<camera>_<label>_event), in the camera's device: each start
// and end of the label's events fires it, with the probability, camera,
// label, id and frame time as attributes (haEvent), for automations
// that act on the moment rather than on a state.
//
// Its state_topic is the label's own, not the events topic: Home Assistant
// reads "event_type" (the events carry "type"), rejects a type outside
// event_types (the events topic also carries updates) and would have to
// sort every camera's events with a template in every entity.
func (t topics) eventPayload(cam Camera, l Label, version string) []byte {
	c := t.cameraEntity(cam, version)
	c.Name = l.Name + " event"
	c.UniqueID = t.uniqueID(cam.Name, l.Name) + "_event"
	c.StateTopic = t.labelEvent(cam.Name, l.Name)
	c.EventTypes = []string{rules.TypeStart, rules.TypeEnd}
	b, _ := json.Marshal(c) // plain strings and slices: cannot fail
	return b
}

// imagePayload is the discovery config of a camera's retained snapshot as
// an image entity ("snapshot", image.<camera>_snapshot), in its device: the
// picture of the latest start, which a notification can attach.
func (t topics) imagePayload(cam Camera, version string) []byte {
	c := t.cameraEntity(cam, version)
	c.Name = "snapshot"
	c.UniqueID = t.node + "_" + cameraLevel(cam.Name) + "_snapshot"
	c.ImageTopic = t.snapshot(cam.Name)
	c.ContentType = "image/jpeg"
	b, _ := json.Marshal(c) // plain strings and slices: cannot fail
	return b
}

// discovery is what the broker should hold retained for Home Assistant and
// other subscribers: each camera's availability, each label's ON/OFF state,
// and (when enabled) the discovery configs of each camera's and label's
// entities; and the list of retained topics we published (retainedFile), so
// that those of a removed camera, label or option are cleared. It is safe
// for concurrent use.
type discovery struct {
	t         topics
	enabled   bool          // publish discovery configs
	snapshots bool          // snapshots are published (then each camera also has an image entity)
	scores    time.Duration // the scores' interval, when scores are published (then each label also has a probability sensor)
	qos       byte
	version   string
	dir       string // where retainedFile lives (the outbox folder)
	file      *kit.StateFile
	log       *slog.Logger

	mu       sync.Mutex
	cams     []Camera
	states   map[string]string // state topic → ON/OFF
	cameraUp map[string]string // camera availability topic → online/offline
	owned    map[string]bool   // retained topics we published
	// announced: Announce was called (until then there is nothing to
	// announce, or to remove); due: an announce is to be sent.
	announced, due bool
}

// retainedFile, in the outbox folder beside the outbox's own files, lists
// the retained topics we published: what an announce may have to clear.
const retainedFile = "retained.json"

func newDiscovery(opts MQTTOptions, t topics) *discovery {
	d := &discovery{t: t, enabled: opts.Discovery, snapshots: opts.SnapshotsEnabled, qos: opts.QoS, version: opts.Version, dir: opts.OutboxDir, log: opts.Logger,
		file:   opts.State.File("retained", "a label removed from the config may stay in Home Assistant after a restart"),
		states: map[string]string{}, cameraUp: map[string]string{}, owned: map[string]bool{}}
	if opts.ScoresEnabled {
		d.scores = opts.ScoresInterval
	}
	var owned []string
	if err := loadJSON(filepath.Join(d.dir, retainedFile), &owned); err != nil {
		d.log.Warn("mqtt: cannot read the list of retained topics; stale Home Assistant entities may stay", "error", err)
	}
	for _, t := range owned {
		d.owned[t] = true
	}
	return d
}

// announce declares the cameras. Labels and cameras new to the sink start
// OFF and offline; a label that is ON stays ON. It returns the state and
// availability topics that are gone, whose unsent values must be dropped.
func (d *discovery) announce(cams []Camera) (gone []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cams = nil
	present := map[string]bool{}
	for _, c := range cams {
		c.Labels = slices.Clone(c.Labels)
		d.cams = append(d.cams, c)
		up := d.t.cameraAvailable(c.Name)
		present[up] = true
		if _, ok := d.cameraUp[up]; !ok {
			d.cameraUp[up] = Offline
		}
		for _, l := range c.Labels {
			st := d.t.state(c.Name, l.Name)
			present[st] = true
			if _, ok := d.states[st]; !ok {
				d.states[st] = StateOff
			}
		}
	}
	for _, m := range []map[string]string{d.states, d.cameraUp} {
		for topic := range m {
			if !present[topic] {
				delete(m, topic)
				gone = append(gone, topic)
			}
		}
	}
	d.announced, d.due = true, true
	return gone
}

// setState records a label's state; the message to publish when it changed.
func (d *discovery) setState(camera, label, state string) (message, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	topic := d.t.state(camera, label)
	if d.states[topic] == state {
		return message{}, false
	}
	d.states[topic] = state
	return message{Topic: topic, Payload: []byte(state), QoS: d.qos, Retain: true}, true
}

// setAvailable records a camera's availability; the message to publish
// when it changed (QoS 1, like the daemon's own availability).
func (d *discovery) setAvailable(camera string, up bool) (message, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	payload := Offline
	if up {
		payload = Online
	}
	topic := d.t.cameraAvailable(camera)
	if d.cameraUp[topic] == payload {
		return message{}, false
	}
	d.cameraUp[topic] = payload
	return message{Topic: topic, Payload: []byte(payload), QoS: 1, Retain: true}, true
}

// again asks for the announce to be sent again (a new connection, Home
// Assistant restarted), if there has been one: an empty camera list would
// remove every entity the previous run created, and Home Assistant's
// customisations of them, until the daemon announced.
func (d *discovery) again() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.due = d.announced
}

// take returns what an announce publishes when one is due: each camera's
// availability and (when enabled) its discovery configs, each label's
// discovery configs and current state, then an empty retained message for
// every retained topic we published that belongs to no current camera,
// label or option (Home Assistant removes an entity whose config is
// emptied; a snapshot stays no longer than snapshots are enabled). If
// sending it fails, call again.
func (d *discovery) take() ([]message, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.due {
		return nil, false
	}
	d.due = false
	var plan []message
	keep := map[string]bool{}
	config := func(topic string, payload []byte) {
		plan = append(plan, message{Topic: topic, Payload: payload, QoS: d.qos, Retain: true})
		keep[topic] = true
	}
	for _, c := range d.cams {
		up := d.t.cameraAvailable(c.Name)
		plan = append(plan, message{Topic: up, Payload: []byte(d.cameraUp[up]), QoS: 1, Retain: true})
		keep[up] = true
		if d.snapshots {
			keep[d.t.snapshot(c.Name)] = true // published with events, not here; but not stale
			if d.enabled {
				config(d.t.imageConfig(c.Name), d.t.imagePayload(c, d.version))
			}
		}
		for _, l := range c.Labels {
			if d.enabled {
				config(d.t.discoveryConfig(c.Name, l.Name), d.t.discoveryPayload(c, l, d.version))
				config(d.t.eventConfig(c.Name, l.Name), d.t.eventPayload(c, l, d.version))
				if d.scores > 0 {
					config(d.t.probabilityConfig(c.Name, l.Name), d.t.probabilityPayload(c, l, d.version, d.scores))
				}
			}
			st := d.t.state(c.Name, l.Name)
			plan = append(plan, message{Topic: st, Payload: []byte(d.states[st]), QoS: d.qos, Retain: true})
			keep[st] = true
		}
	}
	var stale []string
	for t := range d.owned {
		if !keep[t] {
			stale = append(stale, t)
		}
	}
	slices.Sort(stale)
	for _, t := range stale {
		plan = append(plan, message{Topic: t, Payload: []byte{}, QoS: d.qos, Retain: true})
	}
	return plan, true
}

// sent records a retained message the broker took: its topic is now ours
// to clear later, or (empty payload) no longer.
func (d *discovery) sent(msg message) {
	if !msg.Retain {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	own := len(msg.Payload) > 0
	changed := own != d.owned[msg.Topic]
	if !changed && !d.file.Failing() {
		return
	}
	if own {
		d.owned[msg.Topic] = true
	} else {
		delete(d.owned, msg.Topic)
	}
	// After a failed save, every retained message (a state, at each event)
	// tries again, so the file catches up soon after the disk works.
	err := saveJSON(filepath.Join(d.dir, retainedFile), slices.Sorted(maps.Keys(d.owned)), true)
	if changed {
		d.file.Wrote(err)
	} else {
		d.file.Retried(err)
	}
}

// loadJSON reads path into v; a missing file is no error.
func loadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, kit.UnwrapPath(err))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// saveJSON replaces path atomically with v as JSON, fsync'ed when durable.
func saveJSON(path string, v any, durable bool) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return kit.WriteFile(path, b, 0o600, durable)
}
