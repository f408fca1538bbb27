package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// TestModelFromHub: with model.id and a cold cache the daemon downloads
// the model from the hub (a local stand-in), then runs and publishes the
// red event; started again it makes no download request.
func TestModelFromHub(t *testing.T) {
	testenv.Integration(t)
	h := testenv.StartHub(t)
	h.AddRepo(t, "siglipd-test/colour", testenv.Model(t, "colour"), "")
	t.Setenv("HF_ENDPOINT", h.URL)
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HUB_OFFLINE", "")
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=red", Duration: 3 * time.Second})
	config := fmt.Sprintf(`
state_dir: %s
model: {id: siglipd-test/colour}
sink: stdout
http: {listen: "127.0.0.1:0"}
cameras: [{name: door, url: %s, loop: true, fps: 2, labels: [{name: red, threshold: 0.5}]}]
`, t.TempDir(), video)

	for run := 1; run <= 2; run++ {
		r := startDaemon(t, config, nil)
		testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(r.stdout.String(), `"type":"start"`) },
			"run %d: the red event on stdout", run)
		r.stop()
		var got []string
		for _, req := range h.Requests() {
			if strings.HasPrefix(req, "GET") {
				got = append(got, req)
			}
		}
		switch {
		case run == 1 && len(got) < 3: // the towers and the full model at least
			t.Errorf("first run downloaded only %q", got)
		case run == 2 && len(got) > 0:
			t.Errorf("second run downloaded %q", got)
		}
		if run == 1 && !strings.Contains(r.logs.String(), "downloading model file") {
			t.Errorf("first run logged no download progress:\n%s", r.logs.String())
		}
	}
}
