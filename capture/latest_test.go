package capture

import (
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// frameAt makes a small real frame, so Close has a Mat to release.
func frameAt(camera string, seq uint64, at time.Time) *Frame {
	return &Frame{Camera: camera, Seq: seq, Time: at, Mat: gocv.NewMatWithSize(2, 2, gocv.MatTypeCV8UC3)}
}

func ready(l *Latest) bool {
	select {
	case <-l.Ready():
		return true
	default:
		return false
	}
}

func TestLatestReplacesStaleFrame(t *testing.T) {
	l := NewLatest()
	t0 := time.Now()
	first := frameAt("door", 1, t0)
	l.Offer(first)
	l.Offer(frameAt("door", 2, t0.Add(time.Second)))
	if !first.closed {
		t.Error("the replaced frame was not closed")
	}
	if got := l.Dropped("door"); got != 1 {
		t.Errorf("Dropped(door) = %d, want 1", got)
	}
	if !ready(l) {
		t.Fatal("Ready not signalled after Offer")
	}
	got := l.Take(8)
	if len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("Take = %v, want only the newest frame (seq 2)", got)
	}
	got[0].Close()
	if l.Take(8) != nil {
		t.Error("Take returned frames twice")
	}
	if l.Dropped("garage") != 0 {
		t.Error("Drops of an unknown camera is not 0")
	}
}

func TestLatestTakeOrderAndMax(t *testing.T) {
	t0 := time.Now()
	tests := []struct {
		name   string
		offers []*Frame
		max    int
		want   []string // cameras, in the order Take returns them
		left   int
	}{
		{"oldest first", []*Frame{frameAt("c", 1, t0.Add(3)), frameAt("a", 1, t0.Add(1)), frameAt("b", 1, t0.Add(2))}, 8, []string{"a", "b", "c"}, 0},
		{"max keeps the newest pending", []*Frame{frameAt("c", 1, t0.Add(3)), frameAt("a", 1, t0.Add(1)), frameAt("b", 1, t0.Add(2))}, 2, []string{"a", "b"}, 1},
		{"same time: by camera name", []*Frame{frameAt("b", 1, t0), frameAt("a", 1, t0)}, 8, []string{"a", "b"}, 0},
		{"max 0", []*Frame{frameAt("a", 1, t0)}, 0, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLatest()
			defer l.Close()
			for _, f := range tt.offers {
				l.Offer(f)
			}
			<-l.Ready()
			got := l.Take(tt.max)
			var cams []string
			for _, f := range got {
				cams = append(cams, f.Camera)
				f.Close()
			}
			if len(cams) != len(tt.want) {
				t.Fatalf("Take(%d) = %v, want %v", tt.max, cams, tt.want)
			}
			for i := range cams {
				if cams[i] != tt.want[i] {
					t.Fatalf("Take(%d) = %v, want %v", tt.max, cams, tt.want)
				}
			}
			if l.Pending() != tt.left {
				t.Errorf("Pending = %d, want %d", l.Pending(), tt.left)
			}
			// Ready's promise: frames still pending means a signal is waiting.
			if tt.left > 0 && !ready(l) {
				t.Error("frames left pending but Ready is not signalled")
			}
		})
	}
}

func TestLatestClose(t *testing.T) {
	l := NewLatest()
	pending := frameAt("door", 1, time.Now())
	l.Offer(pending)
	l.Close()
	if !pending.closed {
		t.Error("Close did not close the pending frame")
	}
	late := frameAt("door", 2, time.Now())
	l.Offer(late)
	if !late.closed {
		t.Error("Offer after Close did not close the frame")
	}
	if l.Take(8) != nil {
		t.Error("Take after Close returned frames")
	}
	if got := l.Dropped("door"); got != 2 {
		t.Errorf("Drops = %d, want 2 (the frame pending at Close and the one offered after)", got)
	}
}

// TestLatestConcurrent offers from several cameras while a consumer takes:
// every frame is either taken or dropped, never both, never lost (run with
// -race to check the locking too).
func TestLatestConcurrent(t *testing.T) {
	l := NewLatest()
	const cameras, perCamera = 4, 500
	var wg sync.WaitGroup
	for c := range cameras {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := string(rune('a' + c))
			for i := range perCamera {
				l.Offer(frameAt(name, uint64(i+1), time.Now()))
			}
		}()
	}
	taken := 0
	stop := make(chan struct{})
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for {
			select {
			case <-stop:
				return
			case <-l.Ready():
			}
			for _, f := range l.Take(3) {
				taken++
				f.Close()
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-consumed
	rest := l.Take(cameras)
	taken += len(rest)
	for _, f := range rest {
		f.Close()
	}
	var drops uint64
	for c := range cameras {
		drops += l.Dropped(string(rune('a' + c)))
	}
	if taken+int(drops) != cameras*perCamera {
		t.Errorf("taken %d + dropped %d = %d, want %d", taken, drops, taken+int(drops), cameras*perCamera)
	}
}

// TestLatestTakesInTurns: a consumer slower than the cameras takes one
// frame at a time while every camera offers a new one each round, always
// in the same phase (camera "a" always the oldest). Each camera gets an
// equal share; by capture time alone "a" would get every one.
func TestLatestTakesInTurns(t *testing.T) {
	l := NewLatest()
	defer l.Close()
	t0 := time.Now()
	cameras := []string{"a", "b", "c"}
	got := map[string]int{}
	const rounds = 30
	for r := range rounds {
		for i, c := range cameras {
			l.Offer(frameAt(c, 1, t0.Add(time.Duration(r)*time.Second+time.Duration(i)*time.Millisecond)))
		}
		<-l.Ready()
		for _, f := range l.Take(1) {
			got[f.Camera]++
			f.Close()
		}
	}
	for _, c := range cameras {
		if got[c] != rounds/len(cameras) {
			t.Errorf("camera %s got %d of %d takes, want %d: %v", c, got[c], rounds, rounds/len(cameras), got)
		}
	}
}
