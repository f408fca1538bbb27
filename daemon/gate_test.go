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

// TestChangeGateEvents: eight cameras watch still scenes at 2 fps, in each
// of which a red square of 5 % of the frame shows for 3 s (at a different
// moment per camera); each has a twin without the change gate. Every gated
// camera starts and ends the red event within one sampled frame of its
// twin (measured from each camera's first frame, as the twins open at
// slightly different times), while the model scores at least 5 times fewer
// of the gated cameras' frames (issue 14's target for mostly static scenes).
func TestChangeGateEvents(t *testing.T) {
	testenv.Integration(t)
	const fps, pairs = 2, 8
	var cams []string
	for i := range pairs {
		from := 2 + float64(i)*0.5
		video := testenv.VideoFile(t, testenv.VideoOptions{Name: fmt.Sprintf("scene%d.mp4", i), Width: 320, Height: 240,
			Source: "color=c=gray", Duration: 12 * time.Second,
			Filter: fmt.Sprintf("drawbox=x=129:y=89:w=62:h=62:color=red:t=fill:enable='between(t,%g,%g)'", from, from+3)})
		for _, gated := range []bool{true, false} {
			name, extra := fmt.Sprintf("gated%d", i), ""
			if !gated {
				name, extra = fmt.Sprintf("ungated%d", i), ", skip_unchanged: {enabled: false}"
			}
			cams = append(cams, fmt.Sprintf(`{name: %s, url: %s, fps: %d, crop: {x: 125, y: 85, width: 70, height: 70, units: pixels}%s,
     labels: [{name: red, threshold: 0.5, min_frames: 1, off_frames: 1, cooldown: 0s}]}`, name, video, fps, extra))
		}
	}
	r := startDaemon(t, fmt.Sprintf(`
state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
inference: {batch_size: 8}
cameras:
  - %s
`, t.TempDir(), testenv.Model(t, "colour"), strings.Join(cams, "\n  - ")), nil)

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
	testenv.WaitFor(t, 90*time.Second, func() bool {
		evs := events()
		for i := range pairs {
			if len(evs[fmt.Sprintf("gated%d", i)]) < 2 || len(evs[fmt.Sprintf("ungated%d", i)]) < 2 {
				return false
			}
		}
		return true
	}, "a start and an end of red on all %d cameras", 2*pairs)
	evs := events()
	first := func(camera string) time.Time { // the camera's first scored frame
		h := r.history(camera, "red")
		if len(h.Points) == 0 {
			t.Fatalf("%s: no history", camera)
		}
		return time.UnixMilli(int64(h.Points[0][0]))
	}
	var scoredGated, scoredUngated uint64
	for i := range pairs {
		g, u := fmt.Sprintf("gated%d", i), fmt.Sprintf("ungated%d", i)
		for k, typ := range []string{rules.TypeStart, rules.TypeEnd} {
			ge, ue := evs[g][k], evs[u][k]
			if ge.Type != typ || ue.Type != typ {
				t.Fatalf("%s/%s event %d: %s and %s, want %s", g, u, k, ge.Type, ue.Type, typ)
			}
			dg, du := ge.FrameTime.Sub(first(g)), ue.FrameTime.Sub(first(u))
			if d := dg - du; math.Abs(d.Seconds()) > 1.0/fps+0.05 {
				t.Errorf("%s %s at %s after its first frame, its ungated twin at %s: more than one sampled frame (%s) apart",
					g, typ, dg, du, time.Second/fps)
			}
		}
		gc, uc := r.camera(g), r.camera(u)
		if uc.FramesSkipped != 0 {
			t.Errorf("%s skipped %d frames", u, uc.FramesSkipped)
		}
		scoredGated, scoredUngated = scoredGated+gc.FramesScored, scoredUngated+uc.FramesScored
	}
	t.Logf("%d cameras at %d fps: the model scored %d frames of the gated ones, %d of the ungated (%.1fx fewer)",
		pairs, fps, scoredGated, scoredUngated, float64(scoredUngated)/float64(max(scoredGated, 1)))
	if scoredGated*5 > scoredUngated {
		t.Errorf("gated cameras: %d frames scored, not 5 times fewer than the ungated ones' %d", scoredGated, scoredUngated)
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
