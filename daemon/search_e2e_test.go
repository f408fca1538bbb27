package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/internal/testenv"
)

// searchConfig is the demo's two cameras on short generated videos: the
// porch shows red then grey, the garden grey with a yellow square in the
// middle for two seconds, then blue. No camera has a yellow label, so
// only the store can find it.
func searchConfig(t *testing.T, stateDir string) string {
	porch := testenv.VideoFile(t, testenv.VideoOptions{Name: "porch.mp4", Source: "color=c=gray", Duration: 6 * time.Second,
		Filter: "drawbox=x=0:y=0:w=iw:h=ih:color=red:t=fill:enable='between(t,1,3)'"})
	garden := testenv.VideoFile(t, testenv.VideoOptions{Name: "garden.mp4", Source: "color=c=gray", Duration: 6 * time.Second,
		Filter: "drawbox=x=iw/4:y=ih/4:w=iw/2:h=ih/2:color=yellow:t=fill:enable='between(t,2,4)'," +
			"drawbox=x=0:y=0:w=iw:h=ih:color=blue:t=fill:enable='gte(t,5)'"})
	return fmt.Sprintf(`
state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
store: {every: 1s}
label_defaults: {threshold: 0.5, min_frames: 2, cooldown: 0s}
cameras:
  - {name: porch, url: %s, loop: true, fps: 4, labels: [{name: red}, {name: blue}]}
  - {name: garden, url: %s, loop: true, fps: 4, crop: {x: 0.25, y: 0.25, width: 0.5, height: 0.5}, labels: [{name: blue}]}
`, stateDir, testenv.Model(t, "colour"), porch, garden)
}

func (r *running) search(query string) (int, httpapi.Search) {
	r.t.Helper()
	code, body := r.get("/api/search?" + query)
	var s httpapi.Search
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &s); err != nil {
			r.t.Fatalf("%s: %v", body, err)
		}
	}
	return code, s
}

// TestSearch: the frames the daemon scored are kept and found by text —
// the yellow the garden showed comes first, the porch (never yellow)
// has nothing above the floor — with exact probabilities, thumbnails of
// the frame, frames like a frame, and all of it after a restart.
func TestSearch(t *testing.T) {
	testenv.Integration(t)
	state := t.TempDir()
	config := searchConfig(t, state)
	r := startDaemon(t, config, nil)
	// Both videos played through once: 6 s at 4 fps.
	testenv.WaitFor(t, 60*time.Second, func() bool {
		return r.camera("garden").FramesScored+r.camera("garden").FramesSkipped >= 28 &&
			r.camera("porch").FramesScored+r.camera("porch").FramesSkipped >= 28
	}, "both cameras to play their video once")

	code, res := r.search("q=something%20yellow")
	if code != http.StatusOK || len(res.Moments) == 0 {
		t.Fatalf("search: %d %+v", code, res)
	}
	first := res.Moments[0]
	if first.Camera != "garden" || first.Best.Probability == nil || *first.Best.Probability < 0.5 {
		t.Fatalf("first moment %+v, want the garden's yellow", first)
	}
	for _, m := range res.Moments {
		if m.Camera == "porch" {
			t.Errorf("a porch moment above the floor %v: %+v", res.Floor, m)
		}
	}
	if d := first.End.Sub(first.Start); d < time.Second || d > 3*time.Second {
		t.Errorf("the yellow moment lasts %v; the video shows yellow for 2 s", d)
	}

	// The best frame's thumbnail is the frame: yellow in the middle.
	code, body := r.get(first.Best.Thumbnail)
	if code != http.StatusOK {
		t.Fatalf("thumbnail: %d %s", code, body)
	}
	img, err := jpeg.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("thumbnail is not a JPEG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 320 {
		t.Errorf("thumbnail %v wide, want 320", b)
	}
	if r8, g8, b8 := rgb(img, img.Bounds().Dx()/2, img.Bounds().Dy()/2); r8 < 200 || g8 < 200 || b8 > 80 {
		t.Errorf("thumbnail's middle is (%d,%d,%d), not yellow", r8, g8, b8)
	}

	// The stored frame with its labels' probabilities now.
	code, body = r.get("/api/frames/" + first.Best.ID)
	var fr httpapi.StoredFrame
	if code != http.StatusOK || json.Unmarshal(body, &fr) != nil {
		t.Fatalf("frame: %d %s", code, body)
	}
	if fr.Camera != "garden" || fr.Crop != [4]int{80, 60, 160, 120} || fr.Width != 320 || fr.Probabilities["blue"] > 0.01 {
		t.Errorf("frame %+v", fr)
	}

	// Frames like it: the moment it is in, first, similarity ~1.
	code, like := r.search("similar=" + first.Best.ID)
	if code != http.StatusOK || len(like.Moments) == 0 || like.Moments[0].Camera != "garden" ||
		like.Moments[0].Best.Similarity == nil || *like.Moments[0].Best.Similarity < 0.999 {
		t.Errorf("similar: %d %+v", code, like)
	}

	// Filters.
	if _, porch := r.search("q=red&camera=porch&floor=0.5"); len(porch.Moments) == 0 || porch.Moments[0].Camera != "porch" {
		t.Errorf("red on the porch: %+v", porch)
	}
	if _, future := r.search("q=red&from=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))); len(future.Moments) != 0 {
		t.Errorf("frames from the future: %+v", future)
	}
	for _, tt := range []struct {
		query string
		code  int
	}{
		{"", http.StatusBadRequest},
		{"q=red&similar=1", http.StatusBadRequest},
		{"q=red&limit=0", http.StatusBadRequest},
		{"q=red&floor=2", http.StatusBadRequest},
		{"q=red&since=yesterday", http.StatusBadRequest},
		{"similar=12345", http.StatusNotFound},
		{"similar=x", http.StatusBadRequest},
	} {
		if code, _ := r.get("/api/search?" + tt.query); code != tt.code {
			t.Errorf("/api/search?%s: %d, want %d", tt.query, code, tt.code)
		}
	}
	if code, _ := r.get("/api/frames/99999/thumbnail.jpg"); code != http.StatusNotFound {
		t.Errorf("a thumbnail that does not exist: %d", code)
	}
	st := r.status().Store
	if st == nil || st.Frames < 10 || st.Stored < uint64(st.Frames) || st.Dropped != 0 {
		t.Errorf("status store %+v", st)
	}
	if fams := r.metrics(); fams["siglipd_store_frames"].GetMetric()[0].GetGauge().GetValue() < 10 ||
		fams["siglipd_store_bytes"].GetMetric()[0].GetGauge().GetValue() <= 0 {
		t.Errorf("store metrics: %v %v", fams["siglipd_store_frames"], fams["siglipd_store_bytes"])
	}
	r.stop()

	// After a restart the store is read back and searched the same way.
	r2 := startDaemon(t, config, nil)
	testenv.WaitFor(t, 20*time.Second, func() bool { s := r2.status().Store; return s != nil && !s.Loading }, "the store to be read")
	_, again := r2.search("q=something%20yellow&to=" + url.QueryEscape(first.End.Format(time.RFC3339Nano)))
	if len(again.Moments) == 0 || again.Moments[0].Best.ID != first.Best.ID || *again.Moments[0].Best.Probability != *first.Best.Probability {
		t.Errorf("after a restart: %+v, want best frame %s at %v", again.Moments, first.Best.ID, *first.Best.Probability)
	}

	// Delete everything.
	req, _ := http.NewRequest(http.MethodDelete, r2.base+"/api/frames", nil)
	resp, err := testClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE /api/frames: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, gone := r2.search("q=something%20yellow&to=" + url.QueryEscape(first.End.Format(time.RFC3339Nano))); len(gone.Moments) != 0 {
		t.Errorf("after DELETE: %+v", gone)
	}
	if _, err := filepath.Glob(filepath.Join(state, "frames", "*.emb")); err != nil {
		t.Fatal(err)
	}
}

func rgb(img image.Image, x, y int) (r, g, b uint8) {
	R, G, B, _ := img.At(x, y).RGBA()
	return uint8(R >> 8), uint8(G >> 8), uint8(B >> 8)
}
