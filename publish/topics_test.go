package publish

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/rules"
)

func TestTopics(t *testing.T) {
	tp := newTopics("home/siglipd", "homeassistant")
	tests := []struct{ got, want string }{
		{tp.available(), "home/siglipd/available"},
		{tp.events(), "home/siglipd/events"},
		{tp.state("driveway", "car"), "home/siglipd/driveway/car/state"},
		{tp.state("driveway", "Garage door open!"), "home/siglipd/driveway/garage_door_open/state"},
		{tp.state("Front-Door_2", "a car + truck / #1"), "home/siglipd/Front-Door_2/a_car_truck_1/state"},
		{tp.score("garage", "garage door open"), "home/siglipd/garage/garage_door_open/score"},
		{tp.snapshot("garage"), "home/siglipd/garage/snapshot"},
		{tp.state("bad/cam#+", "x"), "home/siglipd/bad_cam/x/state"}, // a caller that skipped validation
		{tp.haStatus(), "homeassistant/status"},
		{tp.discoveryConfig("driveway", "Garage door open!"), "homeassistant/binary_sensor/home_siglipd/driveway__garage_door_open/config"},
		{tp.uniqueID("driveway", "car"), "home_siglipd_driveway__car"},
		{tp.labelEvent("driveway", "Garage door open!"), "home/siglipd/driveway/garage_door_open/event"},
		{tp.eventConfig("driveway", "Garage door open!"), "homeassistant/event/home_siglipd/driveway__garage_door_open_event/config"},
		{tp.imageConfig("Front-Door_2"), "homeassistant/image/home_siglipd/Front-Door_2_snapshot/config"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	// No wildcard or separator from a name ever reaches a topic level.
	for _, name := range []string{"+", "#", "/", "a/b", "a+b#c", "车", "  ", "x//y"} {
		st := tp.state("cam", name)
		level := strings.TrimSuffix(strings.TrimPrefix(st, "home/siglipd/cam/"), "/state")
		if level == "" || strings.ContainsAny(level, "+#/") {
			t.Errorf("label %q gives topic %q", name, st)
		}
	}
	// Names that differ only where the slug cannot see get distinct ids
	// when the config keeps their slugs distinct; camera and label cannot
	// trade characters across the separator.
	if tp.uniqueID("a_b", "c") == tp.uniqueID("a", "b_c") {
		t.Error("unique ids collide across the camera/label boundary")
	}
}

// haKnownKeys are the discovery keys siglipd may send, per component, as
// Home Assistant's MQTT schemas name them (binary_sensor.mqtt, event.mqtt:
// event_types and a state_topic; image.mqtt: image_topic and
// content_type; all: the entity keys and origin). A typo ("uniqe_id") would
// be silently dropped by Home Assistant, so the validator rejects anything
// else.
var haKnownKeys = map[string][]string{
	"binary_sensor": {"name", "unique_id", "state_topic", "payload_on", "payload_off",
		"availability", "availability_mode", "device_class", "icon", "device", "origin"},
	"event": {"name", "unique_id", "state_topic", "event_types", "availability", "availability_mode", "device", "origin"},
	"image": {"name", "unique_id", "image_topic", "content_type", "availability", "availability_mode", "device", "origin"},
}

// haDeviceClasses are Home Assistant's binary_sensor device classes.
var haDeviceClasses = []string{"battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
	"garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug",
	"power", "presence", "problem", "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window"}

var haIDRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

func validTopic(t string) bool {
	return t != "" && !strings.ContainsAny(t, "+#\x00") && len(t) <= 65535
}

// validateHAConfig checks one discovery message (a label's binary_sensor
// or event entity, a camera's image entity) the way Home Assistant's MQTT
// integration reads it: the config topic's form
// (<prefix>/<component>/[<node_id>/]<object_id>/config, ids of
// [a-zA-Z0-9_-]), and the payload's fields it needs to make an entity that
// is tracked (unique_id), fed (its topic, with payloads matching ours),
// marked unavailable when we or the camera are gone (availability on our
// LWT topic and the camera's) and grouped under the camera's device
// (device.identifiers).
func validateHAConfig(topic string, payload []byte, tp topics) error {
	levels := strings.Split(topic, "/")
	if len(levels) != 5 || levels[0] != tp.discovery || haKnownKeys[levels[1]] == nil || levels[4] != "config" ||
		!haIDRe.MatchString(levels[2]) || !haIDRe.MatchString(levels[3]) {
		return fmt.Errorf("config topic %q is not %s/<binary_sensor|event|image>/<node_id>/<object_id>/config", topic, tp.discovery)
	}
	component, objectID := levels[1], levels[3]
	camera, _, _ := strings.Cut(objectID, "__")
	if component == "image" {
		camera = strings.TrimSuffix(objectID, "_snapshot")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return fmt.Errorf("%s: not a JSON object: %v", topic, err)
	}
	for k := range raw {
		if !slices.Contains(haKnownKeys[component], k) {
			return fmt.Errorf("%s: unknown key %q for a %s", topic, k, component)
		}
	}
	var c struct {
		Name         *string  `json:"name"`
		UniqueID     string   `json:"unique_id"`
		StateTopic   string   `json:"state_topic"`
		PayloadOn    string   `json:"payload_on"`
		PayloadOff   string   `json:"payload_off"`
		DeviceClass  *string  `json:"device_class"`
		EventTypes   []string `json:"event_types"`
		ImageTopic   string   `json:"image_topic"`
		ContentType  string   `json:"content_type"`
		Availability []struct {
			Topic               string `json:"topic"`
			PayloadAvailable    string `json:"payload_available"`
			PayloadNotAvailable string `json:"payload_not_available"`
		} `json:"availability"`
		AvailabilityMode string `json:"availability_mode"`
		Device           struct {
			Identifiers []string `json:"identifiers"`
			Name        string   `json:"name"`
		} `json:"device"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return fmt.Errorf("%s: %v", topic, err)
	}
	switch {
	case c.UniqueID == "":
		return fmt.Errorf("%s: no unique_id", topic)
	case len(c.Availability) == 0:
		return fmt.Errorf("%s: no availability", topic)
	case c.Availability[0].Topic != tp.available() || c.Availability[0].PayloadAvailable != Online ||
		c.Availability[0].PayloadNotAvailable != Offline:
		return fmt.Errorf("%s: availability %+v is not our LWT topic and payloads", topic, c.Availability)
	case len(c.Availability) != 2 || c.Availability[1].Topic != tp.cameraAvailable(camera) ||
		c.Availability[1].PayloadAvailable != Online || c.Availability[1].PayloadNotAvailable != Offline:
		return fmt.Errorf("%s: availability %+v does not list the camera's own availability", topic, c.Availability)
	case c.AvailabilityMode != "all":
		return fmt.Errorf("%s: availability_mode %q: want all (siglipd and the camera both online)", topic, c.AvailabilityMode)
	case len(c.Device.Identifiers) == 0 || c.Device.Identifiers[0] != tp.node+"_"+camera || c.Device.Name == "":
		return fmt.Errorf("%s: device needs the camera's identifier %q and a name", topic, tp.node+"_"+camera)
	case c.Name == nil || *c.Name == "":
		return fmt.Errorf("%s: no name", topic)
	}
	switch component {
	case "binary_sensor":
		switch {
		case !validTopic(c.StateTopic):
			return fmt.Errorf("%s: state_topic %q is not a topic one can publish to", topic, c.StateTopic)
		case c.PayloadOn != StateOn || c.PayloadOff != StateOff:
			return fmt.Errorf("%s: payload_on/off %q/%q are not what the state topic carries", topic, c.PayloadOn, c.PayloadOff)
		case c.DeviceClass != nil && !slices.Contains(haDeviceClasses, *c.DeviceClass):
			return fmt.Errorf("%s: device_class %q is not a binary_sensor class", topic, *c.DeviceClass)
		}
	case "event":
		switch {
		case !validTopic(c.StateTopic) || c.StateTopic == tp.events() || !strings.HasSuffix(c.StateTopic, "/event"):
			return fmt.Errorf("%s: state_topic %q is not a label's event topic", topic, c.StateTopic)
		case !slices.Equal(c.EventTypes, []string{"start", "end"}):
			return fmt.Errorf("%s: event_types %q, want start and end (what the topic carries)", topic, c.EventTypes)
		}
	case "image":
		switch {
		case c.ImageTopic != tp.snapshot(camera):
			return fmt.Errorf("%s: image_topic %q is not the camera's snapshot %q", topic, c.ImageTopic, tp.snapshot(camera))
		case c.ContentType != "image/jpeg":
			return fmt.Errorf("%s: content_type %q: the snapshot is a JPEG", topic, c.ContentType)
		}
	}
	return nil
}

func TestDiscoveryPayload(t *testing.T) {
	tp := newTopics("siglipd", "homeassistant")
	cam := Camera{Name: "driveway", Labels: []Label{{Name: "car", DeviceClass: "occupancy"}, {Name: "Garage door open!"}}}
	for _, l := range cam.Labels {
		topic, payload := tp.discoveryConfig(cam.Name, l.Name), tp.discoveryPayload(cam, l, "v1.2.3")
		if err := validateHAConfig(topic, payload, tp); err != nil {
			t.Error(err)
		}
	}
	// The validator itself must reject what Home Assistant would not use.
	good := tp.discoveryPayload(cam, cam.Labels[0], "v1")
	for _, bad := range []struct{ name, from, to string }{
		{"no unique_id", `"unique_id":"siglipd_driveway__car",`, ``},
		{"typo", `"unique_id"`, `"uniqe_id"`},
		{"wildcard state topic", `"state_topic":"siglipd/driveway/car/state"`, `"state_topic":"siglipd/+/car/state"`},
		{"no availability", `"availability":[{"topic":"siglipd/available","payload_available":"online","payload_not_available":"offline"},` +
			`{"topic":"siglipd/driveway/available","payload_available":"online","payload_not_available":"offline"}],`, ``},
		{"wrong availability topic", `"topic":"siglipd/available"`, `"topic":"siglipd/status"`},
		{"no camera availability", `,{"topic":"siglipd/driveway/available","payload_available":"online","payload_not_available":"offline"}`, ``},
		{"availability of either", `"availability_mode":"all"`, `"availability_mode":"any"`},
		{"no device", `"identifiers":["siglipd_driveway"],`, ``},
		{"bad class", `"occupancy"`, `"car"`},
	} {
		p := bytes.Replace(good, []byte(bad.from), []byte(bad.to), 1)
		if bytes.Equal(p, good) {
			t.Fatalf("%s: %q not in %s", bad.name, bad.from, good)
		}
		if err := validateHAConfig(tp.discoveryConfig("driveway", "car"), p, tp); err == nil {
			t.Errorf("%s: validator accepted %s", bad.name, p)
		}
	}
	if err := validateHAConfig("homeassistant/binary_sensor/siglipd/a b/config", good, tp); err == nil {
		t.Error("validator accepted a space in the object id")
	}
}

// TestEntityPayloads: a label's event entity and a camera's image entity
// pass the validator, with the keys Home Assistant's event and image
// schemas take and nothing else; and the validator rejects what Home
// Assistant would not use, or would use wrongly.
func TestEntityPayloads(t *testing.T) {
	tp := newTopics("siglipd", "homeassistant")
	cam := Camera{Name: "driveway", Labels: []Label{{Name: "car", DeviceClass: "occupancy"}, {Name: "Garage door open!"}}}
	for _, l := range cam.Labels {
		if err := validateHAConfig(tp.eventConfig(cam.Name, l.Name), tp.eventPayload(cam, l, "v1"), tp); err != nil {
			t.Error(err)
		}
	}
	event := tp.eventPayload(cam, cam.Labels[0], "v1")
	image := tp.imagePayload(cam, "v1")
	for _, tt := range []struct {
		name, topic string
		good        []byte
		want        string // in the payload as sent
		from, to    string // a change the validator must reject
	}{
		{"event types", tp.eventConfig("driveway", "car"), event, `"event_types":["start","end"]`, `"start","end"`, `"start","update","end"`},
		{"event on the events topic", tp.eventConfig("driveway", "car"), event, `"state_topic":"siglipd/driveway/car/event"`, `siglipd/driveway/car/event`, `siglipd/events`},
		{"event type key in the config", tp.eventConfig("driveway", "car"), event, `"unique_id":"siglipd_driveway__car_event"`, `"event_types"`, `"event_type"`},
		{"event of another camera's device", tp.eventConfig("driveway", "car"), event, `"identifiers":["siglipd_driveway"]`, `"identifiers":["siglipd_driveway"]`, `"identifiers":["siglipd_garage"]`},
		{"event without the camera's availability", tp.eventConfig("driveway", "car"), event, `"availability_mode":"all"`, `{"topic":"siglipd/driveway/available"`, `{"topic":"siglipd/garage/available"`},
		{"image content type", tp.imageConfig("driveway"), image, `"content_type":"image/jpeg"`, `image/jpeg`, `image/png`},
		{"image of another camera", tp.imageConfig("driveway"), image, `"image_topic":"siglipd/driveway/snapshot"`, `siglipd/driveway/snapshot`, `siglipd/garage/snapshot`},
		{"image with a state topic", tp.imageConfig("driveway"), image, `"name":"snapshot","unique_id":"siglipd_driveway_snapshot"`, `"image_topic"`, `"state_topic"`},
		{"image without availability mode", tp.imageConfig("driveway"), image, `"availability_mode":"all"`, `"availability_mode":"all"`, `"availability_mode":"latest"`},
	} {
		if err := validateHAConfig(tt.topic, tt.good, tp); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if !bytes.Contains(tt.good, []byte(tt.want)) {
			t.Errorf("%s: %s does not contain %s", tt.name, tt.good, tt.want)
		}
		bad := bytes.Replace(tt.good, []byte(tt.from), []byte(tt.to), 1)
		if bytes.Equal(bad, tt.good) {
			t.Fatalf("%s: %q not in %s", tt.name, tt.from, tt.good)
		}
		if err := validateHAConfig(tt.topic, bad, tp); err == nil {
			t.Errorf("%s: validator accepted %s", tt.name, bad)
		}
	}
	// A config on another component's topic is not that component's.
	if err := validateHAConfig("homeassistant/binary_sensor/siglipd/driveway_snapshot/config", image, tp); err == nil {
		t.Error("validator accepted an image config as a binary_sensor's")
	}
}

// TestDocsExamples keeps the MQTT page of the docs honest: every JSON
// example in it is a valid v1 event, a discovery config that passes the
// validator, or a message of a label's event entity; the discovery
// example is exactly what siglipd sends, and so is the event entity's,
// for the event of the page it claims to be from.
func TestDocsExamples(t *testing.T) {
	const page = "../docs/03-mqtt-home-assistant.md"
	text, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	section := regexp.MustCompile("(?s)<!-- mqtt:begin.*?-->(.*)<!-- mqtt:end -->").FindSubmatch(text)
	if section == nil {
		t.Fatalf("%s has no <!-- mqtt:begin --> … <!-- mqtt:end --> section", page)
	}
	doc := section[1]
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 4 {
		t.Fatalf("%s has %d JSON examples, want at least 4", page, len(blocks))
	}
	tp := newTopics("siglipd", "homeassistant")
	var events, configs, entityEvents int
	var docEvents []rules.Event
	for _, b := range blocks {
		text := bytes.TrimSpace(b[1])
		if bytes.Contains(text, []byte(`"event_type"`)) {
			entityEvents++
			var e haEvent
			json.Unmarshal(text, &e)
			i := slices.IndexFunc(docEvents, func(ev rules.Event) bool { return ev.ID == e.ID && ev.Type == e.EventType })
			if i < 0 {
				t.Errorf("docs event entity example is of no event example before it: %s", text)
				continue
			}
			var doc, ours any
			json.Unmarshal(text, &doc)
			json.Unmarshal(haEventPayload(docEvents[i]), &ours)
			if fmt.Sprint(doc) != fmt.Sprint(ours) {
				t.Errorf("docs event entity example differs from what siglipd sends:\n%s\nsends:\n%s", text, haEventPayload(docEvents[i]))
			}
			continue
		}
		if bytes.Contains(text, []byte(`"unique_id"`)) {
			configs++
			if err := validateHAConfig(tp.discoveryConfig("driveway", "car"), text, tp); err != nil {
				t.Errorf("docs discovery example: %v", err)
			}
			var doc, ours any
			json.Unmarshal(text, &doc)
			json.Unmarshal(tp.discoveryPayload(Camera{Name: "driveway"}, Label{Name: "car", DeviceClass: "occupancy"}, "v0.3.0"), &ours)
			if fmt.Sprint(doc) != fmt.Sprint(ours) {
				t.Errorf("docs discovery example differs from what siglipd sends:\n%s\nsends:\n%v", text, ours)
			}
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		for dec.More() {
			var msg json.RawMessage
			if err := dec.Decode(&msg); err != nil {
				t.Errorf("docs example is not JSON: %v\n%s", err, text)
				break
			}
			events++
			var raw map[string]any
			json.Unmarshal(msg, &raw)
			var ev rules.Event
			json.Unmarshal(msg, &ev)
			re, _ := json.Marshal(ev)
			var back map[string]any
			json.Unmarshal(re, &back)
			if fmt.Sprint(raw) != fmt.Sprint(back) || ev.V != 1 {
				t.Errorf("docs event example is not exactly a v1 event:\n%s\nas v1:\n%s", msg, re)
			}
			docEvents = append(docEvents, ev)
		}
	}
	if events < 3 || configs != 1 || entityEvents < 1 {
		t.Errorf("%s: %d event, %d discovery and %d event entity examples; want start/update/end, one config and a message of the event entity",
			page, events, configs, entityEvents)
	}
}

func TestStdout(t *testing.T) {
	var buf bytes.Buffer
	s := NewStdout(&buf)
	start := time.Date(2024, 11, 27, 16, 0, 1, 0, time.UTC)
	s.Event(rules.Event{Type: "start", ID: "x", Camera: "c", Label: "l", StartTime: start, FrameTime: start}, []byte("jpeg"))
	end := start.Add(time.Second)
	s.Event(rules.Event{V: 1, Type: "end", ID: "x", Camera: "c", Label: "l", Prompts: []string{}, StartTime: start, EndTime: &end, FrameTime: end}, nil)
	s.Scores("c", start, map[string]float64{"l": 0.5})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := `{"v":1,"type":"start","id":"x","camera":"c","label":"l","prompts":[],"score":0,"top_score":0,"threshold":0,` +
		`"start_time":"2024-11-27T16:00:01Z","end_time":null,"frame_time":"2024-11-27T16:00:01Z"}`
	if len(lines) != 2 || lines[0] != want || !strings.Contains(lines[1], `"end_time":"2024-11-27T16:00:02Z"`) {
		t.Errorf("stdout =\n%s\nwant two lines, the first\n%s", buf.String(), want)
	}
	if st := s.Status(); st.Published != 2 || st.EventsPublished != 2 || !st.Connected || st.Sink != "stdout" {
		t.Errorf("Status = %+v", st)
	}
}
