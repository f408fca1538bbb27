package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// TestCameraAvailability: a camera's Home Assistant entities follow the
// camera, not only siglipd: <prefix>/<camera>/available goes offline within
// read_timeout + a few seconds of the camera stopping (stalled, then
// killed), online again when it is back, and the discovery configs of all
// its entities (the label's binary_sensor and event entity, the camera's
// snapshot image) list it with availability_mode all. Against a real
// mosquitto.
func TestCameraAvailability(t *testing.T) {
	testenv.Integration(t)
	const readTimeout = 3 * time.Second
	broker := testenv.StartMosquitto(t)
	cam := testenv.StartRTSP(t, testenv.RTSPOptions{Width: 320, Height: 240})
	sub := testenv.SubscribeAll(t, broker.URL(), "", "")
	r := startDaemon(t, fmt.Sprintf(`
state_dir: %s
model: {path: %s}
mqtt: {broker: %s, client_id: availability, snapshots: {enabled: true}}
http: {listen: "127.0.0.1:0"}
cameras:
  - {name: porch, url: %q, fps: 2, read_timeout: %s, labels: [{name: red}]}
`, t.TempDir(), testenv.Model(t, "colour"), broker.URL(), cam.URL(), readTimeout), nil)

	// last is the porch's availability as the broker last published it.
	last := func() string {
		v := ""
		for _, m := range sub.Since(0) {
			if p, ok := strings.CutPrefix(m, "siglipd/porch/available "); ok {
				v = p
			}
		}
		return v
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { return last() == "online" }, "porch online; log:\n%s", r.logs)
	for _, cfg := range []string{
		"homeassistant/binary_sensor/siglipd/porch__red/config ",
		"homeassistant/event/siglipd/porch__red_event/config ",
		"homeassistant/image/siglipd/porch_snapshot/config ",
	} {
		testenv.WaitFor(t, 5*time.Second, func() bool { return strings.Contains(sub.All(), cfg) }, "the discovery config %s", cfg)
		for _, m := range sub.Since(0) {
			if strings.HasPrefix(m, cfg) && (!strings.Contains(m, `"topic":"siglipd/porch/available"`) || !strings.Contains(m, `"availability_mode":"all"`)) {
				t.Errorf("discovery config without the camera's availability: %s", m)
			}
		}
	}

	for _, step := range []struct {
		name       string
		down, back func()
	}{
		{"stalled", cam.Stall, cam.Resume},
		{"killed", cam.Stop, cam.Start},
	} {
		step.down()
		went := time.Now()
		testenv.WaitFor(t, readTimeout+5*time.Second, func() bool { return last() == "offline" }, "porch offline after it %s", step.name)
		t.Logf("%s: porch offline %.1f s after the camera stopped (read_timeout %s)", step.name, time.Since(went).Seconds(), readTimeout)
		step.back()
		testenv.WaitFor(t, 30*time.Second, func() bool { return last() == "online" }, "porch online again after it was %s", step.name)
	}
}
