package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/internal/testenv"
)

// TestScoreHistory: /api/history returns every scored frame's probability
// and the events, at full rate, and a restart keeps it; a label that does
// not exist is 404, a since that cannot be read 400.
func TestScoreHistory(t *testing.T) {
	testenv.Integration(t)
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=red", Duration: 3 * time.Second})
	config := fmt.Sprintf(`
state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
cameras: [{name: door, url: %s, loop: true, fps: 4, skip_unchanged: {enabled: false},
           labels: [{name: red, threshold: 0.5, min_frames: 1}, {name: blue, threshold: 0.5}]}]
`, t.TempDir(), testenv.Model(t, "colour"), video)

	query := func(r *running, q string) (int, httpapi.History) {
		code, body := r.get("/api/history?" + q)
		var h httpapi.History
		if code == http.StatusOK {
			if err := json.Unmarshal(body, &h); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
		}
		return code, h
	}
	r := startDaemon(t, config, nil)
	var first httpapi.History
	testenv.WaitFor(t, 30*time.Second, func() bool {
		_, first = query(r, "camera=door&label=red")
		return len(first.Points) >= 8 && len(first.Events) >= 1
	}, "8 points and the red event in /api/history")
	for _, p := range first.Points {
		if p[1] < 0.99 {
			t.Fatalf("red on a red frame: %v", p)
		}
	}
	if first.Threshold != 0.5 || first.Events[0].End != nil {
		t.Errorf("threshold %v, event %+v", first.Threshold, first.Events[0])
	}
	if _, blue := query(r, "camera=door&label=blue"); len(blue.Points) == 0 || blue.Points[0][1] > 0.01 {
		t.Errorf("blue: %d points, first %v", len(blue.Points), blue.Points)
	}
	for _, tt := range []struct {
		q    string
		code int
	}{
		{"camera=door&label=green", http.StatusNotFound},
		{"camera=garage&label=red", http.StatusNotFound},
		{"camera=door&label=red&since=yesterday", http.StatusBadRequest},
		{"camera=door&label=red&since=10m", http.StatusOK},
		{"camera=door&label=red&since=2026-01-01T00:00:00Z", http.StatusOK},
	} {
		if code, _ := query(r, tt.q); code != tt.code {
			t.Errorf("%s: %d, want %d", tt.q, code, tt.code)
		}
	}
	r.stop()

	r2 := startDaemon(t, config, nil)
	_, again := query(r2, "camera=door&label=red")
	if len(again.Points) == 0 || again.Points[0][0] > first.Points[0][0] {
		t.Fatalf("after a restart the history starts at %v, before it started at %v", again.Points, first.Points[0])
	}
	if len(again.Events) == 0 || again.Events[0].ID != first.Events[0].ID || again.Events[0].End == nil {
		t.Errorf("after a restart: events %+v; want the first run's event, ended at its shutdown", again.Events)
	}
}
