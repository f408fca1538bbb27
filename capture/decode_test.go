package capture

import (
	"math"
	"testing"
	"time"
)

// TestKeyframeClock: the rate is measured over the last key frames read,
// leaving out a connection's first (the open read it ahead), and the
// longest interval is kept for the watchdog.
func TestKeyframeClock(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name          string
		at            []time.Duration // read times of the key frames
		wantRate      float64
		wantIntervals int
		wantLongest   time.Duration
	}{
		{"none", nil, 0, 0, 0},
		{"the first alone", []time.Duration{0}, 0, 0, 0},
		{"first left out", []time.Duration{0, 600 * time.Millisecond}, 0, 0, 0},
		{"one interval", []time.Duration{0, 600 * time.Millisecond, 1600 * time.Millisecond}, 1, 1, time.Second},
		{"a key frame every 2 s", []time.Duration{0, 2 * time.Second, 4 * time.Second, 6 * time.Second, 8 * time.Second}, 0.5, 3, 2 * time.Second},
		{"one late, one early", []time.Duration{0, 1 * time.Second, 2200 * time.Millisecond, 2900 * time.Millisecond, 4 * time.Second}, 1, 3, 1200 * time.Millisecond},
		{"over the window only", func() []time.Duration {
			// 20 key frames 4 s apart, then 9 a second apart: the window
			// (9 times, 8 intervals) holds only the latter.
			var at []time.Duration
			for i := range 20 {
				at = append(at, time.Duration(i)*4*time.Second)
			}
			for i := range 9 {
				at = append(at, 80*time.Second+time.Duration(i)*time.Second)
			}
			return at
		}(), 1, keyframeWindow - 1, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var k keyframeClock
			for _, d := range tt.at {
				k.add(t0.Add(d))
			}
			rate, n := k.rate()
			if math.Abs(rate-tt.wantRate) > 1e-9 || n != tt.wantIntervals || k.longest != tt.wantLongest {
				t.Errorf("rate %g over %d intervals, longest %s; want %g over %d, longest %s", rate, n, k.longest, tt.wantRate, tt.wantIntervals, tt.wantLongest)
			}
		})
	}
}

// TestAutoWants: auto decodes key frames only when they come as often as
// fps asks, everything when clearly less often, and in between keeps what
// it does, so that a rate near fps does not flip it at every connection.
func TestAutoWants(t *testing.T) {
	tests := []struct {
		rate, fps float64
		now, want bool
	}{
		{rate: 1, fps: 1, now: false, want: true},
		{rate: 1, fps: 1, now: true, want: true},
		{rate: 2, fps: 1, now: false, want: true},
		{rate: 0.5, fps: 1, now: true, want: false},
		{rate: 1, fps: 2, now: true, want: false},
		{rate: 0.95, fps: 1, now: true, want: true},   // within the shortfall: stays
		{rate: 0.95, fps: 1, now: false, want: false}, // not enough to switch back
		{rate: 0.85, fps: 1, now: true, want: false},
	}
	for _, tt := range tests {
		if got := autoWants(tt.rate, tt.fps, tt.now); got != tt.want {
			t.Errorf("autoWants(rate %g, fps %g, keyframes now %v) = %v, want %v", tt.rate, tt.fps, tt.now, got, tt.want)
		}
	}
}

// TestWatchedKeyframes: decoding key frames only, a gap between frames is
// held to open_timeout until a keyframe interval was measured, then to
// read_timeout past the longest one (whole seconds), never past
// open_timeout; decoding everything, to read_timeout as before.
func TestWatchedKeyframes(t *testing.T) {
	tests := []struct {
		name        string
		keyframes   bool
		phase       int32
		read, open  time.Duration
		gap         time.Duration
		wantSetting string
		wantLimit   time.Duration
	}{
		{"all: reading", false, phaseReading, 10 * time.Second, 20 * time.Second, 0, "read_timeout", 10 * time.Second},
		{"all: opening", false, phaseFirstFrame, 10 * time.Second, 20 * time.Second, 0, "open_timeout", 20 * time.Second},
		{"keyframes: no interval yet", true, phaseReading, 10 * time.Second, 20 * time.Second, 0, "open_timeout", 20 * time.Second},
		{"keyframes: 1 s intervals", true, phaseReading, 10 * time.Second, 20 * time.Second, 1020 * time.Millisecond,
			"read_timeout past the keyframe interval", 12 * time.Second},
		{"keyframes: 4 s intervals", true, phaseReading, 3 * time.Second, 20 * time.Second, 4 * time.Second,
			"read_timeout past the keyframe interval", 8 * time.Second},
		{"keyframes: capped at open_timeout", true, phaseReading, 3 * time.Second, 3 * time.Second, time.Second, "open_timeout", 3 * time.Second},
		{"keyframes: opening", true, phaseOpening, 3 * time.Second, 20 * time.Second, time.Second, "open_timeout", 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &reader{src: &source{opts: Options{ReadTimeout: tt.read, OpenTimeout: tt.open}}, keyframes: tt.keyframes}
			r.phase.Store(tt.phase)
			r.keyGap.Store(int64(tt.gap))
			_, setting, limit, ok := r.watched()
			if !ok || setting != tt.wantSetting || limit != tt.wantLimit {
				t.Errorf("watched: %q %s (%v), want %q %s", setting, limit, ok, tt.wantSetting, tt.wantLimit)
			}
		})
	}
}

// TestOpenOptions: an open's FFmpeg options are the source's own and the
// decoder's, nothing else (another camera's must not carry over).
func TestOpenOptions(t *testing.T) {
	rtsp := rtspOptions("tcp", 20*time.Second)
	tests := []struct {
		name      string
		source    string
		keyframes bool
		hw        HWAccel
		want      string
	}{
		{"file", "", false, HWAccelNone, ""},
		{"file, key frames", "", true, HWAccelNone, "avdiscard;nonkey"},
		{"rtsp", rtsp, false, HWAccelNone, rtsp},
		{"rtsp, key frames", rtsp, true, HWAccelNone, rtsp + "|avdiscard;nonkey"},
		{"rtsp, vaapi", rtsp, false, HWAccelVAAPI, rtsp}, // an open parameter, not an option
		{"rtsp, key frames, nvdec", rtsp, true, HWAccelNVDEC, rtsp + "|avdiscard;nonkey|video_codec;h264_cuvid"},
		{"file, v4l2m2m", "", false, HWAccelV4L2M2M, "video_codec;h264_v4l2m2m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, decoder := tt.hw.openParams()
			if got := openOptions(tt.source, decoderOptions(tt.keyframes, decoder)); got != tt.want {
				t.Errorf("options\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

// TestPacerSchedule: a file's frames are due as far apart as their
// timestamps, across the start of a new pass, decoding every frame or key
// frames only.
func TestPacerSchedule(t *testing.T) {
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	type frame struct {
		pos     time.Duration
		newPass bool
		late    time.Duration // how long after the last due time the frame was decoded
		wantGap time.Duration // its due time after the last one
	}
	tests := []struct {
		name   string
		fps    float64
		frames float64
		seq    []frame
	}{
		{"every frame, looping", 25, 25, []frame{
			{pos: 0}, {pos: ms(40), wantGap: ms(40)}, {pos: ms(960), wantGap: ms(920)},
			{pos: 0, newPass: true, wantGap: ms(40)}, {pos: ms(40), wantGap: ms(40)}}},
		{"key frames of a 1 s GOP, looping", 25, 100, []frame{
			{pos: 0}, {pos: ms(1000), wantGap: ms(1000)}, {pos: ms(3000), wantGap: ms(2000)},
			{pos: 0, newPass: true, wantGap: ms(1000)}, {pos: ms(1000), wantGap: ms(1000)}}},
		{"one key frame in the file", 25, 25, []frame{
			{pos: 0}, {pos: 0, newPass: true, wantGap: ms(1000)}, {pos: 0, newPass: true, wantGap: ms(1000)}}},
		{"no timestamps", 25, 0, []frame{{pos: 0}, {pos: 0, wantGap: ms(40)}, {pos: 0, wantGap: ms(40)}}},
		{"far behind: no burst", 25, 25, []frame{{pos: 0}, {pos: ms(40), late: 3 * time.Second, wantGap: 3 * time.Second}, {pos: ms(80), wantGap: ms(40)}}},
		{"a broken timestamp far ahead", 25, 0, []frame{{pos: 0}, {pos: time.Hour, wantGap: maxPaceGap}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPacer(tt.fps, tt.frames)
			defer p.stop()
			now := time.Unix(1000, 0)
			last := now
			for i, f := range tt.seq {
				now = last.Add(f.late)
				due := p.schedule(now, f.pos, f.newPass)
				if gap := due.Sub(last); i > 0 && gap != f.wantGap {
					t.Errorf("frame %d (pos %s): due %s after the last, want %s", i, f.pos, gap, f.wantGap)
				}
				last = due
			}
		})
	}
}
