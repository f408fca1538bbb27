package capture

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
	"gocv.io/x/gocv"
)

// reader is one connection to a camera: it opens it, decodes every frame and
// hands on those the sampler picks. It runs on its own goroutine because
// OpenCV's open and read block in C and cannot be interrupted from Go; the
// supervisor (source.connect) watches its progress instead.
type reader struct {
	src  *source
	done chan error // the reader's result, sent last; buffered so an abandoned reader never blocks

	phase       atomic.Int32 // what it is doing: the watchdog only watches calls into OpenCV
	progress    atomic.Int64 // unix ns of the last sign of life: an OpenCV open began, a frame was read
	connectedAt atomic.Int64 // unix ns of the first frame; 0 before
	// giveUpAt is unix ns when OpenCV's own timeout ends the call in
	// progress (0: no timeout, V4L2): by then an abandoned reader has let
	// go of the camera.
	giveUpAt atomic.Int64
	// reached: the camera answered (a stream's server answered the knock,
	// knock.go; a file or device exists). A failure before that is one the
	// backoff's probe can see the end of.
	reached atomic.Bool

	// keyframes: this connection decodes key frames only (set at start).
	keyframes bool
	// hw is the hardware decoder its open got (HWAccelNone: software).
	// Written by the reader before its first frame.
	hw HWAccel
	// keyGap is the longest interval between key frames this connection
	// measured (ns; 0 before one was): with key frames only, what a gap
	// between frames may legitimately be.
	keyGap atomic.Int64

	// Guarded by src.mu.
	abandoned bool // the supervisor gave up on it: hand on nothing, just clean up
	finished  bool
}

// The reader's phases. The watchdog ignores dialling (it has its own
// timeout) and waiting for openSlot (another camera's open is slow, not
// this stream). It declares a stall after OpenTimeout from the start of
// OpenCV's open to the first frame (which needs a keyframe), and after
// ReadTimeout between frames.
const (
	phaseDialing    int32 = iota
	phaseWaiting          // for openSlot
	phaseOpening          // inside OpenCV's open
	phaseFirstFrame       // opened; reading up to the first frame (the open's clock still runs)
	phaseReading          // reading, after the first frame
)

func newReader(s *source) *reader {
	r := &reader{src: s, done: make(chan error, 1), hw: HWAccelNone}
	r.keyframes = s.startReader()
	r.touch(time.Now())
	return r
}

// enter starts a phase and its clock.
func (r *reader) enter(phase int32) {
	r.touch(time.Now())
	r.phase.Store(phase)
}

// watched reports whether the watchdog applies now, to what, under which
// setting (for the error), and how long it allows without progress.
//
// Decoding key frames only, every frame waits for a key frame as the first
// one does: a gap between frames is a keyframe interval. Until this
// connection has measured one it is held to open_timeout, like the first
// frame (open_timeout must cover the keyframe interval); then to
// read_timeout past the longest interval measured (whole seconds, so the
// error's text does not change from one stall to the next), never more than
// open_timeout.
func (r *reader) watched() (what, setting string, limit time.Duration, ok bool) {
	o := r.src.opts
	switch r.phase.Load() {
	case phaseOpening, phaseFirstFrame:
		return "open", "open_timeout", o.OpenTimeout, true
	case phaseReading:
		if !r.keyframes {
			return "read", "read_timeout", o.ReadTimeout, true
		}
		gap := time.Duration(r.keyGap.Load())
		limit := o.ReadTimeout + gap.Truncate(time.Second) + time.Second
		if gap == 0 || limit >= o.OpenTimeout {
			return "read", "open_timeout", o.OpenTimeout, true
		}
		return "read", "read_timeout past the keyframe interval", limit, true
	}
	return "", "", 0, false
}

// grabTimeout is OpenCV's own limit for one grab (less the margin): decoding
// key frames only, a grab waits for the next key frame, so it gets
// open_timeout, which covers a keyframe interval.
func (r *reader) grabTimeout() time.Duration {
	if r.keyframes {
		return r.src.opts.OpenTimeout
	}
	return r.src.opts.ReadTimeout
}

func (r *reader) touch(t time.Time)       { r.progress.Store(t.UnixNano()) }
func (r *reader) lastProgress() time.Time { return time.Unix(0, r.progress.Load()) }

func (r *reader) connectedFor() time.Duration {
	at := r.connectedAt.Load()
	if at == 0 {
		return 0
	}
	return time.Since(time.Unix(0, at))
}

// releaseBy is when an abandoned r will have let go of the camera: when
// OpenCV gives up on the call in progress, or, for calls without an OpenCV
// timeout, opencvTimeoutMargin after abandonedAt (the wait is never
// unbounded).
func (r *reader) releaseBy(abandonedAt time.Time) time.Time {
	if ns := r.giveUpAt.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return abandonedAt.Add(opencvTimeoutMargin)
}

func (r *reader) isAbandoned() bool {
	r.src.mu.Lock()
	defer r.src.mu.Unlock()
	return r.abandoned
}

// run is the reader goroutine. Everything it opened is closed before it
// reports, also when it was abandoned and nobody listens any more.
func (r *reader) run(ctx context.Context, out Handoff) {
	err := r.read(ctx, out)
	r.src.readerFinished(r)
	r.done <- err
}

// read opens the camera and decodes until ctx is cancelled, the stream ends
// or fails, or the reader is abandoned. It returns nil in the first and last
// cases.
func (r *reader) read(ctx context.Context, out Handoff) error {
	s := r.src
	name := s.opts.Name
	vc, err := s.open(ctx, r)
	if err != nil {
		return err
	}
	defer func() { vc.close() }() // vc is replaced when a looping file is reopened
	r.phase.Store(phaseFirstFrame)

	mat := gocv.NewMat()           // BGR buffer; handed on as a frame's Mat when sampled
	defer func() { mat.Close() }() // mat is replaced after each hand-on

	file := s.target.kind == kit.SourceFile
	device := s.target.kind == kit.SourceDevice
	ffmpeg := !device // V4L2 reads have no timeout of ours (OpenCV's select waits 10 s)
	failedReads := 0  // consecutive, of a device
	var pace *pacer
	if file {
		// A file decodes as fast as the CPU allows; pacing it by its
		// timestamps makes it behave like a camera.
		pace = newPacer(vc.get(gocv.VideoCaptureFPS), vc.get(gocv.VideoCaptureFrameCount))
		defer pace.stop()
	}
	sample := sampler{period: time.Duration(float64(time.Second) / s.opts.FPS)}
	if r.keyframes {
		// A key frame that comes a little before it is due is taken: the
		// next one is a whole keyframe interval away, and fps 1 from a
		// key frame a second would otherwise lose every other one to
		// jitter. Due times still advance by one period, so the rate
		// stays fps at most.
		sample.early = sample.period / 2
	}
	var keys keyframeClock
	empty := kit.NewRepeat(s.log, "camera frame could not be retrieved; not sampled")
	format := kit.NewRepeat(s.log, "camera sent frames in a format that cannot be converted to BGR; not sampled")
	defer empty.Flush()
	defer format.Flush()

	width, height := 0, 0
	framesThisPass := 0 // of a file, since it was opened or rewound
	rewound := false    // the last pass of a file started with a seek, not an open
	for {
		if ctx.Err() != nil {
			return nil
		}
		// Every frame grabbed is decoded (all of them, or with key frames
		// only every key frame: the decoder leaves the rest, which need
		// their predecessors); only sampled ones are converted.
		if ffmpeg {
			r.giveUpAt.Store(time.Now().Add(r.grabTimeout() + opencvTimeoutMargin).UnixNano())
		}
		ok := vc.grab()
		if r.isAbandoned() {
			return nil
		}
		if !ok && device && failedReads < deviceReadRetries {
			// OpenCV's V4L2 read fails when a signal interrupts its wait
			// for the frame, and Go's preemption signal does, a few times
			// a minute (docs/measurements.md, the V4L2 simulator): read
			// again before calling the camera gone. An unplugged camera
			// fails at once each time, a stalled one is the watchdog's.
			failedReads++
			continue
		}
		if ok {
			failedReads = 0
		}
		if !ok {
			if device {
				return cameraError(name, "read", fmt.Errorf("the device gave no frame %d times in a row (unplugged?)", failedReads+1))
			}
			if !file {
				return cameraError(name, "read", errors.New("the stream ended or failed (OpenCV returned no frame)"))
			}
			switch {
			case framesThisPass > 0 && !s.opts.Loop:
				return errEnded
			case framesThisPass > 0:
				// Rewind by seeking: an open would wait for openSlot,
				// behind any other camera's slow open.
				vc.set(gocv.VideoCapturePosFrames, 0)
				rewound = true
			case rewound:
				// The seek gave nothing (some containers do not seek):
				// reopen instead.
				vc.close()
				if vc, err = s.open(ctx, r); err != nil {
					return err
				}
				r.phase.Store(phaseFirstFrame)
				rewound = false
			default:
				return cameraError(name, "read", fmt.Errorf("%s has no frame FFmpeg can decode", s.target.path))
			}
			framesThisPass = 0
			continue
		}
		if pace != nil && !pace.wait(ctx, time.Duration(vc.get(gocv.VideoCapturePosMsec)*float64(time.Millisecond)), framesThisPass == 0) {
			return nil
		}
		now := time.Now()
		framesThisPass++
		r.touch(now)
		if r.phase.Load() == phaseFirstFrame {
			r.phase.Store(phaseReading) // after touch: the watchdog never sees the read phase with the open's clock
		}
		s.frameRead(r, now)
		// Decoding key frames only, every frame is one. Otherwise the
		// packet's flag says; but the packet the first frame of a pass
		// came from was read within the grab, unseen (the decoder
		// wanted more): it is a key frame, as decoding starts at one.
		if ffmpeg && (r.keyframes || framesThisPass == 1 || vc.get(capPropKeyPacket) != 0) {
			keys.add(now)
			if err := r.keyframeRead(&keys); err != nil {
				return err
			}
		}
		// The first frame is always due, so size and crop are known
		// before anything is handed on.
		if !sample.due(now) {
			continue
		}
		if !vc.retrieve(&mat) || mat.Empty() {
			empty.Add()
			continue
		}
		if mat.Cols() != width || mat.Rows() != height {
			if err := s.frameSize(r, mat.Cols(), mat.Rows()); err != nil {
				return err
			}
			if width != 0 {
				s.log.Info("camera frame size changed", "width", mat.Cols(), "height", mat.Rows(), "was_width", width, "was_height", height)
			}
			width, height = mat.Cols(), mat.Rows()
		}
		if r.connectedAt.Load() == 0 {
			r.connectedAt.Store(now.UnixNano())
			s.connected(r, width, height)
		}
		var m gocv.Mat
		switch typ := mat.Type(); {
		case typ == gocv.MatTypeCV8UC3 && mat.IsContinuous():
			// Hand the BGR buffer itself on (no copy); the next retrieve
			// allocates a fresh one.
			m, mat = mat, gocv.NewMat()
		case typ == gocv.MatTypeCV8UC3:
			m = mat.Clone() // Clone is continuous
		case typ == gocv.MatTypeCV8UC1 || typ == gocv.MatTypeCV8UC4:
			m = gocv.NewMat()
			code := gocv.ColorGrayToBGR
			if typ == gocv.MatTypeCV8UC4 {
				code = gocv.ColorBGRAToBGR
			}
			gocv.CvtColor(mat, &m, code)
		default:
			format.Add("type", typ.String())
			continue
		}
		s.handOn(r, &Frame{Camera: name, Time: now, Mat: m}, out)
	}
}

// opencvTimeoutMargin is added to OpenTimeout and ReadTimeout to get
// OpenCV's own open and read timeouts. The watchdog fires first (it checks
// every 250 ms) and declares the stall; OpenCV's timeout then ends the call
// it abandoned about this much later, so the abandoned reader closes its
// connection and an abandoned open gives back the process-wide open lock.
// The next attempt waits for that (source.awaitRelease), at most this margin
// and a little slack: a camera that allows one session would refuse a
// reopen beside the abandoned one.
const opencvTimeoutMargin = time.Second

// open opens the camera for r, or explains why it cannot. Its errors name
// the camera and never contain the URL.
func (s *source) open(ctx context.Context, r *reader) (*videoCapture, error) {
	t := s.target
	name := s.opts.Name
	if t.path != "" {
		fi, err := os.Stat(t.path)
		if err != nil {
			return nil, cameraError(name, "open", err)
		}
		if fi.IsDir() {
			return nil, cameraError(name, "open", fmt.Errorf("%s is a directory", t.path))
		}
	}
	if t.dial != "" {
		r.enter(phaseDialing)
		kctx, cancel := context.WithTimeout(ctx, s.opts.OpenTimeout)
		err := t.knock(kctx, s.opts.ProbeInterval, false)
		cancel()
		if err != nil {
			return nil, cameraError(name, "open", err) // its errors name host:port only
		}
	}
	r.reached.Store(true)

	var vc *videoCapture
	index := t.index
	if t.kind == kit.SourceDevice {
		// V4L2 is not behind FFmpeg's open lock.
		r.enter(phaseOpening)
		var err error
		if index, err = t.resolveDevice(); err != nil {
			return nil, cameraError(name, "open", err)
		}
		// Asked first through libc, for what OpenCV's open would only
		// call "false": busy, not allowed, gone; and what it offers.
		dev := queryDevice(fmt.Sprintf("/dev/video%d", index))
		if dev.Err != nil {
			return nil, cameraError(name, "open", dev.Err)
		}
		if vc = openV4L2(index); vc != nil {
			s.applyMode(vc, dev.Modes)
		}
	} else {
		r.enter(phaseWaiting)
		if !acquireOpen(ctx) {
			return nil, ctx.Err()
		}
		vc = s.openFFmpeg(r)
		releaseOpen()
	}
	if vc != nil {
		return vc, nil
	}
	var why error
	switch t.kind {
	case kit.SourceDevice:
		why = fmt.Errorf("V4L2 cannot open video device %d", index)
	case kit.SourceFile:
		why = fmt.Errorf("FFmpeg cannot read %s as video", t.path)
	default:
		why = errors.New("the server accepted the connection but FFmpeg could not open the stream " +
			"(wrong path or credentials, or no video it can decode; FFmpeg's own message is on stderr)")
	}
	return nil, cameraError(name, "open", why)
}

// openFFmpeg opens a stream or file for r, the caller holding openSlot:
// with the hardware decoder configured, unless it failed before, and when
// that cannot open, at once again in software (s.hwFallback says so, once,
// and later opens go straight to software). A software open that fails too
// is the stream's failure, not the hardware's: nothing is recorded.
func (s *source) openFFmpeg(r *reader) *videoCapture {
	hw := s.hwaccel()
	vc := s.openWith(r, hw)
	switch accel, _ := hw.openParams(); {
	case hw == HWAccelNone:
	case vc != nil && accel != videoAccelerationNone && int(vc.get(capPropHWAcceleration)) != accel:
		s.hwFallback(hw) // OpenCV opened it, but in software
		hw = HWAccelNone
	case vc == nil && !r.isAbandoned():
		if vc = s.openWith(r, HWAccelNone); vc != nil {
			s.hwFallback(hw)
		}
		hw = HWAccelNone
	}
	if vc != nil {
		r.hw = hw
		s.opened(r)
	}
	return vc
}

// openWith is one OpenCV open for r with hardware decoder hw, bounded by
// OpenTimeout (plus OpenCV's margin), its options set just before.
func (s *source) openWith(r *reader, hw HWAccel) *videoCapture {
	accel, decoder := hw.openParams()
	setFFmpegOptions(openOptions(s.target.ffmpegOptions, decoderOptions(r.keyframes, decoder)))
	r.enter(phaseOpening)
	r.giveUpAt.Store(time.Now().Add(s.opts.OpenTimeout + opencvTimeoutMargin).UnixNano())
	return openFFmpeg(s.target.open, s.opts.OpenTimeout+opencvTimeoutMargin, r.grabTimeout()+opencvTimeoutMargin, accel)
}

// keyframeRead is called on each key frame read, after keys recorded it:
// it publishes the keyframe rate and, once per connection, when enough
// intervals were measured, acts on it: decode keyframes warns when key
// frames come too seldom for fps, decode auto chooses (errDecodeSwitch
// when that means reopening).
func (r *reader) keyframeRead(keys *keyframeClock) error {
	s := r.src
	rate, intervals := keys.rate()
	if intervals == 0 {
		return nil
	}
	r.keyGap.Store(int64(keys.longest))
	s.setKeyframeRate(r, rate)
	if intervals != keyframeJudgeAfter {
		return nil
	}
	fps := s.opts.FPS
	switch s.opts.Decode {
	case DecodeAuto:
		if want := autoWants(rate, fps, r.keyframes); want != r.keyframes && s.chooseAuto(r, want, rate) {
			return errDecodeSwitch
		}
	case DecodeKeyframes:
		if rate < fps*keyframeShortfall && !r.isAbandoned() {
			s.log.Warn("camera fps asks for more frames than the stream has key frames; decoding key frames only, it samples at the keyframe rate",
				"fps", fps, "keyframe_rate", roundRate(rate),
				"hint", "lower fps, shorten the camera's keyframe (I-frame) interval, or set decode: all or auto")
		}
	}
	return nil
}

// reachable is the backoff's probe for files and devices: could an open
// get past its first step now? A stat of the path; for a device by index,
// always. (Streams are knocked on instead: knock.go.)
func (t target) reachable() bool {
	if t.path != "" {
		_, err := os.Stat(t.path)
		return err == nil
	}
	return true
}

// sampler picks frames at a fixed rate from a faster stream: the first frame
// at or after each due time is handed on. Due times advance by exactly one
// period, so the average rate is the configured one whatever the stream's
// rate or jitter.
//
// early lets a frame up to that long before its due time count as due
// (decoding key frames only, where the next frame is a keyframe interval
// away); the due times still advance by one period, so the average rate
// is never above the configured one.
type sampler struct {
	period time.Duration
	early  time.Duration
	next   time.Time
}

func (s *sampler) due(now time.Time) bool {
	if now.Before(s.next.Add(-s.early)) {
		return false
	}
	if s.next.IsZero() || now.Sub(s.next) > s.period {
		// First frame, or the stream paused: restart the schedule here
		// rather than hand on a burst to catch up.
		s.next = now.Add(s.period)
	} else {
		s.next = s.next.Add(s.period)
	}
	return true
}

// pacer hands on a file's frames as far apart as their timestamps are, so
// that a file plays like a camera: frame after frame at its frame rate, or,
// decoding key frames only, a key frame every keyframe interval.
type pacer struct {
	frame  time.Duration // one frame at the file's frame rate
	length time.Duration // the file's length (0: unknown)
	due    time.Time     // when the last frame was handed on
	pos    time.Duration // its timestamp
	gap    time.Duration // the gap before it; first one frame
	timer  *time.Timer
}

// maxPaceGap bounds a gap taken from timestamps (a broken one could stop a
// file for good): the watchdog would call a longer gap a stall anyway.
const maxPaceGap = time.Minute

// newPacer paces a file of the frame rate and frame count OpenCV reports.
func newPacer(fps, frames float64) *pacer {
	// OpenCV reports 0 or nonsense for some files; 25 fps is the common
	// camera rate. The bounds keep a broken value from stalling the
	// watchdog (under 1 fps) or spinning a core (over 240).
	if math.IsNaN(fps) || fps < 1 || fps > 240 {
		fps = 25
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	p := &pacer{frame: time.Duration(float64(time.Second) / fps), timer: t}
	if frames >= 1 && frames < 1e9 {
		p.length = time.Duration(frames / fps * float64(time.Second))
	}
	p.gap = p.frame
	return p
}

// wait returns when the frame just decoded, whose timestamp is pos, is due
// (schedule), or false when ctx ended first.
func (p *pacer) wait(ctx context.Context, pos time.Duration, newPass bool) bool {
	now := time.Now()
	if d := p.schedule(now, pos, newPass).Sub(now); d > 0 {
		p.timer.Reset(d)
		select {
		case <-ctx.Done():
			p.timer.Stop()
			return false
		case <-p.timer.C:
		}
	}
	return true
}

// schedule is when the frame whose timestamp is pos is due, seen at now:
// as far after the last frame as their timestamps are apart. newPass says
// the file started again: the gap is then what was left of the last pass
// (from the last frame to the end) and pos. A timestamp that does not move
// forward otherwise (a file without them) keeps the last gap.
func (p *pacer) schedule(now time.Time, pos time.Duration, newPass bool) time.Time {
	if p.due.IsZero() {
		p.due, p.pos = now, pos
		return now
	}
	gap := pos - p.pos
	switch {
	case newPass && p.length > 0:
		gap = max(p.length-p.pos, p.frame) + max(pos, 0)
	case gap <= 0:
		gap = p.gap
	}
	gap = min(gap, maxPaceGap)
	due := p.due.Add(gap)
	if now.Sub(due) > time.Second {
		due = now // far behind (a slow machine): no burst to catch up
	}
	p.due, p.pos, p.gap = due, pos, gap
	return due
}

func (p *pacer) stop() { p.timer.Stop() }

// deviceReadRetries is how many failed reads in a row a device may have
// before it counts as gone: an interrupted wait fails one read, rarely two.
const deviceReadRetries = 3

// applyMode asks a device for the configured format, size and frame rate
// and reads back what it chose: a device that picks something else (a
// size it lacks, a rate its format cannot reach over USB 2.0) is logged
// once per difference, with what it chose and what it offers, and the
// camera goes on with it.
func (s *source) applyMode(vc *videoCapture, offered []Mode) {
	m := s.opts.Device
	if m == (DeviceMode{}) {
		return
	}
	if m.Format != "" {
		vc.set(gocv.VideoCaptureFOURCC, float64(fourcc(m.Format)))
	}
	if m.Width > 0 {
		vc.set(gocv.VideoCaptureFrameWidth, float64(m.Width))
		vc.set(gocv.VideoCaptureFrameHeight, float64(m.Height))
	}
	if m.FPS > 0 {
		vc.set(gocv.VideoCaptureFPS, m.FPS)
	}
	got := DeviceMode{Format: fourccString(uint32(vc.get(gocv.VideoCaptureFOURCC))),
		Width: int(vc.get(gocv.VideoCaptureFrameWidth)), Height: int(vc.get(gocv.VideoCaptureFrameHeight)), FPS: vc.get(gocv.VideoCaptureFPS)}
	var diff []string
	if m.Format != "" && !strings.EqualFold(got.Format, m.Format) {
		diff = append(diff, fmt.Sprintf("format %s instead of %s", got.Format, m.Format))
	}
	if m.Width > 0 && (got.Width != m.Width || got.Height != m.Height) {
		diff = append(diff, fmt.Sprintf("%dx%d instead of %dx%d", got.Width, got.Height, m.Width, m.Height))
	}
	if m.FPS > 0 && math.Abs(got.FPS-m.FPS) > 0.5 {
		diff = append(diff, fmt.Sprintf("%g fps instead of %g", got.FPS, m.FPS))
	}
	msg := strings.Join(diff, ", ")
	s.mu.Lock()
	changed := msg != s.modeWarned
	s.modeWarned = msg
	s.mu.Unlock()
	if msg != "" && changed {
		s.log.Warn("the device chose another mode than the config asks; going on with it", "chose", msg,
			"format", got.Format, "width", got.Width, "height", got.Height, "fps", got.FPS, "offers", offers(offered))
	}
}

// fourcc packs a four-character code as V4L2 and OpenCV do.
func fourcc(s string) uint32 {
	var v uint32
	for i := 3; i >= 0; i-- {
		v = v<<8 | uint32(s[i])
	}
	return v
}

func fourccString(v uint32) string {
	b := []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
	return strings.TrimRight(string(b), "\x00 ")
}
