package daemon

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/daemon/calibrate"
	"github.com/siglipd/siglipd/daemon/live"
	"github.com/siglipd/siglipd/internal/testenv"
)

// These tests hold the daemon to who owns what: the pipeline never waits
// for HTTP, the change loop is the only writer of the running config, and
// Run leaves nothing running behind it.

// fakeDaemonConfig is one looping file camera with a "red" label, for the
// fake model (which scores a frame by its blue channel); the model path is
// never opened.
func fakeDaemonConfig(t *testing.T, stateDir, extra string) string {
	video := testenv.VideoFile(t, testenv.VideoOptions{Duration: 4 * time.Second})
	return fmt.Sprintf(`
state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
%s
cameras: [{name: door, url: %s, loop: true, fps: 10,
           labels: [{name: red, threshold: 0.9, min_frames: 1, off_frames: 1, cooldown: 0s}]}]
`, stateDir, filepath.Join(t.TempDir(), "no-model"), extra, video)
}

// TestSnapshotDoesNotStallScoring: a page request stuck inside the
// snapshot's JPEG encoding holds up neither the rules loop nor scoring:
// ten frames are scored as quickly while it is stuck as before, and the
// live page's scores keep moving. (When the encoding ran under the lock
// the rules loop takes, the rules loop stopped at the next frame, and the
// batcher behind it a few frames later.)
func TestSnapshotDoesNotStallScoring(t *testing.T) {
	testenv.Integration(t)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	r := startDaemon(t, fakeDaemonConfig(t, t.TempDir(), ""), func(h *hooks) {
		h.classifier = &fakeModel{}
		h.encodeJPEG = func(m gocv.Mat) ([]byte, error) {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
			return live.EncodeJPEG(m)
		}
	})
	t.Cleanup(unblock) // before the daemon's stop, which runs after it
	scored := func() uint64 { return r.camera("door").FramesScored }
	timeTen := func(what string) time.Duration {
		t.Helper()
		start, from := time.Now(), scored()
		testenv.WaitFor(t, 20*time.Second, func() bool { return scored() >= from+10 }, "ten frames scored %s", what)
		return time.Since(start)
	}
	testenv.WaitFor(t, 20*time.Second, func() bool { return scored() >= 3 }, "the first frames scored")
	before := timeTen("before the stuck request")

	got := make(chan int, 1)
	go func() {
		resp, err := http.Get(r.base + "/api/cameras/door/snapshot.jpg")
		if err != nil {
			got <- 0
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the snapshot request never reached the encoder")
	}
	during := timeTen("while a snapshot request is stuck")
	if limit := 2*before + time.Second; during > limit {
		t.Errorf("ten frames took %s while a snapshot was stuck, %s before (limit %s)", during, before, limit)
	}
	if at := r.camera("door").ScoredAt; at == nil || time.Since(*at) > 2*time.Second {
		t.Errorf("the live page's scores stopped moving while a snapshot was stuck (scored_at %v)", at)
	}
	t.Logf("ten frames scored in %s before, %s with a stuck snapshot request", before.Round(time.Millisecond), during.Round(time.Millisecond))
	unblock()
	if code := <-got; code != http.StatusOK {
		t.Errorf("the snapshot answered %d once released, want 200", code)
	}
}

// TestCalibrationRacingShutdown: applies and clears of a calibrated
// threshold, sent as fast as the page could while the daemon stops, never
// leave the running config, the rules and the calibration store
// disagreeing: each change is all done or not at all, and one that comes
// after the change loop has ended is refused with 503.
func TestCalibrationRacingShutdown(t *testing.T) {
	testenv.Integration(t)
	for round := range 8 {
		state := t.TempDir()
		calib, err := calibrate.Open(filepath.Join(state, calibrationDir))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []calibrate.Mark{{Yes: true, Score: 0.8}, {Yes: false, Score: 0.1}} {
			m.Camera, m.Label, m.Prompts = "door", "red", []string{"red"}
			if _, err := calib.Add(m, nil); err != nil {
				t.Fatal(err)
			}
		}
		var d *daemon
		r := startDaemon(t, fakeDaemonConfig(t, state, ""), func(h *hooks) {
			h.classifier = &fakeModel{}
			h.started = func(started *daemon) { d = started }
		})
		var wg sync.WaitGroup
		codes := make(chan int, 1000)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					body := fmt.Sprintf(`{"camera":"door","label":"red","apply":%v}`, (i+w)%2 == 0)
					req, _ := http.NewRequest(http.MethodPost, r.base+"/api/calibration", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					resp, err := testClient.Do(req)
					if err != nil {
						return // the server has closed
					}
					resp.Body.Close()
					select {
					case codes <- resp.StatusCode:
					default:
					}
					if resp.StatusCode == http.StatusServiceUnavailable {
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(round+1) * 15 * time.Millisecond) // stop at a different point of the stream each round
		r.stop()
		wg.Wait()
		close(codes)
		answered := map[int]int{}
		for c := range codes {
			answered[c]++
			if c != http.StatusOK && c != http.StatusServiceUnavailable {
				t.Errorf("round %d: an apply answered %d", round, c)
			}
		}
		if answered[http.StatusOK] == 0 {
			t.Errorf("round %d: no apply went through before the stop", round)
		}
		t.Logf("round %d: answers %v", round, answered)

		want := withCalibration(d.fileConfig(), d.calib) // as the store says
		running, _ := findLabel(d.config(), "door", "red")
		stored, _ := findLabel(want, "door", "red")
		var rule float64 = -1
		for _, ru := range d.rules.machine.Rules() {
			if ru.Camera == "door" && ru.Label == "red" {
				rule = ru.Threshold
			}
		}
		if running.Threshold != stored.Threshold || rule != running.Threshold {
			t.Errorf("round %d: threshold in the running config %g, in the rules %g, from the store %g: they disagree",
				round, running.Threshold, rule, stored.Threshold)
		}
	}
}

// TestRunLeavesNoGoroutines: once Run has returned, every goroutine it
// started (HTTP, the change loop, cameras, the batcher, the rules loop,
// MQTT, the server probe) has ended.
func TestRunLeavesNoGoroutines(t *testing.T) {
	testenv.Integration(t)
	broker := testenv.StartMosquitto(t)
	config := fakeDaemonConfig(t, t.TempDir(), fmt.Sprintf("mqtt: {broker: %s, client_id: leak}", broker.URL()))
	config = strings.Replace(config, "sink: stdout", "sink: mqtt", 1)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	before := goleak.IgnoreCurrent()
	r := startDaemon(t, config, func(h *hooks) { h.classifier = &fakeModel{} })
	testenv.WaitFor(t, 20*time.Second, func() bool { return r.camera("door").FramesScored > 0 }, "a scored frame")
	// The frame is counted as scored before the rules loop puts it on the
	// live board that serves the snapshot.
	testenv.WaitFor(t, 5*time.Second, func() bool {
		resp, err := client.Get(r.base + "/api/cameras/door/snapshot.jpg")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "the snapshot of the scored frame")
	for _, path := range []string{"/api/status", "/api/cameras/door/snapshot.jpg", "/metrics", "/api/calibration?camera=door&label=red"} {
		resp, err := client.Get(r.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	r.stop()
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, before)
}
