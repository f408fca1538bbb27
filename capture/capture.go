// Package capture reads camera frames with OpenCV (gocv) and hands a sample
// of them, at each camera's configured rate, to the rest of the pipeline.
//
// # Contract
//
// A Source is one camera. Its Run method decodes the stream continuously in a
// reader goroutine (every frame, or with Decode only its key frames), keeps
// one frame every 1/FPS seconds and hands it to a Handoff. Run reconnects
// forever (stepped backoff, cut short by a cheap probe when an unreachable
// camera answers again; a stream's server must answer a knock, knock.go,
// before OpenCV opens it), declares a stream that stays open but sends
// nothing "stalled" after ReadTimeout (OpenTimeout while opening, up to the
// first frame; decoding key frames only, ReadTimeout past the keyframe
// interval, at most OpenTimeout) and reopens it, and returns promptly
// when its context is cancelled, even when OpenCV is stuck inside a Read that
// Go cannot interrupt (that reader is abandoned and counted in
// Status.AbandonedReaders until it returns by itself). A reopen after a
// stall waits until the abandoned reader has let go of its connection
// (bounded), so the camera never sees two sessions from one Source.
//
// Ownership: a *Frame owns its gocv.Mat. Handoff.Offer takes ownership of the
// frame it is given; whoever then receives the frame (from Latest.Take) owns
// it and must call Close exactly once. A frame replaced in Latest before
// anyone took it is closed by Latest and counted as a drop.
//
// Hand-off: Latest keeps at most one pending frame per camera ("latest frame
// wins"). When inference is slower than the cameras, a newer frame replaces
// the stale one instead of queueing behind it, so latency never grows and
// memory stays bounded at one frame per camera. Offer never blocks, so a slow
// consumer can never stall a camera's decoding.
//
// # Where things are
//
// source.go is the supervisor (states, backoff, watchdog, logging);
// reader.go the goroutine that opens, decodes and samples; decode.go what
// is decoded (every frame or key frames only, the keyframe rate, auto's
// choice) and with which hardware decoder; knock.go the check that a
// stream's server answers, before an open and as the backoff's probe;
// latest.go the hand-off; options.go defaults, URL kinds and crops;
// openlock.go the process-wide open lock OpenCV imposes; videocapture.go/.cpp
// the small C++ shim over cv::VideoCapture (open timeouts, hardware
// decoding, grab without converting). docs/02-cameras.md is the user-facing
// description.
package capture

import (
	"context"
	"fmt"
	"image"
	"log/slog"
	"time"

	"gocv.io/x/gocv"
)

// Frame is one decoded picture. Whoever receives a Frame owns it and must
// call Close exactly once.
type Frame struct {
	Camera string
	// Seq counts the camera's frames handed on, from 1, across reconnects. A
	// gap seen by the consumer means Latest dropped the frames in between.
	Seq uint64
	// Time is when it was read from the stream: a time.Now() reading, so it
	// carries the monotonic clock, on which the daemon measures durations
	// whatever the wall clock does (daemon/clock.go). Keep it one.
	Time time.Time
	Mat  gocv.Mat // the full frame, BGR, 8UC3, continuous
	// Region is the camera's crop in pixels, validated against the frame; the
	// whole frame when the camera has no crop. Mat.Region(f.Region) gives a
	// view of it without copying.
	Region image.Rectangle

	closed bool
}

// Close releases the frame's Mat. A second Close does nothing, but ownership
// means there should not be one.
func (f *Frame) Close() {
	if f == nil || f.closed {
		return
	}
	f.closed = true
	f.Mat.Close()
}

// Handoff receives frames from sources. Offer takes ownership of f and must
// never block: it is called on the camera's decoding goroutine.
type Handoff interface{ Offer(f *Frame) }

// State is where a source is in its life.
type State string

// The states a Source reports. docs/02-cameras.md ("States") explains each for users.
const (
	StateStarting     State = "starting"     // Run began; the first connection is being opened
	StateConnected    State = "connected"    // frames are arriving
	StateReconnecting State = "reconnecting" // the last open or read failed; retrying after a backoff
	StateStalled      State = "stalled"      // the stream stayed open but sent no frame for ReadTimeout; reopening
	StateEnded        State = "ended"        // a file source reached its end and Loop is off
	StateStopped      State = "stopped"      // Run has returned (or never ran)
)

// Status is a snapshot of a source for the daemon's status page and metrics.
type Status struct {
	Name      string
	URL       string // credentials redacted
	State     State
	LastError string    // the error behind the current state, redacted; "" when connected
	LastFrame time.Time // when the last frame was read from the stream (zero: never)
	// FramesDecoded counts frames decoded; FramesSampled those handed on (sampled
	// at FPS). Reconnects counts connection attempts after the first;
	// Stalls how often the watchdog fired.
	FramesDecoded, FramesSampled, Reconnects, Stalls uint64
	// FPSDecoded and FPSSampled are those two rates over the last rateWindow seconds.
	FPSDecoded, FPSSampled float64
	Width, Height          int // of the last frame read; 0 before the first
	// Decode is what the current (or next) connection decodes: DecodeAll or
	// DecodeKeyframes; with Options.Decode DecodeAuto, the one auto chose.
	Decode Decode
	// KeyframeRate is how many key frames a second the stream sends,
	// measured from the intervals between the key frames read (the latest
	// connection's measure, kept across reconnects); 0 until measured.
	// Decoding key frames only, it is the most frames a second the camera
	// can sample.
	KeyframeRate float64
	// HWAccel is the hardware decoder in use: HWAccelNone for software,
	// which includes a configured one that could not open.
	HWAccel HWAccel
	// AbandonedReaders is how many readers are stuck in OpenCV right now,
	// left behind by the watchdog or by shutdown. Each releases its capture
	// and Mats when its call returns: for FFmpeg sources OpenCV's own
	// timeout (the watchdog's limit + 1 s) normally ends it about a second
	// after the watchdog gave up on it.
	AbandonedReaders int
}

// Source is one camera.
type Source interface {
	Name() string
	// Run reads until ctx is cancelled, handing sampled frames to out. It
	// reconnects forever and returns nil after ctx is cancelled, promptly
	// (within stopGrace, 2 s) even if a Read is stuck. It returns an error
	// only when called wrongly (nil out, or while already running).
	Run(ctx context.Context, out Handoff) error
	Status() Status
}

// Crop is a region of the frame. With Pixels false the numbers are fractions
// of the frame's width and height (0–1); with Pixels true they are pixels.
type Crop struct {
	X, Y, Width, Height float64
	Pixels              bool
}

// Options configure a Source. Zero values take the defaults noted.
type Options struct {
	Name string
	// URL is rtsp://, rtsps://, http(s):// (MJPEG, HLS), file:// or a path,
	// /dev/videoN, a stable device link (/dev/v4l/by-id/…, by-path/…: the
	// link is followed at every open, so a camera replugged under another
	// number is found) or a device index ("0"). It may contain
	// credentials: they are never logged or returned unredacted.
	URL string
	// Device asks a video device for a pixel format, size and frame rate
	// (zero values: the device's choice). Devices only.
	Device DeviceMode
	FPS    float64 // frames handed on per second
	// ReadTimeout: a running stream that sends no frame for this long is
	// stalled. Default 10s.
	ReadTimeout time.Duration
	// OpenTimeout bounds an open, from the connection up to and including
	// the first frame. That frame needs a keyframe, so OpenTimeout must
	// cover the camera's keyframe interval; it may not be less than
	// ReadTimeout. Default kit.OpenTimeoutFor(ReadTimeout): 20s, or
	// ReadTimeout when that is longer.
	OpenTimeout   time.Duration
	RTSPTransport string // "tcp" (default) or "udp"
	// Decode: every frame (DecodeAll, the default), key frames only
	// (DecodeKeyframes: sampling is then capped at the stream's keyframe
	// rate), or DecodeAuto. Streams and files; not devices.
	Decode Decode
	// HWAccel is a hardware decoder to try first (default HWAccelNone);
	// when it cannot open, the camera decodes in software from then on,
	// with one log line. Streams and files; not devices.
	HWAccel HWAccel
	Loop    bool  // file sources: start again at the end
	Crop    *Crop // nil = whole frame
	// Backoff is the wait before each reconnect attempt; the last step
	// repeats. Default 1s, 2s, 5s, 10s, 30s. While the camera is
	// unreachable (connection refused, no route, no answer, file or device
	// missing) a probe checks every ProbeInterval and ends the wait when it
	// answers.
	Backoff []time.Duration
	// ProbeInterval is how often an unreachable camera is probed during a
	// backoff, and how often an open knocks again on a stream's server that
	// has not answered yet: one TCP connection and, for rtsp://, one RTSP
	// OPTIONS request on it (closed at once), or one stat of a path.
	// Default 1s.
	ProbeInterval time.Duration
	// HealthyAfter: a connection that delivered frames this long resets the
	// backoff to its first step. Default 1m.
	HealthyAfter time.Duration
	Logger       *slog.Logger // default slog.Default()
}

// DeviceMode is what a video device is asked to deliver. A USB 2.0 webcam
// sends 1080p only as MJPEG, and often defaults to YUYV at 640×480 or to a
// few frames a second: the user says what it should send.
type DeviceMode struct {
	Format string  // FourCC: "MJPG", "YUYV", …; "" leaves the device's
	Width  int     // 0 leaves the device's
	Height int     // 0 leaves the device's
	FPS    float64 // the device's own frame rate; 0 leaves the device's
}

// Defaults for Options.
const (
	DefaultReadTimeout   = 10 * time.Second
	DefaultHealthyAfter  = time.Minute
	DefaultProbeInterval = time.Second
)

// DefaultBackoff is the reconnect schedule when Options.Backoff is empty.
// Short first steps bring a camera that merely rebooted back quickly; the
// 30 s cap keeps a camera that is gone for good from costing more than an
// open every half minute. Coming back does not wait for the next step: the
// probe (Options.ProbeInterval) notices an unreachable camera's return.
var DefaultBackoff = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second}

// New checks opts and returns the camera's Source. It fails only for invalid
// options; an unreachable camera is Run's business (it retries).
func New(opts Options) (Source, error) {
	s, err := newSource(opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// cameraError wraps err with the camera's name, the way every error of this
// package starts.
func cameraError(name, what string, err error) error {
	return fmt.Errorf("camera %q: %s: %w", name, what, err)
}
