package daemon

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/internal/testenv"
)

// TestPreviewMatchesLive: a label tried on the stored frames gives the
// events the same label gave live during the run — each start and end
// within one stored frame — and each stored frame the probability the
// live label had on it. The garden's video shows yellow for 2 s of every
// 6 s; "something yellow" runs live, and is previewed under another name
// over the same time.
func TestPreviewMatchesLive(t *testing.T) {
	testenv.Integration(t)
	config := strings.Replace(searchConfig(t, t.TempDir()), "labels: [{name: blue}]",
		"labels: [{name: blue}, {name: something yellow, prompts: [yellow], min_frames: 2, off_frames: 2}]", 1)
	r := startDaemon(t, config, nil)
	var live httpapi.History
	testenv.WaitFor(t, 60*time.Second, func() bool {
		_, body := r.get("/api/history?camera=garden&label=something%20yellow&since=10m")
		json.Unmarshal(body, &live)
		ended := 0
		for _, e := range live.Events {
			if e.End != nil {
				ended++
			}
		}
		return ended >= 3
	}, "three yellow events to start and end live")

	body := `{"camera": "garden", "label": "yellow, tried", "prompts": ["yellow"], "threshold": 0.5, "min_frames": 2, "off_frames": 2, "cooldown": "0s", "since": "10m"}`
	code, raw := r.post("/api/preview", body, "application/json", "")
	var p httpapi.Preview
	if code != http.StatusOK || json.Unmarshal(raw, &p) != nil {
		t.Fatalf("preview: %d %s", code, raw)
	}
	if len(p.Frames) < 10 || p.OffThreshold != 0.4 {
		t.Fatalf("preview: %d frames, off threshold %v", len(p.Frames), p.OffThreshold)
	}
	// Probabilities: each stored frame's is the live one at its time.
	livePoint := map[int64]float64{}
	for _, pt := range live.Points {
		livePoint[int64(pt[0])] = pt[1]
	}
	matched, worst := 0, 0.0
	for _, f := range p.Frames {
		if lp, ok := livePoint[f.Time.UnixMilli()]; ok {
			matched++
			worst = max(worst, math.Abs(lp-f.Probability))
		}
	}
	if matched < len(p.Frames)/2 || worst > 1e-6 {
		t.Errorf("%d of %d stored frames found in the live history; largest |Δprobability| %g (want ≤ 1e-6)", matched, len(p.Frames), worst)
	}
	t.Logf("%d stored frames compared with the live probabilities: largest |Δ| %g", matched, worst)

	// Events: each live event that ended has a preview event whose start
	// and end are within one stored frame of it.
	between := func(a, b time.Time) int { // stored frames strictly between two times
		if b.Before(a) {
			a, b = b, a
		}
		n := 0
		for _, f := range p.Frames {
			if f.Time.After(a) && f.Time.Before(b) {
				n++
			}
		}
		return n
	}
	first, last := p.Frames[0].Time, p.Frames[len(p.Frames)-1].Time
	compared := 0
	for _, le := range live.Events {
		if le.End == nil || le.Start.Before(first) || between(*le.End, last.Add(time.Nanosecond)) < 2 {
			continue // still open, began before the stored frames, or ended too late for the preview to see off_frames frames after it
		}
		found := false
		for _, pe := range p.Events {
			if pe.End != nil && between(le.Start, pe.Start) <= 1 && between(*le.End, *pe.End) <= 1 {
				found = true
				if pe.Best.Probability == nil || *pe.Best.Probability < 0.5 || pe.Best.Thumbnail == "" {
					t.Errorf("preview event %+v: best frame", pe)
				}
			}
		}
		if !found {
			t.Errorf("live event %v–%v has no preview event within one stored frame; preview events: %+v", le.Start, *le.End, p.Events)
		}
		compared++
	}
	if compared < 2 || len(p.Events) > len(live.Events)+1 {
		t.Errorf("compared %d live events; the preview has %d events, live %d", compared, len(p.Events), len(live.Events))
	}

	// A mark on a stored frame scores it as the preview did.
	best := p.Events[0].Best
	code, raw = r.post("/api/marks", fmt.Sprintf(`{"camera": "garden", "label": "something yellow", "yes": true, "frame": %q}`, best.ID), "application/json", "")
	var mark httpapi.MarkInfo
	if code != http.StatusCreated || json.Unmarshal(raw, &mark) != nil || math.Abs(mark.Score-*best.Probability) > 1e-9 || !mark.Time.Equal(best.Time) {
		t.Errorf("mark of stored frame %s: %d %s, want score %v", best.ID, code, raw, *best.Probability)
	}
	if code, raw := r.post("/api/marks", `{"camera": "porch", "label": "red", "yes": true, "frame": "`+best.ID+`"}`, "application/json", ""); code != http.StatusConflict {
		t.Errorf("a garden frame marked on the porch: %d %s", code, raw)
	}

	for _, tt := range []struct {
		body string
		code int
		msg  string
	}{
		{`{"camera": "attic", "prompts": ["yellow"]}`, http.StatusNotFound, "attic"},
		{`{"camera": "garden", "prompts": ["yellow"], "threshold": 1.5}`, http.StatusBadRequest, "threshold"},
		{`{"camera": "garden", "prompts": ["yellow"], "since": "last week"}`, http.StatusBadRequest, "since"},
		{`{"camera": "garden", "prompts": ["yellow"], "colour": "red"}`, http.StatusBadRequest, "colour"},
	} {
		if code, raw := r.post("/api/preview", tt.body, "application/json", ""); code != tt.code || !strings.Contains(string(raw), tt.msg) {
			t.Errorf("preview %s: %d %s; want %d naming %q", tt.body, code, raw, tt.code, tt.msg)
		}
	}
	if code, _ := r.post("/api/preview", body, "text/plain", ""); code != http.StatusUnsupportedMediaType {
		t.Errorf("a preview another site's page could send: %d", code)
	}
}

// TestAddLabel: "add label" makes a tried label live through the reload
// path, keeps it in state_dir/labels.json across a restart, shows it as
// added in /api/status, and takes it away again; the config file is not
// touched.
func TestAddLabel(t *testing.T) {
	testenv.Integration(t)
	state := t.TempDir()
	config := searchConfig(t, state)
	r := startDaemon(t, config, nil)
	add := `{"camera": "garden", "label": "something yellow", "prompts": ["yellow"], "threshold": 0.6, "min_frames": 1}`
	code, raw := r.post("/api/labels", add, "application/json", "")
	if code != http.StatusCreated {
		t.Fatalf("add: %d %s", code, raw)
	}
	label := func(r *running) *httpapi.Label {
		for _, l := range r.camera("garden").Labels {
			if l.Name == "something yellow" {
				return &l
			}
		}
		return nil
	}
	if l := label(r); l == nil || !l.Added || l.Threshold != 0.6 {
		t.Fatalf("after add: %+v", l)
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { l := label(r); return l.Probability != nil && *l.Probability > 0.5 }, "the added label to score the yellow")
	for _, tt := range []struct {
		body string
		code int
		msg  string
	}{
		{add, http.StatusConflict, "already"},
		{`{"camera": "garden", "label": "blue"}`, http.StatusConflict, "already"},
		{`{"camera": "attic", "label": "x"}`, http.StatusNotFound, "attic"},
		{`{"camera": "garden", "label": "x", "threshold": 0}`, http.StatusBadRequest, "cameras[1].labels[2].threshold"},
		{`{"camera": "garden", "label": ""}`, http.StatusBadRequest, "label"},
	} {
		if code, raw := r.post("/api/labels", tt.body, "application/json", ""); code != tt.code || !strings.Contains(string(raw), tt.msg) {
			t.Errorf("add %s: %d %s; want %d naming %q", tt.body, code, raw, tt.code, tt.msg)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(state, "labels.json")); !strings.Contains(string(b), "something yellow") {
		t.Errorf("labels.json: %s", b)
	}
	r.stop()

	r2 := startDaemon(t, config, nil)
	if l := label(r2); l == nil || !l.Added {
		t.Fatalf("after a restart: %+v", l)
	}
	del := func(path string) int {
		req, _ := http.NewRequest(http.MethodDelete, r2.base+path, nil)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := del("/api/labels/garden/blue"); code != http.StatusConflict {
		t.Errorf("removing a label of the config file: %d", code)
	}
	if code := del("/api/labels/garden/something%20yellow"); code != http.StatusNoContent {
		t.Fatalf("remove: %d", code)
	}
	if l := label(r2); l != nil {
		t.Errorf("after remove: %+v", l)
	}
	if code := del("/api/labels/garden/something%20yellow"); code != http.StatusNotFound {
		t.Errorf("removing it twice: %d", code)
	}
}
