//go:build matprofile

// These tests count live gocv Mats, which gocv only tracks when built with
// -tags matprofile; scripts/test.sh runs them that way.

package capture

import (
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
	"gocv.io/x/gocv"
)

// liveMats watches gocv's count of open Mats while a test runs.
type liveMats struct {
	base, max int
}

func countMats() *liveMats {
	n := gocv.MatProfile.Count()
	return &liveMats{base: n, max: n}
}

func (m *liveMats) sample() int {
	n := gocv.MatProfile.Count()
	m.max = max(m.max, n)
	return n - m.base
}

// TestNoMatLeak hands on more than 1,000 frames through Latest to a consumer
// slower than the camera (so frames are also dropped and closed by Latest),
// with a crop and a looping file, and checks that every Mat is closed: at
// most a handful are alive at any time, and none once everything stopped.
func TestNoMatLeak(t *testing.T) {
	testenv.Integration(t)
	// 200 fps so 1,000 frames take ≈5 s; the pacer plays files at their own rate.
	video := testenv.VideoFile(t, testenv.VideoOptions{Width: 160, Height: 120, FPS: 200, Duration: 2 * time.Second})
	mats := countMats()
	l := NewLatest()
	src := mustNew(t, Options{Name: "demo", URL: video, FPS: 200, Loop: true, Crop: &Crop{X: 0.25, Y: 0.25, Width: 0.5, Height: 0.5}})
	run := start(t, src, l)

	taken, stop, done := 0, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-l.Ready():
			}
			for _, f := range l.Take(1) {
				taken++
				f.Close()
				// A consumer slower than the camera, as inference usually is,
				// so Latest replaces (and must close) pending frames too.
				time.Sleep(7 * time.Millisecond)
			}
		}
	}()
	testenv.WaitFor(t, 30*time.Second, func() bool {
		mats.sample()
		return src.Status().FramesSampled >= 1000
	}, "1,000 frames handed on (%d so far)", src.Status().FramesSampled)
	run.stop(t)
	close(stop)
	<-done
	pending := l.Pending() // closed by Close, and counted as drops
	l.Close()

	st := src.Status()
	drops := l.Dropped("demo")
	t.Logf("frames: read %d, handed on %d, taken %d, dropped %d, pending at close %d; live Mats: %d before, at most %d during, %d after",
		st.FramesDecoded, st.FramesSampled, taken, drops, pending, mats.base, mats.max, mats.base+mats.sample())
	if uint64(taken)+drops != st.FramesSampled {
		t.Errorf("taken %d + dropped %d (of which %d pending at close) != sampled %d: frames went missing", taken, drops, pending, st.FramesSampled)
	}
	if drops == uint64(pending) {
		t.Error("no frame was replaced: the test did not exercise Latest's replacing")
	}
	// Decode buffer + one pending in Latest + one in the consumer, plus one
	// being handed on.
	if mats.max-mats.base > 4 {
		t.Errorf("up to %d Mats alive at once, want at most 4", mats.max-mats.base)
	}
	if n := mats.sample(); n != 0 {
		t.Errorf("%d Mats still open after everything stopped", n)
	}
}

// TestNoMatLeakOnStall: the reader the watchdog abandons in a stall closes
// its Mats when OpenCV lets it go.
func TestNoMatLeakOnStall(t *testing.T) {
	testenv.Integration(t)
	srv := testenv.StartRTSP(t, testenv.RTSPOptions{FPS: 25, Width: 320, Height: 240})
	mats := countMats()
	l := NewLatest()
	c := collect(t, l, false)
	src := mustNew(t, Options{Name: "door", URL: srv.URL(), FPS: 5, ReadTimeout: 2 * time.Second})
	run := start(t, src, l)
	testenv.WaitFor(t, 15*time.Second, func() bool { return len(c.of("door")) > 0 }, "the first frame")
	srv.Stall()
	testenv.WaitFor(t, 5*time.Second, func() bool { return src.Status().AbandonedReaders > 0 }, "a reader abandoned in the stall")
	srv.Resume()
	resumed := time.Now()
	testenv.WaitFor(t, 15*time.Second, func() bool { _, ok := c.firstAfter("door", resumed); return ok }, "frames after the stall")
	testenv.WaitFor(t, 15*time.Second, func() bool { return src.Status().AbandonedReaders == 0 }, "the abandoned reader to return")
	run.stop(t)
	c.close()
	l.Close()
	if n := mats.sample(); n != 0 {
		t.Errorf("%d Mats still open after a stall and stop", n)
	}
}
