package capture

import (
	"sort"
	"sync"
)

// Latest is the latest-frame-wins hand-off shared by all cameras: one slot
// per camera. A frame offered while the camera's previous one is still
// pending replaces it (the stale one is closed and counted as a drop), so the
// consumer always gets the freshest picture and memory is bounded at one
// frame per camera however slow the consumer is.
type Latest struct {
	mu      sync.Mutex
	pending map[string]*Frame
	drops   map[string]uint64
	served  map[string]uint64 // per camera, the number of the Take that last took its frame
	takes   uint64            // Takes that returned frames
	closed  bool
	ready   chan struct{}
}

// NewLatest returns an empty hand-off.
func NewLatest() *Latest {
	return &Latest{
		pending: make(map[string]*Frame),
		drops:   make(map[string]uint64),
		served:  make(map[string]uint64),
		ready:   make(chan struct{}, 1),
	}
}

// Offer makes f its camera's pending frame, replacing (closing, counting as a
// drop) the one not yet taken. It never blocks. After Close it closes f at
// once (also counted as a drop).
func (l *Latest) Offer(f *Frame) {
	l.mu.Lock()
	if l.closed {
		l.drops[f.Camera]++
		l.mu.Unlock()
		f.Close()
		return
	}
	old := l.pending[f.Camera]
	l.pending[f.Camera] = f
	if old != nil {
		l.drops[f.Camera]++
	}
	l.mu.Unlock()
	old.Close() // nil-safe; outside the lock, so other cameras never wait on a free()
	l.signal()
}

// Ready returns a channel that receives a value when frames may be pending.
// Exactly: whenever at least one frame is pending, a value is waiting in the
// channel or will be sent before Take returns. A receive does not promise
// frames (another Take may have taken them first), so after each receive call
// Take and handle what it returns, possibly nothing. The channel is never
// closed; stop waiting on it with your own context.
func (l *Latest) Ready() <-chan struct{} { return l.ready }

func (l *Latest) signal() {
	select {
	case l.ready <- struct{}{}:
	default: // a signal is already waiting: one is enough
	}
}

// Take removes and returns up to max pending frames: the cameras served
// longest ago first, then the oldest capture time, then by name. Served
// order comes first because, when the consumer is slower than the cameras,
// every pending frame is replaced each sampling interval and "oldest" then
// only reflects each camera's sampling phase, which can leave one camera
// behind the others on every Take; taking in turns gives each camera an
// equal share. It never blocks and returns nil when nothing is pending. The
// caller owns the frames.
func (l *Latest) Take(max int) []*Frame {
	l.mu.Lock()
	if len(l.pending) == 0 {
		l.mu.Unlock()
		return nil
	}
	if max <= 0 {
		l.mu.Unlock()
		l.signal() // the caller may have consumed the signal: frames are still pending
		return nil
	}
	frames := make([]*Frame, 0, len(l.pending))
	for _, f := range l.pending {
		frames = append(frames, f)
	}
	sort.Slice(frames, func(i, j int) bool {
		if si, sj := l.served[frames[i].Camera], l.served[frames[j].Camera]; si != sj {
			return si < sj
		}
		if !frames[i].Time.Equal(frames[j].Time) {
			return frames[i].Time.Before(frames[j].Time)
		}
		return frames[i].Camera < frames[j].Camera
	})
	if len(frames) > max {
		frames = frames[:max]
	}
	l.takes++
	for _, f := range frames {
		delete(l.pending, f.Camera)
		l.served[f.Camera] = l.takes
	}
	left := len(l.pending)
	l.mu.Unlock()
	if left > 0 {
		// Keep Ready's promise: frames are still pending.
		l.signal()
	}
	return frames
}

// Dropped is how many of the camera's sampled frames were replaced before
// anyone took them, or offered after Close, or still pending at Close.
func (l *Latest) Dropped(camera string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.drops[camera]
}

// Pending is how many frames are waiting to be taken.
func (l *Latest) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// Close closes the pending frames, counted as drops (nobody will take
// them); later Offers close their frame at once, also counted.
func (l *Latest) Close() {
	l.mu.Lock()
	frames := l.pending
	for camera := range frames {
		l.drops[camera]++
	}
	l.pending = make(map[string]*Frame)
	l.closed = true
	l.mu.Unlock()
	for _, f := range frames {
		f.Close()
	}
}
