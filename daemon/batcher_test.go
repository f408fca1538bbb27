package daemon

import (
	"errors"
	"image"
	"image/color"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/internal/kit"
	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/publish"
)

// fakeModel scores a frame by its blue channel (the first byte of the
// frame, 0–255 → 0–1), for every label, and records the size of every
// batch it ran. err, when set, fails every batch; called, when set,
// receives the error of each EmbedImages call as it returns (from inside
// the call, so a test knows the call has happened, not only that the
// batcher took the frames).
type fakeModel struct {
	mu     sync.Mutex
	sizes  []int
	err    error
	called chan error
}

func (m *fakeModel) EmbedLabels(labels []infer.Label) (*infer.LabelSet, error) {
	set := &infer.LabelSet{}
	for _, l := range labels {
		set.Names = append(set.Names, l.Name)
	}
	return set, nil
}

// EmbedImages gives each image a one-number embedding: its blue value.
func (m *fakeModel) EmbedImages(images []infer.Image) ([][]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.called != nil {
		defer func() { m.called <- m.err }()
	}
	if m.err != nil {
		return nil, m.err
	}
	out := make([][]float32, len(images))
	for i, img := range images {
		out[i] = []float32{float32(img.Pix[0]) / 255}
	}
	m.sizes = append(m.sizes, len(images))
	return out, nil
}

// Score gives every label the embedding's number.
func (m *fakeModel) Score(e []float32, set *infer.LabelSet) []float32 {
	out := make([]float32, len(set.Names))
	for j := range out {
		out[j] = e[0]
	}
	return out
}

func (m *fakeModel) Info() infer.Info { return infer.Info{ImageWidth: 16, ImageHeight: 16} }

func (m *fakeModel) batchSizes() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sizes)
}

// testFrame is a 16×16 frame of one blue value (the fake model's score).
func testFrame(camera string, seq uint64, blue byte) *capture.Frame {
	mat := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(blue), 0, 0, 0), 16, 16, gocv.MatTypeCV8UC3)
	return &capture.Frame{Camera: camera, Seq: seq, Time: time.Now(), Mat: mat, Region: image.Rect(0, 0, 16, 16)}
}

// noStatus is a statusSource with nothing to report.
type noStatus struct{}

func (noStatus) Cameras() []capture.Status         { return nil }
func (noStatus) FramesDropped(string) uint64       { return 0 }
func (noStatus) FramesScored(string) uint64        { return 0 }
func (noStatus) FramesSkipped(string) uint64       { return 0 }
func (noStatus) FramesFailed(string) uint64        { return 0 }
func (noStatus) Sink() publish.Status              { return publish.Status{} }
func (noStatus) Server() infer.ServerState         { return infer.ServerState{Backend: "local", Up: true} }
func (noStatus) StateFiles() []kit.StateFileStatus { return nil }

// batcherRig is a batcher on a fresh hand-off with the fake model and
// labels for the given cameras; its output is collected.
type batcherRig struct {
	in    *capture.Latest
	model *fakeModel
	b     *batcher
	out   chan scoredFrame
}

func newBatcherRig(t *testing.T, size int, maxWait time.Duration, cameras ...string) *batcherRig {
	r := &batcherRig{in: capture.NewLatest(), model: &fakeModel{}, out: make(chan scoredFrame, 64)}
	sets := newScoring()
	for _, c := range cameras {
		set, _ := r.model.EmbedLabels([]infer.Label{{Name: "blue"}})
		sets.setLabels(c, set)
	}
	r.b = newBatcher(r.in, r.model, sets, size, maxWait, r.out, newMetrics(noStatus{}), slog.New(slog.DiscardHandler))
	go r.b.run()
	t.Cleanup(func() {
		select {
		case <-r.b.stopped:
		default:
			r.b.stop(time.Now().Add(time.Minute))
		}
		for s := range r.out {
			s.frame.Close()
		}
		r.in.Close()
	})
	return r
}

// receive waits for n scored frames.
func (r *batcherRig) receive(t *testing.T, n int, within time.Duration) []scoredFrame {
	t.Helper()
	var got []scoredFrame
	deadline := time.After(within)
	for len(got) < n {
		select {
		case s, ok := <-r.out:
			if !ok {
				t.Fatalf("output closed after %d of %d frames", len(got), n)
			}
			got = append(got, s)
		case <-deadline:
			t.Fatalf("%d of %d scored frames within %s", len(got), n, within)
		}
	}
	return got
}

// TestBatcher: a full batch runs at once, and so does one that holds a
// frame of every camera; a partial one after max_batch_wait;
// every frame comes out with its own camera's probabilities; frames of a
// camera without labels and of a failed batch are not scored (and not
// counted); at stop, pending frames are scored when there is time and
// closed when there is not, and the output closes either way.
func TestBatcher(t *testing.T) {
	t.Run("full batch does not wait", func(t *testing.T) {
		r := newBatcherRig(t, 3, time.Hour, "a", "b", "c")
		r.in.Offer(testFrame("a", 1, 51))
		r.in.Offer(testFrame("b", 1, 102))
		r.in.Offer(testFrame("c", 1, 204))
		got := r.receive(t, 3, 10*time.Second) // max_batch_wait is an hour
		want := map[string]float32{"a": 0.2, "b": 0.4, "c": 0.8}
		for _, s := range got {
			if s.names[0] != "blue" || s.probs[0] != want[s.frame.Camera] {
				t.Errorf("camera %s: %v %v, want blue %v", s.frame.Camera, s.names, s.probs, want[s.frame.Camera])
			}
			s.frame.Close()
		}
		if sizes := r.model.batchSizes(); !slices.Equal(sizes, []int{3}) {
			t.Errorf("batches %v, want one of 3", sizes)
		}
	})

	t.Run("every camera in does not wait", func(t *testing.T) {
		r := newBatcherRig(t, 8, time.Hour, "a", "b")
		r.in.Offer(testFrame("a", 1, 51))
		r.in.Offer(testFrame("b", 1, 102))
		for _, s := range r.receive(t, 2, 10*time.Second) { // max_batch_wait is an hour
			s.frame.Close()
		}
		if sizes := r.model.batchSizes(); !slices.Equal(sizes, []int{2}) && !slices.Equal(sizes, []int{1, 1}) {
			t.Errorf("batches %v, want one of 2 (or 2 of 1, had the batcher taken a before b came)", sizes)
		}
	})

	t.Run("partial batch after max_batch_wait", func(t *testing.T) {
		const maxWait = 300 * time.Millisecond
		r := newBatcherRig(t, 4, maxWait, "a", "b")
		start := time.Now()
		r.in.Offer(testFrame("a", 1, 10))
		got := r.receive(t, 1, 10*time.Second)
		if waited := time.Since(start); waited < maxWait {
			t.Errorf("a batch of 1 of 4 ran after %s, before max_batch_wait %s", waited, maxWait)
		}
		got[0].frame.Close()
		if n := r.b.framesScored("a"); n != 1 {
			t.Errorf("framesScored(a) = %d, want 1", n)
		}
	})

	t.Run("camera without labels", func(t *testing.T) {
		r := newBatcherRig(t, 2, 50*time.Millisecond, "a")
		r.in.Offer(testFrame("gone", 1, 10)) // removed by a reload
		r.in.Offer(testFrame("a", 1, 10))
		got := r.receive(t, 1, 10*time.Second)
		if got[0].frame.Camera != "a" {
			t.Errorf("scored a frame of %q", got[0].frame.Camera)
		}
		got[0].frame.Close()
		if n := r.b.framesScored("gone"); n != 0 {
			t.Errorf("framesScored(gone) = %d, want 0", n)
		}
		if n := r.b.framesDropped("gone"); n != 1 {
			t.Errorf("framesDropped(gone) = %d, want 1 (a frame of a removed camera is dropped, and counted)", n)
		}
	})

	t.Run("failed batch", func(t *testing.T) {
		r := newBatcherRig(t, 1, 0, "a")
		r.model.mu.Lock()
		r.model.err = errors.New("CUDA out of memory")
		r.model.called = make(chan error, 4)
		r.model.mu.Unlock()
		r.in.Offer(testFrame("a", 1, 10))
		select {
		case err := <-r.model.called: // the failing call has happened
			if err == nil {
				t.Fatal("the first model call did not fail")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the batcher never called the model")
		}
		r.model.mu.Lock()
		r.model.err = nil
		r.model.mu.Unlock()
		r.in.Offer(testFrame("a", 2, 10))
		got := r.receive(t, 1, 10*time.Second)
		if got[0].frame.Seq != 2 {
			t.Errorf("got frame %d, want 2 (frame 1's batch failed)", got[0].frame.Seq)
		}
		got[0].frame.Close()
		if n := r.b.framesScored("a"); n != 1 {
			t.Errorf("framesScored(a) = %d, want 1", n)
		}
		if n := r.b.framesFailed("a"); n != 1 {
			t.Errorf("framesFailed(a) = %d, want 1", n)
		}
	})

	for _, tt := range []struct {
		name       string
		drainBy    time.Duration // from now
		wantScored int
	}{
		{"stop scores what is pending", time.Minute, 2},
		{"stop with no time left", -time.Second, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newBatcherRig(t, 4, time.Hour, "a", "b", "c")
			// Hold the batcher in its collect loop (an hour's max_batch_wait,
			// c never comes) with one frame, add a second, then stop.
			r.in.Offer(testFrame("a", 1, 10))
			testenv.WaitFor(t, 10*time.Second, func() bool { return r.in.Pending() == 0 }, "the batcher to take frame a")
			r.in.Offer(testFrame("b", 1, 10))
			r.b.stop(time.Now().Add(tt.drainBy))
			var got int
			for s := range r.out { // closed by the batcher
				got++
				s.frame.Close()
			}
			if got != tt.wantScored {
				t.Errorf("%d frames scored at stop, want %d", got, tt.wantScored)
			}
			if dropped := int(r.b.framesDropped("a") + r.b.framesDropped("b")); dropped != 2-tt.wantScored {
				t.Errorf("%d frames dropped at stop, want %d (every frame in hand is counted)", dropped, 2-tt.wantScored)
			}
		})
	}
}

// sceneFrame is a 160×120 grey scene at time at, with a red square of
// `square` of its area in the middle (0: none) and, with noise, every
// pixel moved by up to ±noise levels (sensor noise).
func sceneFrame(camera string, at time.Time, square float64, noise int) *capture.Frame {
	const w, h = 160, 120
	mat := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), h, w, gocv.MatTypeCV8UC3)
	if square > 0 {
		side := int(math.Sqrt(square * w * h))
		r := image.Rect(w/2-side/2, h/2-side/2, w/2-side/2+side, h/2-side/2+side)
		gocv.Rectangle(&mat, r, color.RGBA{R: 255, A: 255}, -1)
	}
	if noise > 0 {
		pix, _ := mat.DataPtrUint8()
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := range pix {
			pix[i] = byte(max(0, min(255, int(pix[i])+rnd.IntN(2*noise+1)-noise)))
		}
	}
	return &capture.Frame{Camera: camera, Time: at, Mat: mat, Region: image.Rect(0, 0, w, h)}
}

// TestChangeGate: a frame that looks like the camera's last scored one
// takes its probabilities without a model run (sensor noise included);
// an object of 5 % of the picture is a change; every frame is scored once
// max_skip has passed, after the labels change, and with the gate off.
func TestChangeGate(t *testing.T) {
	r := newBatcherRig(t, 1, 0, "door")
	on := configs.SkipUnchanged{Enabled: true, MinChange: 0.005, MaxSkip: configs.Duration(10 * time.Second)}
	r.b.sets.setGate("door", on)
	t0 := time.Now()
	for i, step := range []struct {
		name        string
		at          time.Duration
		square      float64
		noise       int
		before      func()
		wantSkipped bool
	}{
		{name: "first frame", wantSkipped: false},
		{name: "same scene", at: 500 * time.Millisecond, wantSkipped: true},
		{name: "sensor noise", at: time.Second, noise: 8, wantSkipped: true},
		{name: "5% object", at: 1500 * time.Millisecond, square: 0.05, wantSkipped: false},
		{name: "object stays", at: 2 * time.Second, square: 0.05, wantSkipped: true},
		{name: "max_skip passed", at: 12 * time.Second, square: 0.05, wantSkipped: false},
		{name: "labels changed", at: 12500 * time.Millisecond, square: 0.05, wantSkipped: false, before: func() {
			set, _ := r.model.EmbedLabels([]infer.Label{{Name: "blue"}, {Name: "red"}})
			r.b.sets.setLabels("door", set)
		}},
		{name: "gate off", at: 13 * time.Second, square: 0.05, wantSkipped: false, before: func() {
			r.b.sets.setGate("door", configs.SkipUnchanged{})
		}},
	} {
		if step.before != nil {
			step.before()
		}
		runs := len(r.model.batchSizes())
		r.in.Offer(sceneFrame("door", t0.Add(step.at), step.square, step.noise))
		got := r.receive(t, 1, 10*time.Second)[0]
		got.frame.Close()
		ran := len(r.model.batchSizes()) > runs
		if got.skipped != step.wantSkipped || ran == step.wantSkipped {
			t.Errorf("step %d (%s): skipped %v, model ran %v; want skipped %v", i, step.name, got.skipped, ran, step.wantSkipped)
		}
	}
	if sk, sc := r.b.framesSkipped("door"), r.b.framesScored("door"); sk != 3 || sc != 5 {
		t.Errorf("framesSkipped %d, framesScored %d; want 3 and 5", sk, sc)
	}
}
