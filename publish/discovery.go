package publish

import (
	"encoding/json"
)

// haConfig is a Home Assistant MQTT discovery config for one binary_sensor
// (https://www.home-assistant.io/integrations/binary_sensor.mqtt/). Only the
// fields siglipd sets; field names are Home Assistant's.
type haConfig struct {
	Name         string           `json:"name"`
	UniqueID     string           `json:"unique_id"`
	StateTopic   string           `json:"state_topic"`
	PayloadOn    string           `json:"payload_on"`
	PayloadOff   string           `json:"payload_off"`
	Availability []haAvailability `json:"availability"`
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
	c := haConfig{
		Name:       l.Name,
		UniqueID:   t.uniqueID(cam.Name, l.Name),
		StateTopic: t.state(cam.Name, l.Name),
		PayloadOn:  StateOn,
		PayloadOff: StateOff,
		Availability: []haAvailability{
			{Topic: t.available(), PayloadAvailable: Online, PayloadNotAvailable: Offline},
			{Topic: t.cameraAvailable(cam.Name), PayloadAvailable: Online, PayloadNotAvailable: Offline},
		},
		AvailabilityMode: "all",
		DeviceClass:      l.DeviceClass,
		Device: haDevice{
			Identifiers:  []string{t.node + "_" + cameraLevel(cam.Name)},
			Name:         cam.Name,
			Manufacturer: "siglipd",
			Model:        "SigLIP zero-shot camera labels",
			SWVersion:    version,
		},
		Origin: haOrigin{Name: "siglipd", SWVersion: version},
	}
	if l.DeviceClass == "" {
		c.Icon = "mdi:cctv" // without a class Home Assistant shows a generic dot
	}
	b, _ := json.Marshal(c) // plain strings and slices: cannot fail
	return b
}
