package live

import (
	"context"
	"errors"
	"image"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/rules"
)

func frame(camera string, seq uint64) *capture.Frame {
	mat := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(seq), 0, 0, 0), 8, 8, gocv.MatTypeCV8UC3)
	return &capture.Frame{Camera: camera, Seq: seq, Time: time.Now(), Mat: mat, Region: image.Rect(0, 0, 8, 8)}
}

// TestSnapshot: viewers of one frame share one encoding and get that
// frame's probabilities; the encoder runs outside the lock (SetScores,
// Scores and Crop go on while it is stuck); a new frame is encoded anew.
func TestSnapshot(t *testing.T) {
	var encodings atomic.Int32
	entered, release := make(chan struct{}, 8), make(chan struct{})
	b := New(func(m gocv.Mat) ([]byte, error) {
		encodings.Add(1)
		entered <- struct{}{}
		<-release
		return []byte{byte(m.GetUCharAt(0, 0))}, nil // the frame's seq, to tell frames apart
	})
	defer b.Close()
	if jpeg, _, _, err := b.Snapshot(context.Background(), "door"); jpeg != nil || err != nil {
		t.Fatalf("before a frame: %v, %v; want nil, nil", jpeg, err)
	}
	b.SetScores(frame("door", 1), map[string]float64{"red": 0.1}, nil)

	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jpeg, _, probs, err := b.Snapshot(context.Background(), "door")
			if err != nil || len(jpeg) != 1 || jpeg[0] != 1 || probs["red"] != 0.1 {
				t.Errorf("snapshot of frame 1: %v, probs %v, %v; want frame 1's picture and probabilities", jpeg, probs, err)
			}
		}()
	}
	<-entered // one encoding runs (and is stuck)

	// The writer and other readers are not held up by it.
	done := make(chan struct{})
	go func() {
		b.Scores("door")
		b.Crop("door")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Scores waited for a snapshot's encoding")
	}
	close(release)
	wg.Wait()
	if n := encodings.Load(); n != 1 {
		t.Errorf("%d encodings for three viewers of one frame, want 1", n)
	}

	// A stuck encoding of frame 2 does not hold up the next SetScores.
	release = make(chan struct{})
	b.SetScores(frame("door", 2), map[string]float64{"red": 0.2}, nil)
	got := make(chan []byte, 1)
	go func() {
		jpeg, _, _, _ := b.Snapshot(context.Background(), "door")
		got <- jpeg
	}()
	<-entered
	set := make(chan struct{})
	go func() {
		b.SetScores(frame("door", 3), map[string]float64{"red": 0.3}, []rules.LabelState{{Camera: "door", Label: "red"}})
		close(set)
	}()
	select {
	case <-set:
	case <-time.After(10 * time.Second):
		t.Fatal("SetScores waited for a snapshot's encoding")
	}
	close(release)
	if jpeg := <-got; len(jpeg) != 1 || jpeg[0] != 2 {
		t.Errorf("snapshot asked for at frame 2: %v, want frame 2's picture (encoded from a copy)", jpeg)
	}
	jpeg, _, probs, err := b.Snapshot(context.Background(), "door")
	if err != nil || len(jpeg) != 1 || jpeg[0] != 3 || probs["red"] != 0.3 {
		t.Errorf("snapshot of frame 3: %v, probs %v, %v", jpeg, probs, err)
	}
	if n := encodings.Load(); n != 3 {
		t.Errorf("%d encodings for three frames, want 3", n)
	}
}

// TestSnapshotGivesUp: a viewer waiting for another's stuck encoding gives
// up when its context ends.
func TestSnapshotGivesUp(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	b := New(func(gocv.Mat) ([]byte, error) {
		entered <- struct{}{}
		<-release
		return []byte{1}, nil
	})
	defer b.Close()
	b.SetScores(frame("door", 1), map[string]float64{"red": 0.5}, nil)
	go b.Snapshot(context.Background(), "door")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, _, err := b.Snapshot(ctx, "door"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's deadline", err)
	}
	close(release)
}
