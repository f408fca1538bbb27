package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/calibrate"
	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/internal/testenv"
)

// post sends a JSON body (with the given content type and origin, when not
// empty) and returns the status and body.
func (r *running) post(path, body, contentType, origin string) (int, []byte) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		r.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestCalibration, through the live page's buttons in Chromium: on a camera
// that shows orange and grey in turn, the red label's threshold (0.95) is
// above orange's probability, so no event starts. Clicking "it is there"
// on an orange frame and "it is not" on a grey one makes the page suggest
// a threshold between them; clicking apply puts it in force, starts the
// event on the next orange frame, and survives a restart; the marks keep
// their embeddings. Requests another web site could make (not JSON, or
// from another origin) are refused.
func TestCalibration(t *testing.T) {
	testenv.Integration(t)
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=gray", Duration: 8 * time.Second,
		Filter: "drawbox=x=0:y=0:w=iw:h=ih:color=orange:t=fill:enable='lt(mod(t,4),2)'"})
	config := fmt.Sprintf(`
state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
cameras: [{name: door, url: %s, loop: true, fps: 2,
           labels: [{name: red, threshold: 0.95, off_threshold: 0.5, min_frames: 1, off_frames: 1, cooldown: 0s}]}]
`, t.TempDir(), testenv.Model(t, "colour"), video)
	r := startDaemon(t, config, nil)
	red := func() (p float64, threshold float64) {
		l := r.camera("door").Labels[0]
		if l.Probability != nil {
			p = *l.Probability
		}
		return p, l.Threshold
	}
	calibration := func() httpapi.Calibration {
		code, body := r.get("/api/calibration?camera=door&label=red")
		var c httpapi.Calibration
		if code != http.StatusOK || json.Unmarshal(body, &c) != nil {
			t.Fatalf("GET /api/calibration: %d %s", code, body)
		}
		return c
	}

	// The user's side: the live page in Chromium, its buttons clicked.
	br := testenv.StartBrowser(t, 900, 760)
	br.Navigate(r.base + "/?window=60&scale=logit")
	const row = `document.querySelector('#cam-door [data-label="red"]')`
	pageText := func() string { return br.EvalString(`(` + row + `?.querySelector('.cal .text')?.textContent) || ""`) }
	testenv.WaitFor(t, 20*time.Second, func() bool { return br.EvalString(`String(!!`+row+`)`) == "true" }, "the page to draw the red label")
	mark := func(yes bool, want func(float64) bool) httpapi.MarkInfo {
		button := map[bool]string{true: "yes", false: "no"}[yes]
		for range 20 {
			testenv.WaitFor(t, 20*time.Second, func() bool { p, _ := red(); return want(p) }, "a frame to mark %s", button)
			before := len(calibration().Marks)
			br.Eval(row + `.querySelector('.cal .` + button + `').click()`)
			testenv.WaitFor(t, 10*time.Second, func() bool { return len(calibration().Marks) > before }, "the %s click to make a mark", button)
			marks := calibration().Marks
			m := marks[len(marks)-1]
			if m.Yes == yes && want(m.Score) {
				return m
			}
			// The frame changed between the look and the click: take it back.
			req, _ := http.NewRequest(http.MethodDelete, r.base+"/api/marks/"+m.ID, nil)
			if resp, err := testClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
				t.Fatalf("DELETE mark: %v %v", err, resp)
			}
		}
		t.Fatal("no mark with the wanted score after 20 tries")
		return httpapi.MarkInfo{}
	}
	yes := mark(true, func(p float64) bool { return p > 0.5 })
	no := mark(false, func(p float64) bool { return p < 0.01 })
	if strings.Contains(r.stdout.String(), `"type":"start"`) {
		t.Fatalf("an event started at threshold 0.95:\n%s", r.stdout.String())
	}

	c := calibration()
	if c.Suggestion == nil || !c.Suggestion.Separable || len(c.Marks) != 2 {
		t.Fatalf("calibration after two marks: %+v", c)
	}
	want := c.Suggestion.Threshold
	if !(want > no.Score && want < yes.Score) {
		t.Fatalf("suggested %g, not between the no (%g) and the yes (%g)", want, no.Score, yes.Score)
	}
	t.Logf("marks: yes %.4g, no %.3g; suggested threshold %.4g", yes.Score, no.Score, want)
	testenv.WaitFor(t, 15*time.Second, func() bool {
		return strings.Contains(pageText(), "1 yes, 1 no marked · suggested threshold "+fmt.Sprintf("%.3g", want))
	}, "the page to show the suggestion (it shows %q)", pageText())
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return br.EvalString(`String(`+row+`.querySelectorAll('circle[class^="mark-"]').length)`) == "2"
	}, "both marks drawn on the chart")
	if dir := os.Getenv("SIGLIPD_TEST_ARTIFACTS"); dir != "" { // docs/tuning-thresholds.png, in docs/05-tuning-thresholds.md
		os.MkdirAll(dir, 0o755)
		chromium(t, "--window-size=900,760", "--screenshot="+filepath.Join(dir, "tuning-thresholds.png"), r.base+"/?window=60&scale=logit")
	}

	for _, tt := range []struct{ contentType, origin string }{{"text/plain", ""}, {"application/json", "http://evil.example"}} {
		if code, _ := r.post("/api/calibration", `{"camera":"door","label":"red","apply":true}`, tt.contentType, tt.origin); code != http.StatusUnsupportedMediaType && code != http.StatusForbidden {
			t.Errorf("a cross-site apply (%s, origin %q) answered %d", tt.contentType, tt.origin, code)
		}
	}
	if _, th := red(); th != 0.95 {
		t.Fatalf("threshold %g after refused requests", th)
	}
	br.Eval(row + `.querySelector('.cal .apply').click()`)
	testenv.WaitFor(t, 10*time.Second, func() bool { _, th := red(); return math.Abs(th-want) < 1e-12 },
		"the threshold in force to become the suggestion %g", want)
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(r.stdout.String(), `"type":"start"`) },
		"the red event to start on orange with the applied threshold")
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(pageText(), "in force: "+fmt.Sprintf("%.3g", want)+" (config: 0.95)")
	}, "the page to show the applied threshold (it shows %q)", pageText())
	r.stop()

	stateDir := strings.Split(strings.SplitN(config, "state_dir: ", 2)[1], "\n")[0]
	if calib, err := calibrate.Open(filepath.Join(stateDir, calibrationDir)); err != nil {
		t.Error(err)
	} else {
		marks := calib.Marks("door", "red", []string{"red"})
		if len(marks) != 2 {
			t.Errorf("%d marks kept, want 2", len(marks))
		}
		for _, m := range marks {
			if len(m.Embedding) == 0 {
				t.Errorf("mark %s kept no image embedding", m.ID)
			}
		}
	}

	r2 := startDaemon(t, config, nil)
	if th := r2.camera("door").Labels[0].Threshold; math.Abs(th-want) > 1e-12 {
		t.Errorf("after a restart the threshold is %g, want the applied %g", th, want)
	}
}

// TestWithCalibration: an applied threshold replaces the file's, with the
// off threshold in the same ratio, except where the label pins its own or
// its prompts are no longer those the threshold was made for.
func TestWithCalibration(t *testing.T) {
	cfg, err := configs.Parse("cams.yaml", []byte(`model: {path: /m}
cameras: [{name: door, url: /v.mp4, labels: [{name: red, threshold: 0.5, off_threshold: 0.25}, {name: blue, threshold: 0.5, pin_threshold: true},
  {name: green, threshold: 0.5}]}]
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	calib, err := calibrate.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"red", "blue", "green"} {
		prompts := []string{l}
		if l == "green" {
			prompts = []string{"something green"} // made before the prompts changed
		}
		if err := calib.Apply("door", l, calibrate.Applied{Threshold: 0.1, Prompts: prompts}); err != nil {
			t.Fatal(err)
		}
	}
	got := withCalibration(cfg, calib)
	red, blue := got.Cameras[0].Labels[0], got.Cameras[0].Labels[1]
	if red.Threshold != 0.1 || *red.OffThreshold != 0.05 {
		t.Errorf("red: %g / %g, want 0.1 / 0.05", red.Threshold, *red.OffThreshold)
	}
	if blue.Threshold != 0.5 {
		t.Errorf("blue pins 0.5, got %g", blue.Threshold)
	}
	if green := got.Cameras[0].Labels[2]; green.Threshold != 0.5 {
		t.Errorf("green's threshold was made for other prompts; got %g, want the config's 0.5", green.Threshold)
	}
	if cfg.Cameras[0].Labels[0].Threshold != 0.5 {
		t.Error("withCalibration changed its input")
	}
}

// TestPromptScores: a mark of a label with several prompts carries the
// frame's score for each prompt on its own, from the mark's embedding.
func TestPromptScores(t *testing.T) {
	testenv.Integration(t)
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=red", Duration: 3 * time.Second})
	r := startDaemon(t, fmt.Sprintf(`
state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
cameras: [{name: door, url: %s, loop: true, fps: 2, labels: [{name: warm, prompts: [red, blue]}]}]
`, t.TempDir(), testenv.Model(t, "colour"), video), nil)
	testenv.WaitFor(t, 20*time.Second, func() bool { return r.camera("door").ScoredAt != nil }, "a scored frame")
	if code, body := r.post("/api/marks", `{"camera":"door","label":"warm","yes":true}`, "application/json", ""); code != http.StatusCreated {
		t.Fatalf("POST /api/marks: %d %s", code, body)
	}
	code, body := r.get("/api/calibration?camera=door&label=warm")
	var c httpapi.Calibration
	if code != http.StatusOK || json.Unmarshal(body, &c) != nil || len(c.Marks) != 1 {
		t.Fatalf("GET /api/calibration: %d %s", code, body)
	}
	ps := c.Marks[0].PromptScores
	if ps["red"] < 0.99 || ps["blue"] > 0.01 {
		t.Errorf("per-prompt scores of a red frame: %v, want red ≈ 1 and blue ≈ 0", ps)
	}
}
