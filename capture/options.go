package capture

import (
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
)

// target is what a camera URL resolves to: how to reach it and how to open it.
type target struct {
	kind kit.SourceKind
	// open is what OpenCV opens: the stream URL (with credentials) or the
	// file path. For devices, index is used instead.
	open  string
	index int
	// path is a file or device path checked with os.Stat before opening, so
	// a missing one is a clear error instead of OpenCV's bare "false".
	path string
	// dial is host:port of a stream, knocked on (knock.go) before OpenCV
	// opens it: a refused, unresolvable, unreachable or silent server is
	// then a clear Go error, instead of FFmpeg failing silently (its message
	// goes to stderr, not to our log) while it holds OpenCV's open lock.
	dial string
	// optionsURL is what the knock asks RTSP OPTIONS of (rtsp:// only):
	// scheme, host, port and path, without credentials or query.
	optionsURL string
	// ffmpegOptions is OPENCV_FFMPEG_CAPTURE_OPTIONS for RTSP ("" for
	// other sources, which use no option from it). An open adds the
	// decoder's (decoderOptions).
	ffmpegOptions string
}

// rtspProbeSize is FFmpeg's probesize for RTSP: how many bytes an open may
// read while it waits for the first keyframe. FFmpeg's default (5 MB) is
// 10 s of a 4 Mbit/s stream; this allows a 20 Mbit/s 4K stream the same.
// It is only read as far as the first keyframe and a few frames past it.
const rtspProbeSize = 25_000_000

// rtspOptions are the FFmpeg options of an RTSP open (key;value|key;value).
//
// analyzeduration is what lets a camera with a long keyframe interval
// connect. FFmpeg's open (avformat_find_stream_info) reads until it has
// decoded frames, which needs a keyframe, but gives up after
// analyzeduration (5 s by default); the first read then waits for the
// keyframe under the read timeout, which is meant for the gaps between
// frames, and fails. With analyzeduration = openTimeout the open waits for
// the keyframe itself and keeps what it read for the first frames.
//
// allowed_media_types=video sets up only the video stream: audio is never
// used, costs bandwidth, and an announced audio stream that sends nothing
// would hold the open until analyzeduration.
//
// fpsprobesize=1 has the open estimate the frame rate from one frame
// instead of 20, which nothing here uses (frames are sampled by the clock):
// an open of a 25 fps stream then reads ≈ 10 frames instead of ≈ 30. It
// matters because OpenCV opens one stream at a time (openlock.go): an open
// held that lock ≈ 1.2 s at 25 fps and ≈ 5.8 s at 5 fps, now ≈ 0.4 s and
// ≈ 2 s, so twenty cameras that come back together stream three times
// sooner (TestManyCamerasUnreachable; docs/measurements.md). Not 0: then
// the open no longer waits for the first keyframe (TestLongKeyframeInterval
// fails).
func rtspOptions(transport string, openTimeout time.Duration) string {
	return fmt.Sprintf("rtsp_transport;%s|allowed_media_types;video|analyzeduration;%d|probesize;%d|fpsprobesize;1",
		transport, openTimeout.Microseconds(), rtspProbeSize)
}

// defaultPorts are the schemes' well-known ports, for dialling a URL without one.
var defaultPorts = map[string]string{"rtsp": "554", "rtsps": "322", "http": "80", "https": "443"}

// withDefaults checks opts and fills in the defaults. Its errors name the
// camera and never contain the URL.
func withDefaults(opts Options) (Options, target, error) {
	var t target
	if opts.Name == "" {
		return opts, t, errors.New("capture: camera name is required")
	}
	bad := func(format string, args ...any) (Options, target, error) {
		return opts, t, fmt.Errorf("camera %q: %s", opts.Name, fmt.Sprintf(format, args...))
	}
	kind, err := kit.ParseSource(opts.URL)
	if err != nil {
		return bad("url: %v", err) // ParseSource's errors never contain the URL
	}
	if !(opts.FPS > 0) || math.IsInf(opts.FPS, 0) {
		return bad("fps must be more than 0, got %g", opts.FPS)
	}
	switch {
	case opts.ReadTimeout == 0:
		opts.ReadTimeout = DefaultReadTimeout
	case opts.ReadTimeout < 0:
		return bad("read timeout must not be negative, got %s", opts.ReadTimeout)
	}
	switch {
	case opts.OpenTimeout == 0:
		opts.OpenTimeout = kit.OpenTimeoutFor(opts.ReadTimeout)
	case opts.OpenTimeout < opts.ReadTimeout:
		return bad("open timeout (%s) must not be less than the read timeout (%s)", opts.OpenTimeout, opts.ReadTimeout)
	}
	switch {
	case opts.ProbeInterval == 0:
		opts.ProbeInterval = DefaultProbeInterval
	case opts.ProbeInterval < 0:
		return bad("probe interval must not be negative, got %s", opts.ProbeInterval)
	}
	switch opts.RTSPTransport {
	case "":
		opts.RTSPTransport = "tcp"
	case "tcp", "udp":
	default:
		return bad("rtsp transport must be tcp or udp, got %q", opts.RTSPTransport)
	}
	if len(opts.Backoff) == 0 {
		opts.Backoff = DefaultBackoff
	}
	for _, d := range opts.Backoff {
		if d <= 0 {
			return bad("backoff steps must be more than 0, got %s", d)
		}
	}
	switch {
	case opts.HealthyAfter == 0:
		opts.HealthyAfter = DefaultHealthyAfter
	case opts.HealthyAfter < 0:
		return bad("healthy-after must not be negative, got %s", opts.HealthyAfter)
	}
	if opts.Crop != nil {
		if err := opts.Crop.check(); err != nil {
			return bad("crop %s: %v", opts.Crop, err)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Decode, err = parseDecode(opts.Decode); err != nil {
		return bad("%v", err)
	}
	if opts.HWAccel, err = parseHWAccel(opts.HWAccel); err != nil {
		return bad("%v", err)
	}
	if kind == kit.SourceDevice && opts.Decode != DecodeAll {
		// A device sends whole pictures (or, for H.264 devices, frames
		// OpenCV's V4L2 backend hands over undecoded): nothing to leave out.
		return bad("decode %s is for streams and files; a video device delivers every frame it captures (use decode: all)", opts.Decode)
	}
	if kind == kit.SourceDevice && opts.HWAccel != HWAccelNone {
		return bad("hwaccel %s is for streams and files, not a video device", opts.HWAccel)
	}
	if m := opts.Device; m != (DeviceMode{}) {
		if kind != kit.SourceDevice {
			return bad("format, width, height and frame_rate are for video devices (/dev/video…), not %s", kindWord(kind))
		}
		if m.Format != "" {
			f, ok := kit.FourCC(m.Format)
			if !ok {
				return bad("format %q: want mjpeg, yuyv, h264, nv12 or a FourCC such as MJPG", m.Format)
			}
			opts.Device.Format = f
		}
		if m.Width < 0 || m.Height < 0 || m.FPS < 0 || (m.Width == 0) != (m.Height == 0) {
			return bad("device size %dx%d at %g fps: give both width and height, none negative", m.Width, m.Height, m.FPS)
		}
	}

	raw := strings.TrimSpace(opts.URL)
	t.kind = kind
	switch kind {
	case kit.SourceDevice:
		if strings.HasPrefix(raw, "/dev/v4l/") {
			t.path, t.index = raw, -1 // a link: its number is read at every open (resolveDevice)
			break
		}
		n := strings.TrimPrefix(raw, "/dev/video")
		t.index, err = strconv.Atoi(n)
		if err != nil || t.index < 0 {
			return bad("url: a device is /dev/videoN, /dev/v4l/by-id/… or by-path/…, or a number, got %q", raw)
		}
		if strings.HasPrefix(raw, "/dev/") {
			t.path = raw
		}
	case kit.SourceFile:
		t.path = raw
		if strings.HasPrefix(strings.ToLower(raw), "file://") {
			u, err := url.Parse(raw)
			if err != nil || u.Path == "" {
				return bad("url: a file URL is file:///path/to/video, got %q", kit.RedactURL(raw))
			}
			t.path = u.Path
		}
		t.open = t.path
	case kit.SourceStream:
		u, err := url.Parse(raw)
		if err != nil {
			return bad("url: cannot parse it") // url.Parse's error would quote the URL
		}
		scheme := strings.ToLower(u.Scheme)
		port := u.Port()
		if port == "" {
			port = defaultPorts[scheme]
		}
		t.open = raw
		t.dial = net.JoinHostPort(u.Hostname(), port)
		if scheme == "rtsp" {
			t.optionsURL = (&url.URL{Scheme: scheme, Host: t.dial, Path: u.Path}).String()
		}
		if scheme == "rtsp" || scheme == "rtsps" {
			// Timeouts are OpenCV's (videocapture.go); the rest has to go
			// through the variable.
			t.ffmpegOptions = rtspOptions(opts.RTSPTransport, opts.OpenTimeout)
		}
	}
	return opts, t, nil
}

// String shows the crop as written in the configuration.
func (c *Crop) String() string {
	units := "normalized"
	if c.Pixels {
		units = "pixels"
	}
	return fmt.Sprintf("x=%g y=%g width=%g height=%g (%s)", c.X, c.Y, c.Width, c.Height, units)
}

// check validates what can be checked without a frame.
func (c *Crop) check() error {
	for _, v := range []float64{c.X, c.Y, c.Width, c.Height} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("coordinates must be finite numbers")
		}
	}
	switch {
	case c.Width <= 0 || c.Height <= 0:
		return errors.New("width and height must be more than 0")
	case c.X < 0 || c.Y < 0:
		return errors.New("x and y must not be negative")
	case !c.Pixels && (c.X+c.Width > 1+cropSlack || c.Y+c.Height > 1+cropSlack):
		return errors.New("a normalized region must lie within the frame (x+width <= 1, y+height <= 1)")
	case c.Pixels && (c.X != math.Trunc(c.X) || c.Y != math.Trunc(c.Y) || c.Width != math.Trunc(c.Width) || c.Height != math.Trunc(c.Height)):
		return errors.New("pixel coordinates must be whole numbers")
	}
	return nil
}

// cropSlack lets 0.1+0.9 (= 1.0000000000000002 in floating point) count as 1.
const cropSlack = 1e-9

// region resolves the crop against a frame of w×h pixels. nil is the whole frame.
func (c *Crop) region(w, h int) (image.Rectangle, error) {
	frame := image.Rect(0, 0, w, h)
	if c == nil {
		return frame, nil
	}
	var r image.Rectangle
	if c.Pixels {
		r = image.Rect(int(c.X), int(c.Y), int(c.X+c.Width), int(c.Y+c.Height))
	} else {
		round := func(v float64, n int) int { return int(math.Round(v * float64(n))) }
		r = image.Rect(round(c.X, w), round(c.Y, h), round(c.X+c.Width, w), round(c.Y+c.Height, h))
	}
	if r.Empty() || !r.In(frame) {
		return image.Rectangle{}, fmt.Errorf("crop %s is outside the %dx%d frame (pixels %d,%d to %d,%d)",
			c, w, h, r.Min.X, r.Min.Y, r.Max.X, r.Max.Y)
	}
	return r, nil
}

func kindWord(k kit.SourceKind) string {
	if k == kit.SourceFile {
		return "a file"
	}
	return "a stream"
}

// resolveDevice is the index of the device a target names: its number, or,
// for a /dev/v4l link, the number of the node the link points to now (a
// camera replugged under another number is followed).
func (t target) resolveDevice() (int, error) {
	if t.index >= 0 {
		return t.index, nil
	}
	node, err := filepath.EvalSymlinks(t.path)
	if err != nil {
		return 0, fmt.Errorf("%s: %w (unplugged?)", t.path, errors.Unwrap(err))
	}
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(node), "video"))
	if err != nil || !strings.HasPrefix(filepath.Base(node), "video") {
		return 0, fmt.Errorf("%s points to %s, not a /dev/videoN node", t.path, node)
	}
	return n, nil
}
