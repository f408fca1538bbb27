package testenv

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// VideoOptions describes a test video file. Zero values take the defaults in
// brackets.
type VideoOptions struct {
	Width, Height int           // [320×240]
	FPS           int           // [25]
	Duration      time.Duration // [2s]
	// Source is an ffmpeg lavfi source; [testsrc], a moving counter, so
	// consecutive frames differ. "color=c=red" gives a solid colour.
	Source string
	// Filter is an ffmpeg filter chain applied to Source (-vf), e.g.
	// drawbox=x=10:y=10:w=50:h=50:color=red:t=fill:enable='between(t,3,6)'.
	Filter string
	Name   string // file name in the test's temp dir ["video.mp4"]; its extension picks the container
}

// VideoFile makes an H.264 video with ffmpeg in the test's temp dir and
// returns its path. It fails or skips t (see Need) without ffmpeg.
func VideoFile(t testing.TB, opts VideoOptions) string {
	t.Helper()
	ffmpeg := LookPath(t, "ffmpeg")
	if opts.Name == "" {
		opts.Name = "video.mp4"
	}
	path := filepath.Join(t.TempDir(), opts.Name)
	if err := MakeVideo(ffmpeg, path, opts); err != nil {
		t.Fatal(err)
	}
	return path
}

// MakeVideo writes the video described by opts to path with the ffmpeg
// executable given.
func MakeVideo(ffmpeg, path string, opts VideoOptions) error {
	if opts.Width == 0 {
		opts.Width, opts.Height = 320, 240
	}
	if opts.FPS == 0 {
		opts.FPS = 25
	}
	if opts.Duration == 0 {
		opts.Duration = 2 * time.Second
	}
	if opts.Source == "" {
		opts.Source = "testsrc"
	}
	sep := "=" // lavfi: name=opt=v:opt=v, or name=opt=v:... when Source has options already
	if strings.Contains(opts.Source, "=") {
		sep = ":"
	}
	src := fmt.Sprintf("%s%ssize=%dx%d:rate=%d", opts.Source, sep, opts.Width, opts.Height, opts.FPS)
	// -g = fps: a keyframe a second, like the RTSP test camera.
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", src, "-t", fmt.Sprintf("%.3f", opts.Duration.Seconds())}
	if opts.Filter != "" {
		args = append(args, "-vf", opts.Filter)
	}
	args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", fmt.Sprint(opts.FPS), path)
	cmd := exec.Command(ffmpeg, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ffmpeg %s: %v\n%s", path, err, out)
	}
	return nil
}
