package capture

import (
	"context"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
)

func TestNewInvalid(t *testing.T) {
	base := Options{Name: "door", URL: "rtsp://admin:hunter2@10.0.0.2/live", FPS: 2}
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no name", func(o *Options) { o.Name = "" }, `capture: camera name is required`},
		{"garbage url", func(o *Options) { o.URL = "rtsp://admin:hunter2@[::1/live" }, `camera "door": url: rtsp URL has no host`},
		{"unsupported scheme", func(o *Options) { o.URL = "ftp://admin:hunter2@cam/x" }, `camera "door": url: unsupported scheme "ftp" (want rtsp, rtsps, http, https, file, a file path, /dev/videoN or a USB index)`},
		{"empty url", func(o *Options) { o.URL = " " }, `camera "door": url: must not be empty`},
		{"device mode on a stream", func(o *Options) { o.URL = "rtsp://cam/x"; o.Device.Format = "MJPG" },
			`camera "door": format, width, height and frame_rate are for video devices (/dev/video…), not a stream`},
		{"unknown format", func(o *Options) { o.URL = "/dev/video0"; o.Device.Format = "mpeg4x" },
			`camera "door": format "mpeg4x": want mjpeg, yuyv, h264, nv12 or a FourCC such as MJPG`},
		{"bad device", func(o *Options) { o.URL = "/dev/videoX" }, `camera "door": url: a device is /dev/videoN, /dev/v4l/by-id/… or by-path/…, or a number, got "/dev/videoX"`},
		{"zero fps", func(o *Options) { o.FPS = 0 }, `camera "door": fps must be more than 0, got 0`},
		{"NaN fps", func(o *Options) { o.FPS = math.NaN() }, `camera "door": fps must be more than 0, got NaN`},
		{"negative read timeout", func(o *Options) { o.ReadTimeout = -time.Second }, `camera "door": read timeout must not be negative, got -1s`},
		{"open timeout under read timeout", func(o *Options) { o.ReadTimeout, o.OpenTimeout = 10*time.Second, 5*time.Second },
			`camera "door": open timeout (5s) must not be less than the read timeout (10s)`},
		{"negative probe interval", func(o *Options) { o.ProbeInterval = -time.Second }, `camera "door": probe interval must not be negative, got -1s`},
		{"bad transport", func(o *Options) { o.RTSPTransport = "http" }, `camera "door": rtsp transport must be tcp or udp, got "http"`},
		{"zero backoff step", func(o *Options) { o.Backoff = []time.Duration{time.Second, 0} }, `camera "door": backoff steps must be more than 0, got 0s`},
		{"crop too wide", func(o *Options) { o.Crop = &Crop{X: 0.5, Width: 0.6, Height: 1} },
			`camera "door": crop x=0.5 y=0 width=0.6 height=1 (normalized): a normalized region must lie within the frame (x+width <= 1, y+height <= 1)`},
		{"crop empty", func(o *Options) { o.Crop = &Crop{Width: 0, Height: 10, Pixels: true} },
			`camera "door": crop x=0 y=0 width=0 height=10 (pixels): width and height must be more than 0`},
		{"crop fractional pixels", func(o *Options) { o.Crop = &Crop{X: 1.5, Width: 10, Height: 10, Pixels: true} },
			`camera "door": crop x=1.5 y=0 width=10 height=10 (pixels): pixel coordinates must be whole numbers`},
		{"unknown decode", func(o *Options) { o.Decode = "iframes" }, `camera "door": decode must be all, keyframes or auto, got "iframes"`},
		{"unknown hwaccel", func(o *Options) { o.HWAccel = "cuda" }, `camera "door": hwaccel must be none, vaapi, nvdec or v4l2m2m, got "cuda"`},
		{"key frames of a device", func(o *Options) { o.URL = "/dev/video0"; o.Decode = DecodeKeyframes },
			`camera "door": decode keyframes is for streams and files; a video device delivers every frame it captures (use decode: all)`},
		{"auto of a device", func(o *Options) { o.URL = "0"; o.Decode = DecodeAuto },
			`camera "door": decode auto is for streams and files; a video device delivers every frame it captures (use decode: all)`},
		{"hardware decoding of a device", func(o *Options) { o.URL = "/dev/video0"; o.HWAccel = HWAccelVAAPI },
			`camera "door": hwaccel vaapi is for streams and files, not a video device`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.change(&o)
			_, err := New(o)
			if err == nil {
				t.Fatalf("New succeeded, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("New error\n got: %s\nwant: %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %s", err)
			}
		})
	}
}

func TestNewTargets(t *testing.T) {
	tests := []struct {
		url, transport string
		want           target
	}{
		{"rtsp://u:p@cam.lan/live", "", target{kind: kit.SourceStream, open: "rtsp://u:p@cam.lan/live", dial: "cam.lan:554",
			optionsURL:    "rtsp://cam.lan:554/live",
			ffmpegOptions: "rtsp_transport;tcp|allowed_media_types;video|analyzeduration;20000000|probesize;25000000|fpsprobesize;1"}},
		{"rtsp://u:p@[fd00::7]:8554/live?user=u&pass=p", "", target{kind: kit.SourceStream, open: "rtsp://u:p@[fd00::7]:8554/live?user=u&pass=p",
			dial: "[fd00::7]:8554", optionsURL: "rtsp://[fd00::7]:8554/live",
			ffmpegOptions: "rtsp_transport;tcp|allowed_media_types;video|analyzeduration;20000000|probesize;25000000|fpsprobesize;1"}},
		{"rtsps://cam.lan:7441/x", "udp", target{kind: kit.SourceStream, open: "rtsps://cam.lan:7441/x", dial: "cam.lan:7441",
			ffmpegOptions: "rtsp_transport;udp|allowed_media_types;video|analyzeduration;20000000|probesize;25000000|fpsprobesize;1"}},
		{"http://[::1]/mjpg", "", target{kind: kit.SourceStream, open: "http://[::1]/mjpg", dial: "[::1]:80"}},
		{"https://cam/live.m3u8", "", target{kind: kit.SourceStream, open: "https://cam/live.m3u8", dial: "cam:443"}},
		{"file:///videos/door%20a.mp4", "", target{kind: kit.SourceFile, open: "/videos/door a.mp4", path: "/videos/door a.mp4"}},
		{"videos/door.mp4", "", target{kind: kit.SourceFile, open: "videos/door.mp4", path: "videos/door.mp4"}},
		{"/dev/video2", "", target{kind: kit.SourceDevice, index: 2, path: "/dev/video2"}},
		{"/dev/v4l/by-id/usb-Cam_1234-video-index0", "", target{kind: kit.SourceDevice, index: -1, path: "/dev/v4l/by-id/usb-Cam_1234-video-index0"}},
		{"0", "", target{kind: kit.SourceDevice, index: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, got, err := withDefaults(Options{Name: "c", URL: tt.url, FPS: 1, RTSPTransport: tt.transport})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("target\n got: %+v\nwant: %+v", got, tt.want)
			}
		})
	}
}

func TestCropRegion(t *testing.T) {
	tests := []struct {
		name    string
		crop    *Crop
		w, h    int
		want    image.Rectangle
		wantErr string
	}{
		{"no crop is the whole frame", nil, 640, 360, image.Rect(0, 0, 640, 360), ""},
		{"normalized quarter", &Crop{X: 0.5, Y: 0.5, Width: 0.5, Height: 0.5}, 640, 360, image.Rect(320, 180, 640, 360), ""},
		{"normalized rounds to pixels", &Crop{X: 0.1, Y: 0, Width: 0.9, Height: 1}, 333, 100, image.Rect(33, 0, 333, 100), ""},
		{"pixels", &Crop{X: 10, Y: 20, Width: 100, Height: 50, Pixels: true}, 640, 360, image.Rect(10, 20, 110, 70), ""},
		{"pixels up to the edge", &Crop{X: 540, Y: 260, Width: 100, Height: 100, Pixels: true}, 640, 360, image.Rect(540, 260, 640, 360), ""},
		{"pixels outside", &Crop{X: 600, Y: 0, Width: 100, Height: 100, Pixels: true}, 640, 360, image.Rectangle{},
			"crop x=600 y=0 width=100 height=100 (pixels) is outside the 640x360 frame (pixels 600,0 to 700,100)"},
		{"normalized too small for the frame", &Crop{X: 0, Y: 0, Width: 0.001, Height: 0.001}, 320, 240, image.Rectangle{},
			"crop x=0 y=0 width=0.001 height=0.001 (normalized) is outside the 320x240 frame (pixels 0,0 to 0,0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.crop.region(tt.w, tt.h)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("region error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("region = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestSampler feeds the sampler frame times of streams of various rates and
// checks the rate it hands on, over 60 simulated seconds.
func TestSampler(t *testing.T) {
	tests := []struct {
		name      string
		streamFPS float64
		fps       float64
		jitter    time.Duration // added to every other frame
		// keyframes: the stream's frames are key frames, decoded alone;
		// the sampler takes one up to half a period early. Their jitter
		// is random, either way, up to jitter.
		keyframes    bool
		want         float64
		pauseAtSec   float64 // the stream pauses here for pauseFor
		pauseFor     time.Duration
		wantAtResume int // frames handed on in the first 100 ms after the pause
	}{
		{name: "2 of 25", streamFPS: 25, fps: 2, want: 2},
		{name: "2 of 25 with jitter", streamFPS: 25, fps: 2, jitter: 15 * time.Millisecond, want: 2},
		{name: "5 of 30", streamFPS: 30, fps: 5, want: 5},
		{name: "0.5 of 10", streamFPS: 10, fps: 0.5, want: 0.5},
		{name: "more than the stream has", streamFPS: 10, fps: 25, want: 10},
		{name: "no burst after a pause", streamFPS: 25, fps: 2, want: 2 * 50 / 60.0, pauseAtSec: 20, pauseFor: 10 * time.Second, wantAtResume: 1},
		{name: "key frames: 1 of 1 with jitter", streamFPS: 1, fps: 1, jitter: 80 * time.Millisecond, keyframes: true, want: 1},
		{name: "key frames: 0.5 of 1 with jitter", streamFPS: 1, fps: 0.5, jitter: 80 * time.Millisecond, keyframes: true, want: 0.5},
		{name: "key frames: 0.9 of 1", streamFPS: 1, fps: 0.9, keyframes: true, want: 0.9},
		{name: "key frames: more than the stream has", streamFPS: 0.5, fps: 2, jitter: 80 * time.Millisecond, keyframes: true, want: 0.5},
		{name: "key frames: 2 of 4", streamFPS: 4, fps: 2, jitter: 40 * time.Millisecond, keyframes: true, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sampler{period: time.Duration(float64(time.Second) / tt.fps)}
			if tt.keyframes {
				s.early = s.period / 2
			}
			rng := rand.New(rand.NewPCG(1, 2))
			t0 := time.Unix(1000, 0)
			frameGap := time.Duration(float64(time.Second) / tt.streamFPS)
			n, atResume := 0, 0
			var resume time.Time
			for i := 0; ; i++ {
				at := t0.Add(time.Duration(i) * frameGap)
				if tt.pauseFor > 0 && at.Sub(t0).Seconds() >= tt.pauseAtSec {
					at = at.Add(tt.pauseFor)
					if resume.IsZero() {
						resume = at
					}
				}
				switch {
				case tt.keyframes && tt.jitter > 0:
					at = at.Add(time.Duration((rng.Float64()*2 - 1) * float64(tt.jitter)))
				case i%2 == 1:
					at = at.Add(tt.jitter)
				}
				if at.Sub(t0) >= time.Minute {
					break
				}
				if s.due(at) {
					n++
					if !resume.IsZero() && at.Sub(resume) < 100*time.Millisecond {
						atResume++
					}
				}
			}
			got := float64(n) / 60
			if math.Abs(got-tt.want) > 0.02*tt.want+1.0/60 {
				t.Errorf("handed on %.3f frames/s, want %.3f", got, tt.want)
			}
			if tt.pauseFor > 0 && atResume != tt.wantAtResume {
				t.Errorf("handed on %d frames in the first 100 ms after the pause, want %d (no catch-up burst)", atResume, tt.wantAtResume)
			}
		})
	}
}

func TestOpenSlotCancel(t *testing.T) {
	if !acquireOpen(context.Background()) {
		t.Fatal("acquireOpen failed on a free slot")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if acquireOpen(ctx) {
		t.Fatal("acquireOpen succeeded while the slot was held")
	}
	releaseOpen()
}

func TestTuneMallocRespectsOperator(t *testing.T) {
	t.Setenv("MALLOC_ARENA_MAX", "4")
	if TuneMalloc() {
		t.Error("TuneMalloc changed malloc although MALLOC_ARENA_MAX is set")
	}
}

// TestResolveDevice: a /dev/v4l link is followed at every open, so a camera
// replugged under another number is found; a link whose camera is gone says
// so.
func TestResolveDevice(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "by-id", "usb-Cam_1234-video-index0")
	os.MkdirAll(filepath.Dir(link), 0o755)
	for _, n := range []string{"video7", "video9", "media0"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	tg := target{kind: kit.SourceDevice, index: -1, path: link}
	for _, tt := range []struct {
		node string // what the link points to; "" removes it
		want int
		err  string
	}{
		{"../video7", 7, ""},
		{"../video9", 9, ""}, // replugged under another number
		{"../media0", 0, "not a /dev/videoN node"},
		{"", 0, "unplugged?"},
	} {
		os.Remove(link)
		if tt.node != "" {
			os.Symlink(tt.node, link)
		}
		n, err := tg.resolveDevice()
		if tt.err == "" && (err != nil || n != tt.want) {
			t.Errorf("link to %s: %d, %v; want %d", tt.node, n, err, tt.want)
		}
		if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("link to %q: %d, %v; want an error saying %q", tt.node, n, err, tt.err)
		}
	}
}
