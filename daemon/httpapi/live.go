package httpapi

import (
	"image"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/rules"
)

// Live is what the status API and the live page show: per camera the last
// scored frame and its probabilities, and the rules' states. The rules loop
// writes it; HTTP handlers read it. It is safe for concurrent use.
type Live struct {
	mu     sync.Mutex
	cams   map[string]*liveCamera
	states map[[2]string]rules.LabelState
}

type liveCamera struct {
	frame    *capture.Frame // the last scored frame, owned here
	probs    map[string]float64
	scoredAt time.Time
	jpeg     []byte // frame encoded on demand, cached for frame.Seq
	jpegSeq  uint64
}

// NewLive returns an empty Live.
func NewLive() *Live {
	return &Live{cams: map[string]*liveCamera{}, states: map[[2]string]rules.LabelState{}}
}

// SetScores records a scored frame, taking ownership of it (the previous
// frame of the camera is closed).
func (l *Live) SetScores(f *capture.Frame, probs map[string]float64, states []rules.LabelState) {
	l.mu.Lock()
	c := l.cams[f.Camera]
	if c == nil {
		c = &liveCamera{}
		l.cams[f.Camera] = c
	}
	old := c.frame
	c.frame, c.probs, c.scoredAt = f, probs, time.Now()
	l.setStatesLocked(states)
	l.mu.Unlock()
	old.Close()
}

// SetStates records the rules' states (when no frame came with them).
func (l *Live) SetStates(states []rules.LabelState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setStatesLocked(states)
}

func (l *Live) setStatesLocked(states []rules.LabelState) {
	clear(l.states)
	for _, s := range states {
		l.states[[2]string{s.Camera, s.Label}] = s
	}
}

// Forget drops a camera removed by a reload.
func (l *Live) Forget(camera string) {
	l.mu.Lock()
	c := l.cams[camera]
	delete(l.cams, camera)
	l.mu.Unlock()
	if c != nil {
		c.frame.Close()
	}
}

// crop returns the region the model looks at in the camera's last scored
// frame, and that frame's size; ok is false before the first frame and
// when the region is the whole frame.
func (l *Live) crop(camera string) (r image.Rectangle, width, height int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cams[camera]
	if c == nil || c.frame == nil {
		return image.Rectangle{}, 0, 0, false
	}
	w, h := c.frame.Mat.Cols(), c.frame.Mat.Rows()
	r = c.frame.Region
	return r, w, h, !r.Empty() && r != image.Rect(0, 0, w, h)
}

// Scores returns a camera's last probabilities, when they were computed,
// and the state of each of its labels.
func (l *Live) Scores(camera string) (map[string]float64, time.Time, map[string]rules.LabelState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	states := map[string]rules.LabelState{}
	for k, s := range l.states {
		if k[0] == camera {
			states[k[1]] = s
		}
	}
	c := l.cams[camera]
	if c == nil {
		return nil, time.Time{}, states
	}
	return c.probs, c.scoredAt, states
}

// Snapshot returns the camera's last scored frame as JPEG (encoded once per
// frame, however many viewers ask), or nil before the first frame.
func (l *Live) Snapshot(camera string) ([]byte, time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cams[camera]
	if c == nil || c.frame == nil {
		return nil, time.Time{}, nil
	}
	if c.jpeg == nil || c.jpegSeq != c.frame.Seq {
		buf, err := gocv.IMEncode(gocv.JPEGFileExt, c.frame.Mat)
		if err != nil {
			return nil, time.Time{}, err
		}
		c.jpeg = append(c.jpeg[:0], buf.GetBytes()...)
		buf.Close()
		c.jpegSeq = c.frame.Seq
	}
	return c.jpeg, c.frame.Time, nil
}

// Close releases the frames held.
func (l *Live) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.cams {
		c.frame.Close()
		c.frame = nil
	}
}
