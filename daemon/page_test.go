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
// one bar per label with its live probability, and a screenshot in which
// the bar of a label over its threshold is drawn in the "over" colour.
func TestLivePage(t *testing.T) {
	testenv.Integration(t)
	red := testenv.VideoFile(t, testenv.VideoOptions{Name: "red.mp4", Source: "color=c=red", Duration: 3 * time.Second})
	blue := testenv.VideoFile(t, testenv.VideoOptions{Name: "blue.mp4", Source: "color=c=blue", Duration: 3 * time.Second})
	r := startDaemon(t, fmt.Sprintf(`
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
cameras:
  - {name: driveway, url: %s, loop: true, fps: 2, labels: [{name: red, threshold: 0.5}, {name: green, threshold: 0.3}, {name: blue, threshold: 0.5}]}
  - {name: garden, url: %s, loop: true, fps: 2, labels: [{name: red, threshold: 0.5}, {name: blue, threshold: 0.4}]}
`, testenv.Model(t, "colour"), red, blue), nil)
	testenv.WaitFor(t, 20*time.Second, func() bool {
		for _, c := range r.status().Cameras {
			if c.ScoredAt == nil {
				return false
			}
		}
		return true
	}, "both cameras to have a scored frame")

	dom := string(chromium(t, "--dump-dom", r.base+"/"))
	cards := regexp.MustCompile(`<section class="card" id="cam-([a-z]+)"`).FindAllStringSubmatch(dom, -1)
	bars := regexp.MustCompile(`<div class="label( on)?" data-label="([a-z]+)"`).FindAllStringSubmatch(dom, -1)
	if len(cards) != 2 || cards[0][1] != "driveway" || cards[1][1] != "garden" {
		t.Errorf("cards: %v, want driveway and garden", cards)
	}
	if len(bars) != 5 {
		t.Errorf("found %d label bars, want 5 (3 + 2)", len(bars))
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
	// The "over threshold" fill is #43a047; the page header #1d2433.
	over, header := 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r8, g8, b8, _ := img.At(x, y).RGBA()
			switch [3]uint32{r8 >> 8, g8 >> 8, b8 >> 8} {
			case [3]uint32{0x43, 0xa0, 0x47}:
				over++
			case [3]uint32{0x1d, 0x24, 0x33}:
				header++
			}
		}
	}
	t.Logf("screenshot %dx%d saved to %s: %d px of over-threshold bars, %d px of header", b.Dx(), b.Dy(), shot, over, header)
	if over < 500 || header < 10000 {
		t.Errorf("the screenshot does not show the page as expected (%d px of over-threshold bars, %d px of header)", over, header)
	}
	if dir := os.Getenv("SIGLIPD_TEST_ARTIFACTS"); dir != "" {
		if data, err := os.ReadFile(shot); err == nil && os.MkdirAll(dir, 0o755) == nil {
			os.WriteFile(filepath.Join(dir, filepath.Base(shot)), data, 0o644)
		}
	}
}
