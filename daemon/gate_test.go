package daemon

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/rules"
)

// TestChangeGateEvents: on a still scene where a red square of 5 % of the
// frame appears for 3 s, a camera with the change gate (the default)
// starts and ends the red event within one sampled frame of a camera
// without it, while the model scores far fewer of its frames.
func TestChangeGateEvents(t *testing.T) {
	testenv.Integration(t)
	const fps = 4
	video := testenv.VideoFile(t, testenv.VideoOptions{Width: 320, Height: 240, Source: "color=c=gray", Duration: 9 * time.Second,
		Filter: "drawbox=x=129:y=89:w=62:h=62:color=red:t=fill:enable='between(t,3,6)'"})
	cam := func(name, extra string) string {
		return fmt.Sprintf(`{name: %s, url: %s, fps: %d, crop: {x: 125, y: 85, width: 70, height: 70, units: pixels}%s,
     labels: [{name: red, threshold: 0.5, min_frames: 1, off_frames: 1, cooldown: 0s}]}`, name, video, fps, extra)
	}
	r := startDaemon(t, fmt.Sprintf(`
state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
inference: {batch_size: 2}
cameras:
  - %s
  - %s
`, t.TempDir(), testenv.Model(t, "colour"), cam("gated", ""), cam("ungated", ", skip_unchanged: {enabled: false}")), nil)

	events := func() map[string][]rules.Event {
		out := map[string][]rules.Event{}
		sc := bufio.NewScanner(strings.NewReader(r.stdout.String()))
		for sc.Scan() {
			var ev rules.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				out[ev.Camera] = append(out[ev.Camera], ev)
			}
		}
		return out
	}
	testenv.WaitFor(t, 60*time.Second, func() bool {
		evs := events()
		return len(evs["gated"]) >= 2 && len(evs["ungated"]) >= 2
	}, "a start and an end of red on both cameras")
	evs := events()
	for i, typ := range []string{rules.TypeStart, rules.TypeEnd} {
		g, u := evs["gated"][i], evs["ungated"][i]
		if g.Type != typ || u.Type != typ {
			t.Fatalf("events %d: %s and %s, want %s on both\n%s", i, g.Type, u.Type, typ, r.stdout.String())
		}
		if d := g.FrameTime.Sub(u.FrameTime); math.Abs(d.Seconds()) > 1.0/fps+0.05 {
			t.Errorf("%s: gated at %s, ungated at %s: %s apart, more than one sampled frame (%s)", typ,
				g.FrameTime.Format("15:04:05.000"), u.FrameTime.Format("15:04:05.000"), d, time.Second/fps)
		}
	}
	g, u := r.camera("gated"), r.camera("ungated")
	t.Logf("gated: %d scored, %d skipped; ungated: %d scored, %d skipped", g.FramesScored, g.FramesSkipped, u.FramesScored, u.FramesSkipped)
	if u.FramesSkipped != 0 {
		t.Errorf("ungated camera skipped %d frames", u.FramesSkipped)
	}
	if g.FramesSkipped == 0 || g.FramesScored*3 > u.FramesScored {
		t.Errorf("gated camera: %d scored, %d skipped; want a third or less of the ungated camera's %d scored",
			g.FramesScored, g.FramesSkipped, u.FramesScored)
	}
}

// BenchmarkThumbnail is the change gate's cost per frame: the grey
// thumbnail of a whole 640×360 and 1920×1080 frame (docs/measurements.md).
func BenchmarkThumbnail(b *testing.B) {
	for _, size := range []image.Point{{640, 360}, {1920, 1080}} {
		b.Run(fmt.Sprintf("%dx%d", size.X, size.Y), func(b *testing.B) {
			mat := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 120, 150, 0), size.Y, size.X, gocv.MatTypeCV8UC3)
			defer mat.Close()
			f := &capture.Frame{Camera: "bench", Mat: mat, Region: image.Rect(0, 0, size.X, size.Y)}
			for b.Loop() {
				if thumbnail(f) == nil {
					b.Fatal("no thumbnail")
				}
			}
		})
	}
}
