package capture

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
	"gocv.io/x/gocv"
)

// Integration tests: a real RTSP server (scripts/rtsp-server.py), real files
// made by ffmpeg, real OpenCV. They run one at a time: their rate and
// latency assertions need the machine's two cores to themselves.

// TestRTSPSampledRate: a 25 fps RTSP camera with a key frame a second and
// fps 2 hands on 2 ± 0.3 frames/s over 10 s, as BGR frames of the stream's
// size, numbered in order. Decoding key frames only, it decodes and hands on
// one a second (the keyframe rate caps sampling), and warns once that fps
// asks for more. Its status shows the keyframe rate in both modes.
func TestRTSPSampledRate(t *testing.T) {
	testenv.Integration(t)
	tests := []struct {
		decode      Decode
		wantSampled float64 // frames/s, ± 15 %
		wantDecoded float64 // frames/s in the status, ± 20 %
		wantWarning int
	}{
		{DecodeAll, 2, 25, 0},
		{DecodeKeyframes, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.decode), func(t *testing.T) {
			srv := testenv.StartRTSP(t, testenv.RTSPOptions{FPS: 25, Width: 640, Height: 360})
			var logs logBuffer
			l := NewLatest()
			defer l.Close()
			c := collect(t, l, false)
			src := mustNew(t, Options{Name: "door", URL: srv.URL(), FPS: 2, Decode: tt.decode, Logger: logs.logger(t)})
			start(t, src, l)

			testenv.WaitFor(t, 15*time.Second, func() bool { return len(c.of("door")) > 0 }, "the first frame")
			from := time.Now()
			testenv.WaitFor(t, 12*time.Second, func() bool { return time.Since(from) > 10*time.Second+500*time.Millisecond },
				"the 10 s measurement window (plus the hand-off of its last frame)")
			n := c.countIn("door", from, from.Add(10*time.Second))
			rate := float64(n) / 10
			t.Logf("delivered %.2f frames/s over 10 s (%d frames)", rate, n)
			if math.Abs(rate-tt.wantSampled) > 0.15*tt.wantSampled {
				rateError(t, "delivered %.2f frames/s, want %g ± 15 %%", rate, tt.wantSampled)
			}

			st := src.Status()
			t.Logf("status: %+v", st)
			if st.State != StateConnected || st.Width != 640 || st.Height != 360 || st.Decode != tt.decode || st.HWAccel != HWAccelNone {
				t.Errorf("status = %s %dx%d decode %s hwaccel %s, want connected 640x360 decode %s hwaccel none",
					st.State, st.Width, st.Height, st.Decode, st.HWAccel, tt.decode)
			}
			if math.Abs(st.FPSDecoded-tt.wantDecoded) > 0.2*tt.wantDecoded || math.Abs(st.FPSSampled-tt.wantSampled) > 0.25*tt.wantSampled {
				rateError(t, "status FPSDecoded %.1f FPSSampled %.1f, want ≈%g and ≈%g", st.FPSDecoded, st.FPSSampled, tt.wantDecoded, tt.wantSampled)
			}
			if math.Abs(st.KeyframeRate-1) > 0.1 {
				rateError(t, "status KeyframeRate %.2f, want 1 ± 0.1 (a key frame a second)", st.KeyframeRate)
			}
			if time.Since(st.LastFrame) > 1100*time.Millisecond {
				t.Errorf("status LastFrame %s ago, want under 1.1 s", time.Since(st.LastFrame))
			}
			frames := c.of("door")
			for i, f := range frames {
				if f.typ != gocv.MatTypeCV8UC3 || !f.continuous || f.width != 640 || f.height != 360 {
					t.Fatalf("frame %d: %v continuous=%v %dx%d, want CV8UC3 continuous 640x360", f.seq, f.typ, f.continuous, f.width, f.height)
				}
				if f.region != image.Rect(0, 0, 640, 360) {
					t.Fatalf("frame %d: region %v, want the whole frame", f.seq, f.region)
				}
				if i > 0 && (f.seq <= frames[i-1].seq || f.at.Before(frames[i-1].at)) {
					t.Fatalf("frames out of order: seq %d at %s after seq %d at %s", f.seq, f.at, frames[i-1].seq, frames[i-1].at)
				}
			}
			if frames[0].seq != 1 {
				t.Errorf("first frame has seq %d, want 1", frames[0].seq)
			}
			if w := logs.count(t, "WARN", "camera fps asks for more frames than the stream has key frames"); w != tt.wantWarning {
				t.Errorf("%d warnings that fps asks for more than the key frames give, want %d", w, tt.wantWarning)
			}
		})
	}
}

// TestRTSPOutageRecovery: the RTSP server dies and comes back on the same
// port after 10 s and after 40 s. However far the reconnect backoff has
// climbed meanwhile (1, 2, 5, 10, then 30 s), frames are back within 3 s of
// the server's return: while the camera is unreachable a cheap connection
// probe runs every second and ends the backoff early. Each outage logs one
// error line, and a file camera beside it keeps its rate throughout. The
// same holds decoding key frames only (both cameras at fps 1, their
// keyframe rate), with the shorter outage.
func TestRTSPOutageRecovery(t *testing.T) {
	testenv.Integration(t)
	for _, tt := range []struct {
		decode Decode
		outage time.Duration
	}{{DecodeAll, 10 * time.Second}, {DecodeAll, 40 * time.Second}, {DecodeKeyframes, 10 * time.Second}} {
		outage := tt.outage
		fps := 2.0
		if tt.decode == DecodeKeyframes {
			fps = 1
		}
		t.Run(string(tt.decode)+"/"+outage.String(), func(t *testing.T) {
			srv := testenv.StartRTSP(t, testenv.RTSPOptions{FPS: 25, Width: 640, Height: 360})
			video := testenv.VideoFile(t, testenv.VideoOptions{Width: 320, Height: 240, FPS: 25, Duration: 3 * time.Second})
			var logs logBuffer
			l := NewLatest()
			defer l.Close()
			c := collect(t, l, false)
			rtsp := mustNew(t, Options{Name: "door", URL: srv.URL(), FPS: fps, Decode: tt.decode, Logger: logs.logger(t)})
			file := mustNew(t, Options{Name: "demo", URL: video, FPS: fps, Loop: true, Decode: tt.decode, Logger: logs.logger(t)})
			start(t, rtsp, l)
			start(t, file, l)

			testenv.WaitFor(t, 15*time.Second, func() bool { return len(c.of("door")) > 0 && len(c.of("demo")) > 0 }, "frames from both cameras")
			from := time.Now()
			testenv.WaitFor(t, 5*time.Second, func() bool { return time.Since(from) > 2*time.Second }, "2 s of both cameras running")

			srv.Stop()
			stopped := time.Now()
			testenv.WaitFor(t, 5*time.Second, func() bool { return rtsp.Status().State == StateReconnecting },
				"the RTSP camera to notice the server is gone (state %s)", rtsp.Status().State)
			// The outage itself: a simulation, not a wait for a condition.
			time.Sleep(outage - time.Since(stopped))
			srv.Start()
			back := time.Now()
			testenv.WaitFor(t, 35*time.Second, func() bool { _, ok := c.firstAfter("door", back); return ok },
				"frames from the RTSP camera after the server came back")
			resumed, _ := c.firstAfter("door", back)
			after := resumed.Sub(back)
			st := rtsp.Status()
			t.Logf("down %s: frames resumed %.2f s after the server came back (%d reconnect attempts)", outage, after.Seconds(), st.Reconnects)
			if after > 3*time.Second {
				t.Errorf("frames resumed %.2f s after the server came back, want within 3 s", after.Seconds())
			}
			to := time.Now()

			rate := c.rate("demo", from, to)
			t.Logf("file camera: %.2f frames/s over %.1f s, across the other camera's outage", rate, to.Sub(from).Seconds())
			if math.Abs(rate-fps)/fps > 0.10 {
				rateError(t, "file camera delivered %.2f frames/s during the outage, want %g ± 10%%", rate, fps)
			}
			if st.State != StateConnected || st.Reconnects == 0 {
				t.Errorf("status after the outage: %s with %d reconnects, want connected after ≥ 1", st.State, st.Reconnects)
			}
			// One error line for the outage, however many attempts failed.
			var errs []string
			for _, line := range logs.lines(t, "ERROR") {
				if line.Camera == "door" {
					errs = append(errs, line.Msg+": "+line.Err)
				}
			}
			if len(errs) != 1 {
				t.Errorf("logged %d error lines for the outage (%d reconnect attempts), want 1:\n%s", len(errs), st.Reconnects, strings.Join(errs, "\n"))
			}
			if fs := file.Status(); fs.Reconnects != 0 || fs.State != StateConnected {
				t.Errorf("file camera status: %s with %d reconnects, want connected, 0", fs.State, fs.Reconnects)
			}
		})
	}
}

// TestLongKeyframeInterval: a camera whose keyframes come every 8 s (a
// "smart codec"), joined a second after one, so that the first decodable
// frame is 7 s away, connects on its first attempt although read_timeout is 3 s:
// opening waits for the first frame under open_timeout (default 20 s), and
// only the gaps between later frames are held to read_timeout. Decoding key
// frames only, every frame is 8 s from the last: those gaps are held to
// open_timeout until an interval was measured, then to read_timeout past it.
func TestLongKeyframeInterval(t *testing.T) {
	testenv.Integration(t)
	const gop = 8 * time.Second
	tests := []struct {
		decode   Decode
		more     int           // frames to wait for after the first
		moreWait time.Duration // for that long
	}{
		// Frames keep coming between keyframes: read_timeout applies to them.
		{DecodeAll, 10, 5 * time.Second},
		// One a keyframe interval: the second gap is held to read_timeout
		// past the first (measured) one.
		{DecodeKeyframes, 3, 3*gop + 3*time.Second},
	}
	for _, tt := range tests {
		t.Run(string(tt.decode), func(t *testing.T) {
			srv := testenv.StartRTSP(t, testenv.RTSPOptions{FPS: 25, Width: 320, Height: 240, KeyframeInterval: gop})
			l := NewLatest()
			defer l.Close()
			c := collect(t, l, false)
			// The server's pipeline runs while a client watches: this first camera
			// keeps it running, so the one under test joins it mid-GOP, as a
			// camera's second viewer does.
			start(t, mustNew(t, Options{Name: "viewer", URL: srv.URL(), FPS: 1}), l)
			testenv.WaitFor(t, gop+10*time.Second, func() bool { return len(c.of("viewer")) > 0 }, "the first viewer's frames")

			var logs logBuffer
			src := mustNew(t, Options{Name: "door", URL: srv.URL(), FPS: 5, ReadTimeout: 3 * time.Second, Decode: tt.decode, Logger: logs.logger(t)})
			srv.Keyframe()
			// A keyframe that has just left the encoder can still reach a client
			// that joins at once; a second later the next is 7 s away.
			keyframe := time.Now()
			testenv.WaitFor(t, 2*time.Second, func() bool { return time.Since(keyframe) > time.Second }, "a second past the keyframe")
			began := time.Now()
			start(t, src, l)
			testenv.WaitFor(t, gop+10*time.Second, func() bool { return len(c.of("door")) > 0 }, "frames from the camera (state %s, last error %q)",
				src.Status().State, src.Status().LastError)
			first := c.of("door")[0].at
			t.Logf("first frame %.2f s after joining a second past a keyframe (keyframe interval %s)", first.Sub(began).Seconds(), gop)
			if first.Sub(began) < gop-2*time.Second {
				t.Errorf("first frame %.2f s after joining, want ≈ %s: did the server send a keyframe on join?", first.Sub(began).Seconds(), gop)
			}
			n := len(c.of("door"))
			testenv.WaitFor(t, tt.moreWait, func() bool { return len(c.of("door")) >= n+tt.more }, "%d more frames (state %s, last error %q)",
				tt.more, src.Status().State, src.Status().LastError)
			st := src.Status()
			if st.Reconnects != 0 || st.Stalls != 0 || st.State != StateConnected {
				t.Errorf("status %s with %d reconnects and %d stalls, want connected on the first attempt", st.State, st.Reconnects, st.Stalls)
			}
			if tt.decode == DecodeKeyframes && math.Abs(st.KeyframeRate-1/gop.Seconds()) > 0.02 {
				rateError(t, "status KeyframeRate %.3f, want %.3f", st.KeyframeRate, 1/gop.Seconds())
			}
			if errs := logs.lines(t, "ERROR"); len(errs) != 0 {
				t.Errorf("logged errors while connecting: %+v", errs)
			}
		})
	}
}

// TestNoOverlappingSessions: after a stall the camera is reopened only once
// the reader the watchdog abandoned has released its connection, so the
// camera never sees two sessions from us (cameras that allow one would
// refuse the reopen). A first backoff step far shorter than the time the
// abandoned reader needs to let go forces the overlap this guards against.
func TestNoOverlappingSessions(t *testing.T) {
	testenv.Integration(t)
	for _, decode := range []Decode{DecodeAll, DecodeKeyframes} {
		t.Run(string(decode), func(t *testing.T) { testNoOverlappingSessions(t, decode) })
	}
}

func testNoOverlappingSessions(t *testing.T, decode Decode) {
	srv := testenv.StartRTSP(t, testenv.RTSPOptions{FPS: 25, Width: 320, Height: 240})
	l := NewLatest()
	defer l.Close()
	c := collect(t, l, false)
	src := mustNew(t, Options{Name: "door", URL: srv.URL(), FPS: 1, ReadTimeout: 2 * time.Second, OpenTimeout: 2 * time.Second,
		Backoff: []time.Duration{50 * time.Millisecond}, Decode: decode})
	start(t, src, l)
	testenv.WaitFor(t, 15*time.Second, func() bool { return len(c.of("door")) > 0 }, "the first frame")
	conns := testenv.WatchConnections(t, srv.Port())

	srv.Stall()
	// The stalled read and a stalled reopen, each abandoned by the watchdog;
	// the reopen after each waits for the abandoned reader to let go. (Not
	// a third stall: after two abandoned sessions on its stalled pipeline
	// the test server stops answering new connections, which the knock
	// before an open, knock.go, reports as no answer rather than a stall.)
	testenv.WaitFor(t, 20*time.Second, func() bool { return src.Status().Stalls >= 2 }, "two stalls (%d so far)", src.Status().Stalls)
	srv.Resume()
	resumed := time.Now()
	testenv.WaitFor(t, 15*time.Second, func() bool { _, ok := c.firstAfter("door", resumed); return ok }, "frames after the stream resumed")
	testenv.WaitFor(t, 10*time.Second, func() bool { return src.Status().AbandonedReaders == 0 }, "the abandoned readers to free themselves")
	conns.Stop()
	most, err := conns.Most()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("at most %d connections to the camera at once, across %d stalls", most, src.Status().Stalls)
	if most != 1 {
		t.Errorf("up to %d connections to the camera at once, want 1: a reopen overlapped an abandoned reader's session", most)
	}
}

// TestStallWatchdog: a server that keeps the connection but sends nothing is
// declared stalled within read_timeout + 2 s, and the camera reconnects when
// frames flow again; the readers it abandoned free themselves. A looping
// file camera beside it keeps its rate throughout, although the stalled
// camera's reopen hangs inside OpenCV's open (which holds a process-wide
// lock: the file must not need it to loop). Both decode modes: decoding
// key frames only (a key frame a second, open_timeout = read_timeout), the
// gap between frames is held to open_timeout, the same here.
func TestStallWatchdog(t *testing.T) {
	testenv.Integration(t)
	for _, decode := range []Decode{DecodeAll, DecodeKeyframes} {
		t.Run(string(decode), func(t *testing.T) { testStallWatchdog(t, decode) })
	}
}

func testStallWatchdog(t *testing.T, decode Decode) {
	const readTimeout = 3 * time.Second
	fileFPS := 2.0
	if decode == DecodeKeyframes {
		fileFPS = 1 // its one key frame a pass
	}
	srv := testenv.StartRTSP(t, testenv.RTSPOptions{FPS: 25, Width: 320, Height: 240})
	video := testenv.VideoFile(t, testenv.VideoOptions{FPS: 25, Duration: time.Second})
	var logs logBuffer
	l := NewLatest()
	defer l.Close()
	c := collect(t, l, false)
	src := mustNew(t, Options{Name: "door", URL: srv.URL(), FPS: 1, ReadTimeout: readTimeout, OpenTimeout: readTimeout, Decode: decode,
		Logger: logs.logger(t)})
	file := mustNew(t, Options{Name: "demo", URL: video, FPS: fileFPS, Loop: true, Decode: decode})
	start(t, src, l)
	start(t, file, l)
	testenv.WaitFor(t, 15*time.Second, func() bool { return len(c.of("door")) > 0 && len(c.of("demo")) > 0 }, "the first frames")

	srv.Stall()
	stalledAt := time.Now()
	testenv.WaitFor(t, readTimeout+2*time.Second, func() bool { return src.Status().State == StateStalled },
		"state stalled within read_timeout + 2 s (state %s)", src.Status().State)
	t.Logf("stall reported %.2f s after the server stopped sending (read_timeout %s)", time.Since(stalledAt).Seconds(), readTimeout)
	if st := src.Status(); st.Stalls != 1 || st.AbandonedReaders != 1 {
		t.Errorf("status after the stall: %d stalls, %d abandoned readers; want 1, 1", st.Stalls, st.AbandonedReaders)
	}
	// The reopen hangs too (the server takes the connection, sends no
	// frame): a second stall, with the abandoned open holding OpenCV's lock.
	// It starts once the abandoned read has let go (≈ 1 s) and the 1 s
	// backoff has passed, and stalls after open_timeout.
	// The stall count goes up a moment before the state and error are
	// recorded, so wait for all three.
	testenv.WaitFor(t, 2*readTimeout+4*time.Second, func() bool {
		st := src.Status()
		return st.Stalls >= 2 && st.State == StateStalled && strings.Contains(st.LastError, "open: no frame")
	}, "the reopen to stall too, in open")

	srv.Resume()
	resumed := time.Now()
	if rate := c.rate("demo", stalledAt, resumed); math.Abs(rate-fileFPS)/fileFPS > 0.10 {
		rateError(t, "file camera delivered %.2f frames/s during the other camera's stall, want %g ± 10%%", rate, fileFPS)
	} else {
		t.Logf("file camera: %.2f frames/s during the %.1f s stall", rate, resumed.Sub(stalledAt).Seconds())
	}
	testenv.WaitFor(t, 15*time.Second, func() bool { _, ok := c.firstAfter("door", resumed); return ok },
		"frames after the stream resumed")
	first, _ := c.firstAfter("door", resumed)
	t.Logf("frames resumed %.2f s after the stream did", first.Sub(resumed).Seconds())
	testenv.WaitFor(t, 10*time.Second, func() bool { return src.Status().AbandonedReaders == 0 },
		"the abandoned reader to free itself (%d left)", src.Status().AbandonedReaders)
	if st := src.Status(); st.State != StateConnected {
		t.Errorf("state %s after resuming, want connected", st.State)
	}
	for _, line := range logs.lines(t, "ERROR") {
		if !strings.Contains(line.Err, `camera "door"`) {
			t.Errorf("error line does not name the camera: %+v", line)
		}
	}
}

// TestShutdownDuringStall: Run returns within 5 s of cancel even while
// OpenCV is blocked in a Read (before the watchdog fires) or in reopening a
// stalled stream (after it fired).
func TestShutdownDuringStall(t *testing.T) {
	testenv.Integration(t)
	tests := []struct {
		name        string
		readTimeout time.Duration
		afterStall  func(t *testing.T, src Source)
	}{
		{"read blocked", 30 * time.Second, func(t *testing.T, src Source) {
			testenv.WaitFor(t, 5*time.Second, func() bool { return time.Since(src.Status().LastFrame) > time.Second },
				"a second without frames (a Read stuck in OpenCV)")
		}},
		{"reopening after the watchdog fired", 2 * time.Second, func(t *testing.T, src Source) {
			testenv.WaitFor(t, 5*time.Second, func() bool { return src.Status().State == StateStalled }, "state stalled")
			testenv.WaitFor(t, 5*time.Second, func() bool { return src.Status().Reconnects > 0 }, "a reopen attempt")
			// Half a second into the attempt its connection is up and OpenCV
			// is blocked waiting for the stalled stream (a local dial takes
			// under a millisecond).
			reopen := time.Now()
			testenv.WaitFor(t, time.Second, func() bool { return time.Since(reopen) > 500*time.Millisecond }, "half a second")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testenv.StartRTSP(t, testenv.RTSPOptions{FPS: 25, Width: 320, Height: 240})
			l := NewLatest()
			defer l.Close()
			c := collect(t, l, false)
			src := mustNew(t, Options{Name: "door", URL: srv.URL(), FPS: 5, ReadTimeout: tt.readTimeout})
			run := start(t, src, l)
			testenv.WaitFor(t, 15*time.Second, func() bool { return len(c.of("door")) > 0 }, "the first frame")
			srv.Stall()
			tt.afterStall(t, src)
			took := run.stop(t)
			t.Logf("Run returned %.2f s after cancel; %d reader(s) left stuck in OpenCV", took.Seconds(), src.Status().AbandonedReaders)
			if st := src.Status(); st.State != StateStopped {
				t.Errorf("state %s after Run returned, want stopped", st.State)
			}
			// Killing the server ends the stuck calls at once: the readers
			// left behind must then free themselves (their release is part
			// of this test, not a leak into the next one).
			srv.Stop()
			testenv.WaitFor(t, 10*time.Second, func() bool { return src.Status().AbandonedReaders == 0 },
				"the abandoned readers to free themselves (%d left)", src.Status().AbandonedReaders)
		})
	}
}

// TestOpenFailures: each kind of broken camera gives one clear error line per
// state change, naming the camera and hiding the password, and no panic.
func TestOpenFailures(t *testing.T) {
	testenv.Integration(t)
	dir := t.TempDir()
	notVideo := filepath.Join(dir, "notes.mp4")
	if err := os.WriteFile(notVideo, []byte("this is not a video\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	refused := testenv.FreePort(t) // free a moment ago: nothing listens there
	tests := []struct {
		name string
		url  string
		want string // in the error
	}{
		{"connection refused", "rtsp://admin:hunter2@127.0.0.1:" + itoa(refused) + "/live",
			`camera "cam": open: dial tcp 127.0.0.1:` + itoa(refused) + `: connect: connection refused`},
		{"unknown host", "rtsp://admin:hunter2@camera.invalid/live", `camera "cam": open: dial tcp: lookup camera.invalid`},
		{"missing file", filepath.Join(dir, "missing.mp4"), `camera "cam": open: stat ` + filepath.Join(dir, "missing.mp4") + `: no such file or directory`},
		{"not a video", notVideo, `camera "cam": open: FFmpeg cannot read ` + notVideo + ` as video`},
		{"garbage", "::not a camera::", `camera "cam": open: stat ::not a camera::: no such file or directory`},
		{"missing device", "/dev/video99", `camera "cam": open: stat /dev/video99: no such file or directory`},
		{"http server gone", "http://admin:hunter2@127.0.0.1:" + itoa(refused) + "/mjpg",
			`camera "cam": open: dial tcp 127.0.0.1:` + itoa(refused) + `: connect: connection refused`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			// A short read_timeout bounds each dial, should the resolver hang
			// on the unknown host instead of answering at once.
			src := mustNew(t, Options{Name: "cam", URL: tt.url, FPS: 2, Logger: logs.logger(t),
				ReadTimeout: 2 * time.Second, Backoff: []time.Duration{50 * time.Millisecond}})
			l := NewLatest()
			defer l.Close()
			run := start(t, src, l)
			testenv.WaitFor(t, 15*time.Second, func() bool { return src.Status().Reconnects >= 3 }, "3 reconnect attempts")
			st := src.Status()
			run.stop(t)
			if st.State != StateReconnecting || !strings.Contains(st.LastError, tt.want) {
				t.Errorf("status %s %q, want reconnecting with %q", st.State, st.LastError, tt.want)
			}
			errs := logs.lines(t, "ERROR")
			if len(errs) != 1 {
				t.Errorf("%d error lines after %d attempts, want 1:\n%s", len(errs), st.Reconnects, logs.String())
			} else if !strings.Contains(errs[0].Err, tt.want) || errs[0].Camera != "cam" {
				t.Errorf("error line %+v, want camera cam and %q", errs[0], tt.want)
			}
			if strings.Contains(logs.String(), "hunter2") || strings.Contains(st.LastError+st.URL, "hunter2") {
				t.Errorf("the password leaked:\n%s\nstatus: %+v", logs.String(), st)
			}
			t.Logf("logged: %s", strings.TrimSpace(logs.String()))
		})
	}
}

// TestFileLoopAndEnd: a file without loop plays once and ends; with loop it
// starts again at its end and keeps delivering. Decoding key frames only, a
// one-second file (one key frame) gives one frame a pass, a second apart.
func TestFileLoopAndEnd(t *testing.T) {
	testenv.Integration(t)
	video := testenv.VideoFile(t, testenv.VideoOptions{FPS: 25, Duration: time.Second})
	tests := []struct {
		decode     Decode
		wantOnce   uint64  // frames decoded in one pass
		wantLooped uint64  // more than this many decoded within 10 s of looping
		wantRate   float64 // decoded per second while looping, ± 10 %
	}{
		{DecodeAll, 25, 60, 25},
		{DecodeKeyframes, 1, 3, 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.decode)+"/once", func(t *testing.T) {
			l := NewLatest()
			defer l.Close()
			c := collect(t, l, false)
			src := mustNew(t, Options{Name: "demo", URL: "file://" + video, FPS: 25, Decode: tt.decode})
			start(t, src, l)
			testenv.WaitFor(t, 10*time.Second, func() bool { return src.Status().State == StateEnded }, "state ended")
			if st := src.Status(); st.FramesDecoded != tt.wantOnce {
				t.Errorf("read %d frames of a 25-frame file, want %d", st.FramesDecoded, tt.wantOnce)
			}
			// The collector takes frames on its own goroutine, and with key
			// frames only the file ends right after its one frame is offered.
			testenv.WaitFor(t, 5*time.Second, func() bool { return len(c.of("demo")) > 0 }, "a frame handed on")
		})
		t.Run(string(tt.decode)+"/loop", func(t *testing.T) {
			l := NewLatest()
			defer l.Close()
			src := mustNew(t, Options{Name: "demo", URL: video, FPS: 2, Loop: true, Decode: tt.decode})
			start(t, src, l)
			testenv.WaitFor(t, 10*time.Second, func() bool { return src.Status().FramesDecoded > tt.wantLooped },
				"more frames than the file has (read %d)", src.Status().FramesDecoded)
			st := src.Status()
			if st.State != StateConnected || st.Reconnects != 0 {
				t.Errorf("status %s with %d reconnects, want connected with 0 (a loop is not a reconnect)", st.State, st.Reconnects)
			}
			if math.Abs(st.FPSDecoded-tt.wantRate) > 0.1*tt.wantRate {
				rateError(t, "decoded %.2f frames/s while looping, want %g ± 10 %% (the file's timestamps, across its end)", st.FPSDecoded, tt.wantRate)
			}
		})
	}
}

// TestCrop: a crop becomes each frame's Region (and picks the right pixels);
// one outside the frame is an error naming the camera at the first frame.
func TestCrop(t *testing.T) {
	testenv.Integration(t)
	srv := testenv.StartRTSP(t, testenv.RTSPOptions{FPS: 25, Width: 320, Height: 240, Color: "ff0000"})
	t.Run("inside", func(t *testing.T) {
		l := NewLatest()
		defer l.Close()
		c := collect(t, l, true)
		src := mustNew(t, Options{Name: "door", URL: srv.URL(), FPS: 5, Crop: &Crop{X: 0.5, Y: 0.25, Width: 0.5, Height: 0.5}})
		start(t, src, l)
		testenv.WaitFor(t, 15*time.Second, func() bool { return len(c.of("door")) > 0 }, "the first frame")
		f := c.of("door")[0]
		if want := image.Rect(160, 60, 320, 180); f.region != want {
			t.Errorf("region %v, want %v", f.region, want)
		}
		// Solid red through H.264 and back: R high, B and G low.
		if b, g, r := f.mean[0], f.mean[1], f.mean[2]; r < 200 || g > 60 || b > 60 {
			t.Errorf("region mean BGR = %.0f,%.0f,%.0f, want red", b, g, r)
		}
		srv.SetColor(color.RGBA{G: 255, A: 255})
		changed := time.Now()
		testenv.WaitFor(t, 5*time.Second, func() bool {
			fs := c.of("door")
			last := fs[len(fs)-1]
			return last.at.After(changed) && last.mean[1] > 200 && last.mean[2] < 60
		}, "green frames after SetColor")
	})
	t.Run("outside", func(t *testing.T) {
		var logs logBuffer
		l := NewLatest()
		defer l.Close()
		src := mustNew(t, Options{Name: "door", URL: srv.URL(), FPS: 5, Logger: logs.logger(t),
			Crop: &Crop{X: 300, Y: 0, Width: 100, Height: 100, Pixels: true}})
		start(t, src, l)
		want := `camera "door": crop x=300 y=0 width=100 height=100 (pixels) is outside the 320x240 frame`
		// The source records the error in its status before it logs it, so
		// wait for both: the status alone does not mean the line is written.
		testenv.WaitFor(t, 15*time.Second, func() bool {
			return strings.Contains(src.Status().LastError, want) && len(logs.lines(t, "ERROR")) > 0
		}, "the crop error in status and log (last error %q)", src.Status().LastError)
		if st := src.Status(); st.FramesSampled != 0 || st.State != StateReconnecting {
			t.Errorf("status %s with %d frames out, want reconnecting with none", st.State, st.FramesSampled)
		}
		if errs := logs.lines(t, "ERROR"); len(errs) != 1 || !strings.Contains(errs[0].Err, want) {
			t.Errorf("error lines %+v, want one with %q", errs, want)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestHTTPSources: MJPEG over HTTP (with basic auth, as IP cameras do it) and
// HLS, served by a real HTTP server and read by OpenCV's FFmpeg backend.
func TestHTTPSources(t *testing.T) {
	testenv.Integration(t)
	hlsDir := t.TempDir()
	ffmpeg := testenv.LookPath(t, "ffmpeg")
	out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
		"-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", filepath.Join(hlsDir, "live.m3u8")).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg hls: %v\n%s", err, out)
	}
	mux := http.NewServeMux()
	mux.Handle("/hls/", http.StripPrefix("/hls/", http.FileServer(http.Dir(hlsDir))))
	mux.HandleFunc("/mjpg", serveMJPEG(t, "admin", "hunter2"))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	tests := []struct {
		name, url string
		w, h      int
	}{
		{"mjpeg with basic auth", "http://admin:hunter2@" + host + "/mjpg", 160, 120},
		{"hls", srv.URL + "/hls/live.m3u8", 320, 240},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			l := NewLatest()
			defer l.Close()
			c := collect(t, l, false)
			src := mustNew(t, Options{Name: "web", URL: tt.url, FPS: 2, Logger: logs.logger(t)})
			start(t, src, l)
			testenv.WaitFor(t, 15*time.Second, func() bool { return len(c.of("web")) >= 3 }, "3 frames")
			if f := c.of("web")[0]; f.width != tt.w || f.height != tt.h || f.typ != gocv.MatTypeCV8UC3 {
				t.Errorf("frame %dx%d %v, want %dx%d CV8UC3", f.width, f.height, f.typ, tt.w, tt.h)
			}
			if strings.Contains(logs.String(), "hunter2") {
				t.Errorf("the password leaked into the log:\n%s", logs.String())
			}
		})
	}
}

// serveMJPEG streams a 160×120 MJPEG at 10 fps, a changing picture, after
// checking HTTP basic auth as IP cameras do.
func serveMJPEG(t *testing.T, user, password string) http.HandlerFunc {
	img := image.NewRGBA(image.Rect(0, 0, 160, 120))
	return func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="cam"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		testenv.WriteMJPEG(w, r, 100*time.Millisecond, func(i int) ([]byte, error) {
			for p := range img.Pix {
				img.Pix[p] = byte(i * 8)
			}
			var buf bytes.Buffer
			err := jpeg.Encode(&buf, img, nil)
			if err != nil {
				t.Error(err)
			}
			return buf.Bytes(), err
		})
	}
}
