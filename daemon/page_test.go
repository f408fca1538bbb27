package daemon

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// chromium runs headless Debian Chromium with the flags this closed network
// needs (no background fetches) and a fresh profile.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := testenv.LookPath(t, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,900", "--virtual-time-budget=5000"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// TestLivePage loads / in a real headless Chromium: one card per camera,
// one bar per label with its live probability, a history chart per label
// drawn from /api/history with the event shaded, the crop drawn on the
// frame, a placeholder for a camera without a frame, each camera's keyframe
// rate (and, for one decoding key frames only, that it does); and a
// screenshot that shows the over-threshold bars, threshold lines, event
// spans and crop.
func TestLivePage(t *testing.T) {
	testenv.Integration(t)
	red := testenv.VideoFile(t, testenv.VideoOptions{Name: "red.mp4", Source: "color=c=red", Duration: 3 * time.Second})
	blue := testenv.VideoFile(t, testenv.VideoOptions{Name: "blue.mp4", Source: "color=c=blue", Duration: 3 * time.Second})
	r := startDaemon(t, fmt.Sprintf(`
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
cameras:
  - {name: driveway, url: %s, loop: true, fps: 2, crop: {x: 0.25, y: 0.25, width: 0.5, height: 0.5},
     labels: [{name: red, threshold: 0.5}, {name: green, threshold: 0.3}, {name: blue, threshold: 0.5}]}
  - {name: garden, url: %s, loop: true, fps: 1, decode: keyframes, labels: [{name: red, threshold: 0.5}, {name: blue, threshold: 0.4}]}
  - {name: porch, url: %s, labels: [{name: red}]}
`, testenv.Model(t, "colour"), red, blue, filepath.Join(t.TempDir(), "missing.mp4")), nil)
	testenv.WaitFor(t, 20*time.Second, func() bool {
		n := 0
		for _, c := range r.status().Cameras {
			if c.ScoredAt != nil && len(r.history(c.Name, "red").Points) >= 3 {
				n++
			}
		}
		return n == 2
	}, "both cameras to have scored frames in their history")

	// A browser the test can wait on (a one-shot --dump-dom raced the
	// page's own fetches when the machine was busy).
	br := testenv.StartBrowser(t, 1280, 900)
	br.Navigate(r.base + "/")
	charted := func() string {
		return br.EvalString(`String([...document.querySelectorAll("svg.chart")].filter(c => +c.dataset.points >= 3).length)`)
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { return charted() == "5" }, "5 charts with 3 points or more (have %s)", charted())
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(br.EvalString(`document.documentElement.outerHTML`), `class="placeholder" style="display: flex;"`)
	}, "porch's placeholder")
	testenv.WaitFor(t, 20*time.Second, func() bool {
		return br.EvalString(`String(document.querySelectorAll(".label.on").length)`) == "2"
	}, "red on driveway and blue on garden to show ON")
	meta := func(cam string) string {
		return br.EvalString(`document.querySelector("#cam-` + cam + ` .meta").textContent`)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(meta("driveway"), "key frames 1.0/s · ") && strings.Contains(meta("garden"), "key frames 1.0/s (only these decoded) · ")
	}, "both cameras' keyframe rates (driveway %q, garden %q)", meta("driveway"), meta("garden"))
	if strings.Contains(meta("driveway"), "only these") {
		t.Errorf("driveway decodes every frame, but its line says %q", meta("driveway"))
	}
	dom := br.EvalString(`document.documentElement.outerHTML`)
	cards := regexp.MustCompile(`<section class="card" id="cam-([a-z]+)"`).FindAllStringSubmatch(dom, -1)
	bars := regexp.MustCompile(`<div class="label( on)?" data-label="([a-z]+)"`).FindAllStringSubmatch(dom, -1)
	if len(cards) != 3 || cards[0][1] != "driveway" || cards[1][1] != "garden" || cards[2][1] != "porch" {
		t.Errorf("cards: %v, want driveway, garden and porch", cards)
	}
	if len(bars) != 6 {
		t.Errorf("found %d label bars, want 6 (3 + 2 + 1)", len(bars))
	}
	charts := regexp.MustCompile(`<svg class="chart"[^>]*data-points="([0-9]+)"`).FindAllStringSubmatch(dom, -1)
	withPoints := 0
	for _, c := range charts {
		if n, _ := strconv.Atoi(c[1]); n >= 3 {
			withPoints++
		}
	}
	if withPoints != 5 || strings.Count(dom, `class="event"`) < 2 || strings.Count(dom, `class="thr"`) != 6 {
		t.Errorf("charts: %d with 3 points or more (want 5), %d event spans (want 2 or more), %d threshold lines (want 6)",
			withPoints, strings.Count(dom, `class="event"`), strings.Count(dom, `class="thr"`))
	}
	// Every chart has its axes: time ("−10 min" to "now") and value (0.25 to 1).
	if n, m := strings.Count(dom, `>now</text>`), strings.Count(dom, `>0.75</text>`); n != 6 || m != 6 {
		t.Errorf("%d charts with a time axis and %d with a value axis, want 6 of each", n, m)
	}
	if !regexp.MustCompile(`class="crop" style="display: block; left: 25%; top: 25%; width: 50%; height: 50%;`).MatchString(dom) {
		t.Errorf("no crop rectangle at 25%%/25%%/50%%/50%% on driveway's frame")
	}
	if !regexp.MustCompile(`(?s)id="cam-porch".*?class="placeholder" style="display: flex;">no frame yet`).MatchString(dom) {
		t.Errorf("porch, without a frame, shows no placeholder")
	}
	on := 0
	for _, b := range bars {
		if b[1] != "" {
			on++
		}
	}
	if on != 2 || !strings.Contains(dom, "1.000 / 0.5") {
		t.Errorf("want red on driveway and blue on garden shown ON with probability 1.000: %d on\n%.3000s", on, dom)
	}

	shot := filepath.Join(t.TempDir(), "siglipd-live-page.png")
	chromium(t, "--screenshot="+shot, r.base+"/")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// The "over threshold" fill is #43a047, the page header #1d2433, an
	// event span #c8e6c9, the crop's border #ffd600, threshold lines (on
	// the bars and in the charts) #c62828.
	over, header, event, crop, thr := 0, 0, 0, 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r8, g8, b8, _ := img.At(x, y).RGBA()
			switch [3]uint32{r8 >> 8, g8 >> 8, b8 >> 8} {
			case [3]uint32{0x43, 0xa0, 0x47}:
				over++
			case [3]uint32{0x1d, 0x24, 0x33}:
				header++
			case [3]uint32{0xc8, 0xe6, 0xc9}:
				event++
			case [3]uint32{0xff, 0xd6, 0x00}:
				crop++
			case [3]uint32{0xc6, 0x28, 0x28}:
				thr++
			}
		}
	}
	t.Logf("screenshot %dx%d saved to %s: %d px of over-threshold bars, %d of header, %d of event spans, %d of crop border, %d of threshold lines",
		b.Dx(), b.Dy(), shot, over, header, event, crop, thr)
	if over < 500 || header < 10000 || event < 200 || crop < 200 || thr < 1000 {
		t.Errorf("the screenshot does not show the page as expected (%d px of over-threshold bars, %d of header, %d of event spans, %d of crop border, %d of threshold lines)",
			over, header, event, crop, thr)
	}
	if dir := os.Getenv("SIGLIPD_TEST_ARTIFACTS"); dir != "" {
		if data, err := os.ReadFile(shot); err == nil && os.MkdirAll(dir, 0o755) == nil {
			os.WriteFile(filepath.Join(dir, filepath.Base(shot)), data, 0o644)
		}
	}
}
