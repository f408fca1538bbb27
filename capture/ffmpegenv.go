package capture

import (
	"os"
	"sync"
)

// ffmpegOptionsVar is how OpenCV 4.6's FFmpeg backend takes FFmpeg options
// (key;value|key;value). gocv v0.31.0 has no open-with-parameters call, so
// the only way to choose RTSP transport and timeouts is this process-wide
// variable, read by OpenCV (getenv) while it opens a capture.
const ffmpegOptionsVar = "OPENCV_FFMPEG_CAPTURE_OPTIONS"

// ffmpegEnv guards that variable. Opens that need the same value (the common
// case: every camera on the defaults) run concurrently; an open that needs
// another value waits until those in flight have finished, then sets it.
// Opens of files and devices accept whatever value is set (FFmpeg ignores
// options it does not use) but still count as users, so the variable is
// never rewritten while OpenCV might be reading it: glibc's setenv and
// getenv are not safe to run at the same time.
//
// A waiting open is bounded by the opens in flight, which FFmpeg's socket
// timeout (ReadTimeout+5s) bounds in turn.
var ffmpegEnv = newEnvGate(func(v string) { os.Setenv(ffmpegOptionsVar, v) })

type envGate struct {
	setenv  func(string) // os.Setenv of the variable; a recorder in tests
	mu      sync.Mutex
	changed *sync.Cond // signalled when users drops to 0
	value   string
	set     bool // value has been written since the process started
	users   int
}

func newEnvGate(setenv func(string)) *envGate {
	g := &envGate{setenv: setenv}
	g.changed = sync.NewCond(&g.mu)
	return g
}

// acquire makes sure the variable holds value (any value when anyValue) until
// release is called. Call release exactly once, after OpenCV's open returned.
func (g *envGate) acquire(value string, anyValue bool) (release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !anyValue {
		for g.users > 0 && (!g.set || g.value != value) {
			g.changed.Wait()
		}
		if !g.set || g.value != value {
			g.setenv(value)
			g.value, g.set = value, true
		}
	}
	g.users++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.users--
		if g.users == 0 {
			g.changed.Broadcast()
		}
	}
}
