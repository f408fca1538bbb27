package capture

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
)

// stopGrace is how long Run waits, after its context is cancelled, for the
// reader to finish before abandoning it. A live stream's Read returns within
// a frame interval and an RTSP open within about a second or two
// (docs/measurements.md), so a healthy reader finishes within it, and Run
// still returns well within the daemon's 5 s shutdown budget.
const stopGrace = 2 * time.Second

// watchdogTick is how often Run checks its reader's progress: a stall is
// declared at most this long after ReadTimeout has passed.
const watchdogTick = 250 * time.Millisecond

// rateWindow is how many one-second samples FPSDecoded and FPSSampled average over.
const rateWindow = 5

// releaseSlack is how much longer than OpenCV's timeout the next attempt
// waits for an abandoned reader to let go of its connection: scheduling and
// the closing itself.
const releaseSlack = 500 * time.Millisecond

var (
	// errStalled is the watchdog's verdict: no frame for OpenTimeout (opening) or ReadTimeout (reading).
	errStalled = errors.New("no frame")
	// errEnded: a file source without Loop reached its end.
	errEnded = errors.New("end of file (loop is off)")
	// errDecodeSwitch: decode auto chose the other mode; the stream is
	// reopened in it at once (not a failure: no backoff, no state change).
	errDecodeSwitch = errors.New("decode auto: reopening in the other mode")
)

// source is the Source for one camera. Run owns a supervisor loop (this
// file) and, at any time, at most one current reader goroutine (reader.go)
// that opens the camera and decodes it. Readers the watchdog gave up on are
// "abandoned": they hand on nothing more and free themselves if their
// OpenCV call ever returns.
type source struct {
	opts   Options // defaults applied
	target target
	url    string // redacted, for logs and Status
	log    *slog.Logger

	running atomic.Bool

	// framesRead is updated by the reader on every frame; the rest under mu.
	framesRead atomic.Uint64

	modeWarned    string     // the device mode difference last logged (applyMode), under mu
	mu            sync.Mutex // also serialises handing frames on, so Seq is ordered
	state         State
	lastErr       string
	lastFrame     time.Time
	framesSampled uint64
	reconnects    uint64
	stalls        uint64
	seq           uint64
	width         int
	height        int
	region        image.Rectangle
	abandoned     int
	decode        Decode    // what the current connection decodes (Status.Decode)
	autoKeyframes bool      // decode auto's choice for the next connection
	keyframeRate  float64   // Status.KeyframeRate
	hwInUse       HWAccel   // Status.HWAccel
	hwFailed      bool      // the configured hardware decoder could not open: software from then on
	downSince     time.Time // when the camera stopped delivering (for the recovery log line)
	stuckWarned   bool      // this outage already logged a reader that outlived OpenCV's timeout
	logged        struct {  // the last state change logged, so a retry failing the same way logs nothing
		state State
		err   string
	}
	rates [rateWindow + 1]rateSample // ring, one sample a second
	nrate int                        // samples taken
}

type rateSample struct {
	at      time.Time
	in, out uint64
}

func newSource(opts Options) (*source, error) {
	opts, t, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	url := kit.RedactURL(opts.URL)
	s := &source{
		opts:   opts,
		target: t,
		url:    url,
		log:    opts.Logger.With("camera", opts.Name, "url", url),
		state:  StateStopped,
		// Auto starts with key frames: a box that starts twenty cameras
		// decodes little, and their rate is measured directly.
		autoKeyframes: true,
		hwInUse:       HWAccelNone,
	}
	s.decode = DecodeAll
	if s.keyframesNext() {
		s.decode = DecodeKeyframes
	}
	return s, nil
}

func (s *source) Name() string { return s.opts.Name }

// Status returns a snapshot of the camera's state.
func (s *source) Status() Status {
	now := time.Now()
	in := s.framesRead.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		Name:             s.opts.Name,
		URL:              s.url,
		State:            s.state,
		LastError:        s.lastErr,
		LastFrame:        s.lastFrame,
		FramesDecoded:    in,
		FramesSampled:    s.framesSampled,
		Reconnects:       s.reconnects,
		Stalls:           s.stalls,
		Width:            s.width,
		Height:           s.height,
		AbandonedReaders: s.abandoned,
		Decode:           s.decode,
		KeyframeRate:     s.keyframeRate,
		HWAccel:          s.hwInUse,
	}
	if s.nrate > 0 {
		oldest := s.rates[0]
		if s.nrate > rateWindow {
			oldest = s.rates[s.nrate%len(s.rates)]
		}
		if dt := now.Sub(oldest.at).Seconds(); dt > 0.5 {
			st.FPSDecoded = float64(in-oldest.in) / dt
			st.FPSSampled = float64(s.framesSampled-oldest.out) / dt
		}
	}
	return st
}

// sampleRates records the counters once a second for FPSDecoded/FPSSampled.
func (s *source) sampleRates(now time.Time) {
	in := s.framesRead.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nrate > 0 && now.Sub(s.rates[(s.nrate-1)%len(s.rates)].at) < time.Second {
		return
	}
	s.rates[s.nrate%len(s.rates)] = rateSample{at: now, in: in, out: s.framesSampled}
	s.nrate++
}

// Run is the supervisor: it starts a reader, watches it, and after it fails
// or stalls waits out the backoff and starts the next.
func (s *source) Run(ctx context.Context, out Handoff) error {
	if out == nil {
		return fmt.Errorf("camera %q: Run: nil Handoff", s.opts.Name)
	}
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("camera %q: Run: already running", s.opts.Name)
	}
	defer s.running.Store(false)
	defer s.setState(StateStopped, nil)
	s.setState(StateStarting, nil)

	// One ticker for the whole run drives the watchdog and the rate samples,
	// also while waiting out a backoff (so FPS falls to 0 while disconnected).
	tick := time.NewTicker(watchdogTick)
	defer tick.Stop()

	failures := 0        // failed connections since the last healthy one: the backoff step
	unreachable := false // the last attempt could not reach the camera at all
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return nil
		}
		if attempt > 0 {
			s.mu.Lock()
			s.reconnects++
			s.mu.Unlock()
		}
		res := s.connect(ctx, out, tick.C)
		if ctx.Err() != nil {
			return nil
		}
		for errors.Is(res.err, errDecodeSwitch) {
			// Auto reopens in the other mode at once: a choice, not a
			// failure (no backoff, no reconnect counted, no state change).
			res = s.connect(ctx, out, tick.C)
			if ctx.Err() != nil {
				return nil
			}
		}
		if errors.Is(res.err, errEnded) {
			s.setState(StateEnded, nil)
			<-ctx.Done()
			return nil
		}
		switch {
		case res.connectedFor >= s.opts.HealthyAfter:
			failures = 0
		case unreachable && res.reached:
			// It answers again after being unreachable (it is booting,
			// say): retry the rest of its start-up in seconds, not after
			// the step the outage had climbed to.
			failures = 0
		}
		unreachable = !res.reached
		wait := s.opts.Backoff[min(failures, len(s.opts.Backoff)-1)]
		failures++
		if res.stalled {
			s.mu.Lock()
			s.stalls++
			s.mu.Unlock()
			s.setState(StateStalled, res.err, "retry_in", wait)
		} else {
			s.setState(StateReconnecting, res.err, "retry_in", wait)
		}
		if !s.backoff(ctx, wait, unreachable, tick.C) {
			return nil
		}
		if res.abandoned != nil && !s.awaitRelease(ctx, res.abandoned, res.abandonedAt, tick.C) {
			return nil
		}
	}
}

// backoff waits d before the next attempt, sampling rates. When the camera
// was unreachable it also probes it every ProbeInterval and ends the wait as
// soon as it answers: however long the outage and the step it reached,
// frames flow again seconds after the camera is back, while a dead camera
// costs one connection a second and an open only at each step. It reports
// false if ctx ended first.
func (s *source) backoff(ctx context.Context, d time.Duration, probe bool, tick <-chan time.Time) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	var answered <-chan struct{}
	if probe {
		pctx, cancel := context.WithCancel(ctx)
		defer cancel() // ends the probe goroutine
		answered = s.probe(pctx)
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-answered:
			s.log.Debug("camera answers again; retrying now", "instead_of", d)
			return true
		case now := <-tick:
			s.sampleRates(now)
		}
	}
}

// probe starts a goroutine, owned by ctx, that checks every ProbeInterval
// whether the camera can be reached, and closes the returned channel when
// it can. A stream is knocked on (knock.go): a connection and, for RTSP, an
// answer to OPTIONS; a file or device path is looked up.
func (s *source) probe(ctx context.Context) <-chan struct{} {
	answered := make(chan struct{})
	go func() {
		tick := time.NewTicker(s.opts.ProbeInterval)
		defer tick.Stop()
		select { // the attempt that just failed was the last check
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s.target.dial != "" {
			if s.target.knock(ctx, s.opts.ProbeInterval, true) == nil {
				close(answered)
			}
			return
		}
		for {
			if s.target.reachable() {
				close(answered)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return answered
}

// awaitRelease waits until r, which the watchdog abandoned at abandonedAt,
// has returned from OpenCV and closed its connection, so that the next
// attempt is never a second session beside it: a camera that allows one
// session would refuse the reopen, and one that allows several would serve
// both. OpenCV's own timeout ends r's call about opencvTimeoutMargin after
// the watchdog gave up on it, so the wait is bounded by that
// (reader.releaseBy, plus releaseSlack); a reader that outlives it (OpenCV
// ignoring its timeout) is logged, once an outage, and reopened beside. It
// reports false if ctx ended first.
func (s *source) awaitRelease(ctx context.Context, r *reader, abandonedAt time.Time, tick <-chan time.Time) bool {
	deadline := time.NewTimer(time.Until(r.releaseBy(abandonedAt).Add(releaseSlack)))
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-r.done: // sent after its capture is closed; nobody else receives it
			return true
		case <-deadline.C:
			s.mu.Lock()
			warned := s.stuckWarned
			s.stuckWarned = true
			s.mu.Unlock()
			if !warned {
				s.log.Warn("a reader the watchdog abandoned is still inside OpenCV past its timeout; reopening beside it",
					"waited", time.Since(abandonedAt).Round(100*time.Millisecond))
			}
			return true
		case now := <-tick:
			s.sampleRates(now)
		}
	}
}

// result is how one connection ended.
type result struct {
	err          error         // why it ended; nil when ctx was cancelled
	stalled      bool          // the watchdog ended it
	connectedFor time.Duration // how long it delivered frames
	reached      bool          // the camera answered (reader.reached)
	// abandoned is the reader the watchdog gave up on at abandonedAt; nil
	// when the reader finished.
	abandoned   *reader
	abandonedAt time.Time
}

// connect runs one reader until it ends, stalls or ctx is cancelled.
func (s *source) connect(ctx context.Context, out Handoff, tick <-chan time.Time) result {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := newReader(s)
	go r.run(rctx, out) // owned here: we wait for r.done, or abandon r (counted in s.abandoned)

	for {
		select {
		case err := <-r.done:
			return result{err: err, connectedFor: r.connectedFor(), reached: r.reached.Load()}
		case <-ctx.Done():
			cancel()
			timer := time.NewTimer(stopGrace)
			defer timer.Stop()
			select {
			case <-r.done:
			case <-timer.C:
				if s.abandon(r) {
					s.log.Warn("reader stuck in OpenCV at shutdown; left behind",
						"stuck_for", time.Since(r.lastProgress()).Round(time.Millisecond))
				}
			}
			return result{}
		case now := <-tick:
			s.sampleRates(now)
			what, setting, limit, watched := r.watched()
			if !watched || now.Sub(r.lastProgress()) < limit {
				continue
			}
			cancel()
			// The text must not vary from one stall to the next (no measured
			// durations): a repeat of the same error is not logged again.
			// what is "open" when the server took the connection but no
			// frame came (the stream never started, or no keyframe came).
			err := cameraError(s.opts.Name, what, fmt.Errorf("%w within %s (%s)", errStalled, setting, limit))
			if !s.abandon(r) {
				// It finished just now, on its own: report how.
				return result{err: <-r.done, connectedFor: r.connectedFor(), reached: r.reached.Load()}
			}
			return result{err: err, stalled: true, connectedFor: r.connectedFor(), reached: true, abandoned: r, abandonedAt: now}
		}
	}
}

// abandon gives up on r: from now on it hands on nothing, and it frees its
// capture if its OpenCV call ever returns. It reports false when r had
// already finished.
func (s *source) abandon(r *reader) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.finished {
		return false
	}
	r.abandoned = true
	s.abandoned++
	return true
}

// readerFinished is the reader's last act.
func (s *source) readerFinished(r *reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.finished = true
	if r.abandoned {
		s.abandoned--
		s.log.Info("an abandoned reader returned from OpenCV and was freed",
			"stuck_for", time.Since(r.lastProgress()).Round(100*time.Millisecond), "still_stuck", s.abandoned)
	}
}

// setState records a state change and logs it, once: a retry that fails the
// way the previous one did changes nothing and logs nothing.
func (s *source) setState(st State, err error, attrs ...any) {
	msg := ""
	if err != nil {
		msg = kit.RedactURL(err.Error()) // defence in depth: errors are built without the URL
	}
	s.mu.Lock()
	prev := s.state
	s.state, s.lastErr = st, msg
	if st != StateConnected && prev == StateConnected {
		s.downSince = time.Now()
	}
	if s.logged.state == st && s.logged.err == msg {
		s.mu.Unlock()
		return
	}
	sameState := s.logged.state == st
	s.logged.state, s.logged.err = st, msg
	s.mu.Unlock()

	if sameState {
		// Still down, for a new reason (the stream dropped, then the
		// server refused connections): worth a line, but not another
		// error: the state did not change.
		s.log.Warn("camera still unavailable; the reason changed", append([]any{"state", string(st), "err", msg}, attrs...)...)
		return
	}
	switch st {
	case StateReconnecting:
		s.log.Error("camera unavailable; retrying", append([]any{"err", msg}, attrs...)...)
	case StateStalled:
		s.log.Error("camera stalled; reopening", append([]any{"err", msg}, attrs...)...)
	case StateEnded:
		s.log.Info("camera file ended; loop is off, so no more frames")
	case StateStopped:
		if prev != StateStopped {
			s.log.Info("camera stopped")
		}
	case StateStarting:
		s.log.Debug("camera starting")
	}
}

// connected is called by the current reader on its first frame.
func (s *source) connected(r *reader, w, h int) {
	s.mu.Lock()
	if r.abandoned {
		s.mu.Unlock()
		return
	}
	prev, down := s.state, time.Duration(0)
	if !s.downSince.IsZero() {
		down = time.Since(s.downSince)
	}
	s.state, s.lastErr = StateConnected, ""
	s.downSince = time.Time{}
	s.stuckWarned = false
	s.logged.state, s.logged.err = StateConnected, ""
	reconnects := s.reconnects
	s.mu.Unlock()

	if prev == StateConnected {
		return // reopened by decode auto, which logged why
	}
	attrs := []any{"width", w, "height", h}
	if r.keyframes {
		attrs = append(attrs, "decode", string(DecodeKeyframes))
	}
	if r.hw != HWAccelNone {
		attrs = append(attrs, "hwaccel", string(r.hw))
	}
	if prev != StateStarting {
		attrs = append(attrs, "was", string(prev), "down_for", down.Round(100*time.Millisecond), "reconnects", reconnects)
	}
	s.log.Info("camera connected", attrs...)
}

// frameSize records the size of the frames being read and resolves the crop
// against it. The error names the camera.
func (s *source) frameSize(r *reader, w, h int) error {
	region, err := s.opts.Crop.region(w, h)
	if err != nil {
		return fmt.Errorf("camera %q: %w", s.opts.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !r.abandoned {
		s.width, s.height, s.region = w, h, region
	}
	return nil
}

// handOn numbers f and offers it, unless r has been abandoned meanwhile.
func (s *source) handOn(r *reader, f *Frame, out Handoff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.abandoned {
		f.Close()
		return
	}
	s.seq++
	s.framesSampled++
	f.Seq = s.seq
	f.Region = s.region
	// Offer never blocks, so holding mu here costs nothing and keeps Seq in
	// the order frames reach the hand-off.
	out.Offer(f)
}

// frameRead counts a decoded frame.
func (s *source) frameRead(r *reader, at time.Time) {
	s.framesRead.Add(1)
	s.mu.Lock()
	if !r.abandoned {
		s.lastFrame = at
	}
	s.mu.Unlock()
}

// keyframesNext reports whether the next connection decodes key frames only.
func (s *source) keyframesNext() bool {
	switch s.opts.Decode {
	case DecodeKeyframes:
		return true
	case DecodeAuto:
		return s.autoKeyframes
	}
	return false
}

// startReader records what a new reader will decode, for Status, and
// returns it: true for key frames only.
func (s *source) startReader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	kf := s.keyframesNext()
	s.decode = DecodeAll
	if kf {
		s.decode = DecodeKeyframes
	}
	return kf
}

// hwaccel is the hardware decoder the next open tries.
func (s *source) hwaccel() HWAccel {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hwFailed {
		return HWAccelNone
	}
	return s.opts.HWAccel
}

// hwFallback records that hw could not decode this camera's stream while
// software could: the camera decodes in software from now on, and says so
// once.
func (s *source) hwFallback(hw HWAccel) {
	s.mu.Lock()
	first := !s.hwFailed
	s.hwFailed = true
	s.mu.Unlock()
	if first {
		s.log.Warn("hardware decoding is not available for this camera; decoding in software from now on",
			"hwaccel", string(hw), "tried", hw.tried(),
			"hint", "FFmpeg's reason is on standard error; see docs/02-cameras.md, Hardware decoding")
	}
}

// opened records the hardware decoder r's open uses.
func (s *source) opened(r *reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !r.abandoned {
		s.hwInUse = r.hw
	}
}

// setKeyframeRate records the keyframe rate r measured.
func (s *source) setKeyframeRate(r *reader, rate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !r.abandoned {
		s.keyframeRate = rate
	}
}

// chooseAuto records decode auto's choice, made on r's measured keyframe
// rate, and logs it. It reports false when r was abandoned meanwhile (its
// measurement no longer counts).
func (s *source) chooseAuto(r *reader, keyframes bool, rate float64) bool {
	s.mu.Lock()
	if r.abandoned {
		s.mu.Unlock()
		return false
	}
	s.autoKeyframes = keyframes
	s.mu.Unlock()
	attrs := []any{"keyframe_rate", roundRate(rate), "fps", s.opts.FPS}
	if keyframes {
		s.log.Info("decode auto: key frames come as often as fps asks; decoding key frames only", attrs...)
	} else {
		s.log.Info("decode auto: key frames come less often than fps asks; decoding every frame", attrs...)
	}
	return true
}

// roundRate rounds a measured rate for logs (two decimals).
func roundRate(v float64) float64 { return math.Round(v*100) / 100 }
