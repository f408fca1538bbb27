package capture

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// TestDecodeAuto: decode auto starts with key frames and keeps them when
// they come as often as fps asks; when they come less often it reopens the
// camera decoding every frame, once, saying so in one line, without a
// reconnect or an error, and the camera then samples at fps.
func TestDecodeAuto(t *testing.T) {
	testenv.Integration(t)
	// A key frame a second.
	video := testenv.VideoFile(t, testenv.VideoOptions{FPS: 25, Duration: 4 * time.Second})
	tests := []struct {
		fps         float64
		want        Decode
		wantChoices int // "decode auto: …" lines
	}{
		{fps: 1, want: DecodeKeyframes, wantChoices: 0},
		{fps: 2, want: DecodeAll, wantChoices: 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.want), func(t *testing.T) {
			var logs logBuffer
			l := NewLatest()
			defer l.Close()
			c := collect(t, l, false)
			src := mustNew(t, Options{Name: "demo", URL: video, FPS: tt.fps, Loop: true, Decode: DecodeAuto, Logger: logs.logger(t)})
			if st := src.Status(); st.Decode != DecodeKeyframes {
				t.Errorf("status before the first connection: decode %s, want keyframes (auto starts with them)", st.Decode)
			}
			start(t, src, l)
			// The choice is made once three keyframe intervals were measured
			// (the first key frame of a connection does not count).
			testenv.WaitFor(t, 15*time.Second, func() bool {
				return logs.count(t, "", "decode auto") > 0 || c.countIn("demo", time.Time{}, time.Now()) >= 6
			},
				"auto's choice, or 6 frames without one")
			from := time.Now()
			testenv.WaitFor(t, 5*time.Second, func() bool { return time.Since(from) > 4*time.Second }, "4 s of frames after the choice")
			st := src.Status()
			rate := c.rate("demo", from, time.Now())
			t.Logf("status: decode %s, keyframe rate %.2f, sampled %.2f frames/s after the choice, %d reconnects", st.Decode, st.KeyframeRate, rate, st.Reconnects)
			if st.Decode != tt.want || st.State != StateConnected || st.Reconnects != 0 {
				t.Errorf("status: %s, decode %s, %d reconnects; want connected, decode %s, 0 reconnects", st.State, st.Decode, st.Reconnects, tt.want)
			}
			if math.Abs(rate-tt.fps) > 0.15*tt.fps {
				rateError(t, "sampled %.2f frames/s after the choice, want %g ± 15 %%", rate, tt.fps)
			}
			if n := logs.count(t, "INFO", "decode auto"); n != tt.wantChoices {
				t.Errorf("%d lines of auto's choice, want %d", n, tt.wantChoices)
			}
			if n := logs.count(t, "INFO", "camera connected"); n != 1 {
				t.Errorf("%d \"camera connected\" lines, want 1 (a reopen by auto is not a reconnect)", n)
			}
			if errs := logs.lines(t, "ERROR"); len(errs) != 0 {
				t.Errorf("logged errors: %+v", errs)
			}
		})
	}
}

// TestHWAccelFallback: asking for a hardware decoder this machine does not
// have still streams, in software, with one warning naming what was tried,
// and later opens go straight to software (no second warning across a
// reconnect). The hardware paths themselves are untested: where the machine
// has the decoder, the case is skipped.
func TestHWAccelFallback(t *testing.T) {
	testenv.Integration(t)
	video := testenv.VideoFile(t, testenv.VideoOptions{FPS: 25, Duration: time.Second})
	tests := []struct {
		hw    HWAccel
		tried string
	}{
		{HWAccelVAAPI, "VA-API"},
		{HWAccelNVDEC, "h264_cuvid"},
		{HWAccelV4L2M2M, "h264_v4l2m2m"},
	}
	for _, tt := range tests {
		t.Run(string(tt.hw), func(t *testing.T) {
			var logs logBuffer
			l := NewLatest()
			defer l.Close()
			c := collect(t, l, false)
			src := mustNew(t, Options{Name: "demo", URL: video, FPS: 5, HWAccel: tt.hw, Decode: DecodeKeyframes, Logger: logs.logger(t)})
			start(t, src, l)
			testenv.WaitFor(t, 10*time.Second, func() bool { return src.Status().State == StateEnded }, "the file to play to its end (state %s)", src.Status().State)
			if st := src.Status(); st.HWAccel == tt.hw {
				t.Skipf("this machine decodes with %s: the fallback is not exercised", tt.hw)
			}
			// The file may end before the collector's goroutine has taken
			// its frames.
			testenv.WaitFor(t, 5*time.Second, func() bool { return len(c.of("demo")) > 0 }, "a frame handed on")
			checkFallback(t, &logs, src, c, tt.hw, tt.tried)
			if errs := logs.lines(t, "ERROR"); len(errs) != 0 {
				t.Errorf("logged errors: %+v", errs)
			}
		})
	}
	t.Run("once across reconnects", func(t *testing.T) {
		srv := testenv.StartRTSP(t, testenv.RTSPOptions{FPS: 25, Width: 320, Height: 240})
		var logs logBuffer
		l := NewLatest()
		defer l.Close()
		c := collect(t, l, false)
		src := mustNew(t, Options{Name: "demo", URL: srv.URL(), FPS: 5, HWAccel: HWAccelNVDEC, Logger: logs.logger(t)})
		start(t, src, l)
		testenv.WaitFor(t, 15*time.Second, func() bool { return len(c.of("demo")) > 0 }, "the first frame")
		if src.Status().HWAccel == HWAccelNVDEC {
			t.Skip("this machine decodes with nvdec: the fallback is not exercised")
		}
		srv.Stop()
		testenv.WaitFor(t, 5*time.Second, func() bool { return src.Status().State == StateReconnecting }, "the camera to notice the server is gone")
		srv.Start()
		back := time.Now()
		testenv.WaitFor(t, 15*time.Second, func() bool { _, ok := c.firstAfter("demo", back); return ok }, "frames after the server came back")
		checkFallback(t, &logs, src, c, HWAccelNVDEC, "h264_cuvid")
		if hw := src.(*source).hwaccel(); hw != HWAccelNone {
			t.Errorf("the next open would try %s, want software (none) after the fallback", hw)
		}
	})
}

// checkFallback: src handed on frames in software, after one warning naming
// hw and what was tried.
func checkFallback(t *testing.T, logs *logBuffer, src Source, c *collector, hw HWAccel, tried string) {
	t.Helper()
	st := src.Status()
	if st.HWAccel != HWAccelNone || len(c.of("demo")) == 0 {
		t.Errorf("status hwaccel %s with %d frames handed on, want none (software) and frames", st.HWAccel, len(c.of("demo")))
	}
	var warns []logLine
	for _, l := range logs.lines(t, "WARN") {
		if strings.HasPrefix(l.Msg, "hardware decoding is not available") {
			warns = append(warns, l)
		}
	}
	if len(warns) != 1 {
		t.Fatalf("%d warnings about hardware decoding, want 1:\n%s", len(warns), logs.String())
	}
	if line := logs.String(); !strings.Contains(line, `"hwaccel":"`+string(hw)+`"`) || !strings.Contains(line, tried) {
		t.Errorf("the warning does not name %s and %q:\n%s", hw, tried, line)
	}
}
