package capture

import (
	"context"
	"encoding/json"
	"image"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/internal/testenv"
)

// logBuffer collects a source's log lines as JSON, for tests that check what
// was logged (and that nothing leaks a password).
type logBuffer struct{ testenv.SyncBuffer }

// logger returns a logger writing to b at debug level, so that tests also
// see what a user would see with --log-level debug. The lines are shown
// when t fails.
func (b *logBuffer) logger(t testing.TB) *slog.Logger {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", b.String())
		}
	})
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logLine struct {
	Level  string `json:"level"`
	Msg    string `json:"msg"`
	Camera string `json:"camera"`
	URL    string `json:"url"`
	Err    string `json:"err"`
}

// lines returns the logged lines at level (all levels when "").
func (b *logBuffer) lines(t testing.TB, level string) []logLine {
	t.Helper()
	var out []logLine
	for _, raw := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if raw == "" {
			continue
		}
		var l logLine
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		if level == "" || l.Level == level {
			out = append(out, l)
		}
	}
	return out
}

// count is how many lines at level (all levels when "") start with msg.
func (b *logBuffer) count(t testing.TB, level, msg string) int {
	t.Helper()
	n := 0
	for _, l := range b.lines(t, level) {
		if strings.HasPrefix(l.Msg, msg) {
			n++
		}
	}
	return n
}

// running is a Source whose Run goroutine the test owns.
type running struct {
	src    Source
	cancel context.CancelFunc
	done   chan error
	took   time.Duration // how long Run took to return after stop began
	once   sync.Once
}

// start runs src.Run until stop is called or the test ends.
func start(t testing.TB, src Source, out Handoff) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{src: src, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- src.Run(ctx, out) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it, failing t if it takes more than the 5 s
// the daemon allows for shutdown. It returns how long Run took.
func (r *running) stop(t testing.TB) time.Duration {
	t.Helper()
	r.once.Do(func() {
		began := time.Now()
		r.cancel()
		select {
		case err := <-r.done:
			r.took = time.Since(began)
			if err != nil {
				t.Errorf("%s: Run returned %v, want nil after cancel", r.src.Name(), err)
			}
		case <-time.After(5 * time.Second):
			r.took = time.Since(began)
			t.Errorf("%s: Run did not return within 5s of cancel", r.src.Name())
		}
	})
	return r.took
}

// seen is what the collector records of a frame (the Mat itself is closed).
type seen struct {
	camera        string
	seq           uint64
	at            time.Time
	width, height int
	typ           gocv.MatType
	continuous    bool
	region        image.Rectangle
	mean          [3]float64 // B, G, R means of the region
}

// collector is the consumer side of a Latest: it takes frames as they become
// ready, records them and closes them, as the inference stage will.
type collector struct {
	mu     sync.Mutex
	frames []seen
	means  bool
	stop   chan struct{}
	done   chan struct{}
}

func collect(t testing.TB, l *Latest, withMeans bool) *collector {
	c := &collector{stop: make(chan struct{}), done: make(chan struct{}), means: withMeans}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			case <-l.Ready():
			}
			for _, f := range l.Take(8) {
				s := seen{camera: f.Camera, seq: f.Seq, at: f.Time, width: f.Mat.Cols(), height: f.Mat.Rows(),
					typ: f.Mat.Type(), continuous: f.Mat.IsContinuous(), region: f.Region}
				if c.means {
					roi := f.Mat.Region(f.Region)
					m := roi.Mean()
					roi.Close()
					s.mean = [3]float64{m.Val1, m.Val2, m.Val3}
				}
				f.Close()
				c.mu.Lock()
				c.frames = append(c.frames, s)
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *collector) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// of returns the frames of camera seen so far.
func (c *collector) of(camera string) []seen {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []seen
	for _, f := range c.frames {
		if f.camera == camera {
			out = append(out, f)
		}
	}
	return out
}

// countIn counts camera's frames captured in [from, to).
func (c *collector) countIn(camera string, from, to time.Time) int {
	n := 0
	for _, f := range c.of(camera) {
		if !f.at.Before(from) && f.at.Before(to) {
			n++
		}
	}
	return n
}

// rate is camera's frames per second in [from, to], measured between its
// first and last frame there, so the window's edges do not add or remove
// part of a frame interval.
func (c *collector) rate(camera string, from, to time.Time) float64 {
	var first, last time.Time
	n := 0
	for _, f := range c.of(camera) {
		if f.at.Before(from) || f.at.After(to) {
			continue
		}
		if n == 0 || f.at.Before(first) {
			first = f.at
		}
		if f.at.After(last) {
			last = f.at
		}
		n++
	}
	if n < 2 {
		return 0
	}
	return float64(n-1) / last.Sub(first).Seconds()
}

// firstAfter returns the capture time of camera's first frame after t.
func (c *collector) firstAfter(camera string, t time.Time) (time.Time, bool) {
	for _, f := range c.of(camera) {
		if f.at.After(t) {
			return f.at, true
		}
	}
	return time.Time{}, false
}

func mustNew(t testing.TB, opts Options) Source {
	t.Helper()
	src, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return src
}

// rateError fails t for a rate or latency out of bounds, except under -race,
// where the race detector's slowdown makes rates meaningless: there it is
// logged, and the normal pass of make test asserts it.
func rateError(t *testing.T, format string, args ...any) {
	t.Helper()
	if testenv.Race {
		t.Logf("not asserted under -race: "+format, args...)
		return
	}
	t.Errorf(format, args...)
}
