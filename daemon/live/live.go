// Package live keeps what the status API and the live page show of each
// camera: its last scored frame, that frame's probabilities, and the
// rules' states.
//
// Contract: the daemon owns a Board. The rules loop is its only writer:
// SetScores takes ownership of the frame it is given and closes the
// camera's previous one; Forget and Close close what is held. Readers (HTTP
// handlers, a mark on the live page) may be slow, so no reader holds the
// Board's lock for more than a copy: Snapshot encodes its JPEG outside the
// lock, from a copy of the frame, so a slow or stuck page request never
// delays the rules loop, and through it scoring. A Board is safe for
// concurrent use.
package live

import (
	"context"
	"image"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/capture"
	"github.com/siglipd/siglipd/rules"
)

// Board holds, per camera, the last scored frame and its probabilities, and
// the rules' states of every label.
type Board struct {
	encode func(gocv.Mat) ([]byte, error)

	mu     sync.Mutex
	cams   map[string]*camera
	states map[[2]string]rules.LabelState
}

type camera struct {
	frame    *capture.Frame // the last scored frame, owned here
	probs    map[string]float64
	scoredAt time.Time
	jpeg     *encoding // of frame.Seq, or in progress; nil: none yet
}

// encoding is one JPEG of a frame: done is closed once jpeg or err is set.
// Whoever asks for the same frame while it is encoded waits on done instead
// of encoding it again.
type encoding struct {
	seq  uint64
	done chan struct{}
	jpeg []byte
	err  error
}

// New returns an empty Board. encode turns a frame into JPEG; nil means
// OpenCV's encoder (tests pass one that blocks).
func New(encode func(gocv.Mat) ([]byte, error)) *Board {
	if encode == nil {
		encode = EncodeJPEG
	}
	return &Board{encode: encode, cams: map[string]*camera{}, states: map[[2]string]rules.LabelState{}}
}

// EncodeJPEG is OpenCV's JPEG encoding of a frame.
func EncodeJPEG(m gocv.Mat) ([]byte, error) {
	buf, err := gocv.IMEncode(gocv.JPEGFileExt, m)
	if err != nil {
		return nil, err
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}

// SetScores records a scored frame and the rules' states after it, taking
// ownership of the frame (the camera's previous one is closed).
func (b *Board) SetScores(f *capture.Frame, probs map[string]float64, states []rules.LabelState) {
	b.mu.Lock()
	c := b.cams[f.Camera]
	if c == nil {
		c = &camera{}
		b.cams[f.Camera] = c
	}
	old := c.frame
	c.frame, c.probs, c.scoredAt = f, probs, time.Now()
	b.setStatesLocked(states)
	b.mu.Unlock()
	old.Close()
}

// SetStates records the rules' states (when no frame came with them).
func (b *Board) SetStates(states []rules.LabelState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setStatesLocked(states)
}

func (b *Board) setStatesLocked(states []rules.LabelState) {
	clear(b.states)
	for _, s := range states {
		b.states[[2]string{s.Camera, s.Label}] = s
	}
}

// Forget drops a camera removed by a reload.
func (b *Board) Forget(camera string) {
	b.mu.Lock()
	c := b.cams[camera]
	delete(b.cams, camera)
	b.mu.Unlock()
	if c != nil {
		c.frame.Close()
	}
}

// Crop returns the region the model looks at in the camera's last scored
// frame, and that frame's size; ok is false before the first frame and
// when the region is the whole frame.
func (b *Board) Crop(camera string) (r image.Rectangle, width, height int, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cams[camera]
	if c == nil || c.frame == nil {
		return image.Rectangle{}, 0, 0, false
	}
	w, h := c.frame.Mat.Cols(), c.frame.Mat.Rows()
	r = c.frame.Region
	return r, w, h, !r.Empty() && r != image.Rect(0, 0, w, h)
}

// Scores returns a camera's last probabilities, when they were computed,
// and the state of each of its labels.
func (b *Board) Scores(camera string) (map[string]float64, time.Time, map[string]rules.LabelState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	states := map[string]rules.LabelState{}
	for k, s := range b.states {
		if k[0] == camera {
			states[k[1]] = s
		}
	}
	c := b.cams[camera]
	if c == nil {
		return nil, time.Time{}, states
	}
	return c.probs, c.scoredAt, states
}

// Snapshot returns the camera's last scored frame as JPEG, with the
// frame's time and its probabilities, or nil before the first frame. The
// JPEG is encoded once per frame however many ask, outside the Board's
// lock; a caller waiting for another's encoding gives up when ctx ends.
func (b *Board) Snapshot(ctx context.Context, camera string) (jpeg []byte, at time.Time, probs map[string]float64, err error) {
	b.mu.Lock()
	c := b.cams[camera]
	if c == nil || c.frame == nil {
		b.mu.Unlock()
		return nil, time.Time{}, nil, nil
	}
	f, probs := c.frame, c.probs
	enc := c.jpeg
	encodeHere := enc == nil || enc.seq != f.Seq
	var copied gocv.Mat
	if encodeHere {
		// Encode a copy: the rules loop may replace (and close) the frame
		// while the encoder runs.
		enc = &encoding{seq: f.Seq, done: make(chan struct{})}
		c.jpeg = enc
		copied = f.Mat.Clone()
		defer copied.Close()
	}
	at = f.Time
	b.mu.Unlock()
	if encodeHere {
		enc.jpeg, enc.err = b.encode(copied)
		close(enc.done)
	}
	select {
	case <-enc.done:
		return enc.jpeg, at, probs, enc.err
	case <-ctx.Done():
		return nil, time.Time{}, nil, ctx.Err()
	}
}

// Close releases the frames held.
func (b *Board) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.cams {
		c.frame.Close()
		c.frame = nil
	}
}
