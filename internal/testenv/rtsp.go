package testenv

import (
	"bufio"
	"fmt"
	"image/color"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// SystemPython is the interpreter that sees Debian's python3-gi. The python3
// first on PATH may be a pyenv build that does not.
const SystemPython = "/usr/bin/python3"

// rtspStartTimeout bounds how long a server may take to print "ready"; it
// takes well under a second (docs/measurements.md), so this is only reached
// when something is broken.
const rtspStartTimeout = 15 * time.Second

// rtspCommandTimeout bounds the wait for a command's "ok" line.
const rtspCommandTimeout = 5 * time.Second

// RTSPOptions describes the stream a test RTSP server sends. Zero values take
// the defaults in brackets.
type RTSPOptions struct {
	Width, Height int    // picture size [640×360]
	FPS           int    // frames per second [25]
	Color         string // solid colour RRGGBB ["808080"]
	Pattern       string // a videotestsrc pattern (smpte, ball, …) instead of Color
	Path          string // mount path ["/cam"]
	Port          int    // TCP port on 127.0.0.1 [a free one]
	// KeyframeInterval is the time between keyframes (the GOP) [1s]. Clients
	// that join the running stream wait for the next keyframe to decode.
	KeyframeInterval time.Duration

	// File, when set, is an H.264 byte stream (Annex B, no B-frames: ffmpeg
	// -f h264 -bf 0) that the server sends as it is, looping, instead of
	// encoding a test pattern: no encoder runs, so many 1080p cameras cost
	// the server little. Its own GOP stands; Width, Height, Color, Pattern
	// and KeyframeInterval do not apply, and the server takes no commands.
	// FPS times its pictures.
	File string
	// Cameras is how many mounts serve File [1: Path]; with more, CameraURL(i)
	// is Path followed by i, starting i × Stagger into the file (at the key
	// frame at or before), so that changes scripted in the file reach the
	// cameras at different times.
	Cameras int
	Stagger time.Duration
	// Timeline is a file the server appends each mount's start and loops to;
	// ReadTimeline parses it.
	Timeline string
}

// RTSPServer is a real RTSP camera on loopback: scripts/rtsp-server.py, a
// GStreamer RTSP server, driven through its stdin. Methods that change it
// wait until the server confirms, so a test can act on the new state at once.
// They are meant for the goroutine that runs the test; a failure calls the
// fail function (t.Fatalf for StartRTSP).
type RTSPServer struct {
	opts   RTSPOptions
	script string
	fail   func(format string, args ...any)
	logf   func(format string, args ...any)

	mu      sync.Mutex
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string   // stdout lines of the running process
	exited  chan struct{} // closed when the running process has exited
	stalled bool          // replayed after a restart
	color   string        // replayed after a restart
	pattern string
}

var (
	rtspCheckOnce sync.Once
	rtspMissing   string // why the server cannot run here; "" when it can
)

// rtspAvailable runs the script's --check once per test binary.
func rtspAvailable(script string) string {
	rtspCheckOnce.Do(func() {
		if _, err := os.Stat(SystemPython); err != nil {
			rtspMissing = SystemPython + " (Debian's python3)"
			return
		}
		out, err := exec.Command(SystemPython, script, "--check").CombinedOutput()
		if err != nil {
			rtspMissing = "GStreamer RTSP server for tests (python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base/good/ugly): " +
				strings.TrimSpace(string(out))
		}
	})
	return rtspMissing
}

// StartRTSP starts an RTSP server for the test and stops it when the test
// ends. It fails or skips t (see Need) when GStreamer's RTSP server is not
// installed.
func StartRTSP(t testing.TB, opts RTSPOptions) *RTSPServer {
	t.Helper()
	script := filepath.Join(RepoRoot(t), "scripts", "rtsp-server.py")
	missing := rtspAvailable(script)
	Need(t, missing == "", missing)
	if opts.Port == 0 {
		opts.Port = FreePort(t)
	}
	s := newRTSP(script, opts, t.Fatalf, t.Logf)
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// LaunchRTSP starts an RTSP server outside a test (the soak program). fail is
// called on any error and must not return (log.Fatalf, for example). The
// caller stops the server.
func LaunchRTSP(script string, opts RTSPOptions, fail, logf func(format string, args ...any)) *RTSPServer {
	if missing := rtspAvailable(script); missing != "" {
		fail("%s is not available (run scripts/setup.sh)", missing)
	}
	if opts.Port == 0 {
		fail("LaunchRTSP: a port is required")
	}
	s := newRTSP(script, opts, fail, logf)
	s.Start()
	return s
}

func newRTSP(script string, opts RTSPOptions, fail, logf func(string, ...any)) *RTSPServer {
	if opts.Width == 0 {
		opts.Width, opts.Height = 640, 360
	}
	if opts.FPS == 0 {
		opts.FPS = 25
	}
	if opts.KeyframeInterval == 0 {
		opts.KeyframeInterval = time.Second
	}
	if opts.Color == "" {
		opts.Color = "808080"
	}
	if opts.Path == "" {
		opts.Path = "/cam"
	}
	if opts.Cameras == 0 {
		opts.Cameras = 1
	}
	return &RTSPServer{opts: opts, script: script, fail: fail, logf: logf, color: opts.Color, pattern: opts.Pattern}
}

// URL is rtsp://127.0.0.1:PORT/PATH.
func (s *RTSPServer) URL() string {
	return fmt.Sprintf("rtsp://127.0.0.1:%d%s", s.opts.Port, s.opts.Path)
}

// CameraPath is the mount path of camera i of a File server with several
// Cameras (Path when it has one): its key in ReadTimeline's answer.
func (s *RTSPServer) CameraPath(i int) string {
	if s.opts.Cameras <= 1 {
		return s.opts.Path
	}
	return fmt.Sprintf("%s%d", s.opts.Path, i)
}

// CameraURL is camera i's URL.
func (s *RTSPServer) CameraURL(i int) string {
	return fmt.Sprintf("rtsp://127.0.0.1:%d%s", s.opts.Port, s.CameraPath(i))
}

// Pid is the server process's id (0 when it is not running), for measuring
// what it costs.
func (s *RTSPServer) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Port is the server's TCP port.
func (s *RTSPServer) Port() int { return s.opts.Port }

// Addr is 127.0.0.1:PORT.
func (s *RTSPServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.opts.Port) }

// Start starts the server (again, after Stop) on the same port, with the
// colour, pattern and stall state it last had, and waits until it listens.
func (s *RTSPServer) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	args := []string{s.script,
		"--port", fmt.Sprint(s.opts.Port), "--path", s.opts.Path,
		"--width", fmt.Sprint(s.opts.Width), "--height", fmt.Sprint(s.opts.Height),
		"--fps", fmt.Sprint(s.opts.FPS), "--keyframe-interval", fmt.Sprint(s.opts.KeyframeInterval.Seconds()),
		"--color", s.color, "--pattern", s.pattern,
	}
	if s.opts.File != "" {
		args = append(args, "--file", s.opts.File, "--cameras", fmt.Sprint(s.opts.Cameras),
			"--stagger", fmt.Sprint(s.opts.Stagger.Seconds()), "--timeline", s.opts.Timeline)
	}
	cmd := exec.Command(SystemPython, args...)
	cmd.Stderr = &logWriter{logf: s.logf, prefix: "rtsp-server: "}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		s.fail("rtsp server: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.fail("rtsp server: %v", err)
	}
	if err := cmd.Start(); err != nil {
		s.fail("rtsp server: start: %v", err)
	}
	lines := make(chan string, 16)
	exited := make(chan struct{})
	// This goroutine is owned by the process: it ends when the process closes
	// its stdout, and Stop waits for exited.
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody waits for this line (an unexpected message); drop it
			}
		}
		cmd.Wait()
		close(exited)
	}()
	s.cmd, s.stdin, s.lines, s.exited = cmd, stdin, lines, exited

	if _, err := s.expect("ready ", rtspStartTimeout); err != nil {
		s.stopLocked()
		s.fail("rtsp server on port %d did not start: %v", s.opts.Port, err)
	}
	if s.stalled {
		s.commandLocked("stall", rtspCommandTimeout)
	}
}

// Stop kills the server, as a crashing camera would go: clients see their
// connections drop. It is a no-op when the server is not running.
func (s *RTSPServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *RTSPServer) stopLocked() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.stdin.Close()
	<-s.exited
	s.cmd = nil
}

// Stall keeps every connection open but sends no frames until Resume.
func (s *RTSPServer) Stall() { s.command("stall", func() { s.stalled = true }) }

// Resume sends frames again after Stall.
func (s *RTSPServer) Resume() { s.command("resume", func() { s.stalled = false }) }

// SetColor makes the picture a solid colour from the next frame on.
func (s *RTSPServer) SetColor(c color.Color) {
	r, g, b, _ := c.RGBA()
	hex := fmt.Sprintf("%02x%02x%02x", r>>8, g>>8, b>>8)
	s.command("color "+hex, func() { s.color, s.pattern = hex, "" })
}

// SetPattern shows a videotestsrc pattern ("smpte", "ball", …).
func (s *RTSPServer) SetPattern(name string) {
	s.command("pattern "+name, func() { s.pattern = name })
}

// Keyframe returns just after the encoder produced its next keyframe. That
// keyframe may still reach a client that joins at once; one that joins a
// second later waits most of a keyframe interval. A client must be
// connected (the shared pipeline runs only then).
func (s *RTSPServer) Keyframe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commandLocked("keyframe", s.opts.KeyframeInterval+rtspCommandTimeout)
}

// command sends line and waits for its "ok"; remember records the new state
// so that Start replays it.
func (s *RTSPServer) command(line string, remember func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	remember()
	if s.cmd == nil {
		return // applied when the server starts again
	}
	s.commandLocked(line, rtspCommandTimeout)
}

// commandLocked sends line and returns the server's "ok" answer.
func (s *RTSPServer) commandLocked(line string, timeout time.Duration) string {
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		s.fail("rtsp server: %s: %v", line, err)
	}
	answer, err := s.expect("ok "+line, timeout)
	if err != nil {
		s.fail("rtsp server: %s: %v", line, err)
	}
	return answer
}

// expect waits for a stdout line starting with prefix.
func (s *RTSPServer) expect(prefix string, timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case line := <-s.lines:
			if strings.HasPrefix(line, prefix) {
				return line, nil
			}
			if strings.HasPrefix(line, "error") {
				return "", fmt.Errorf("%s", line)
			}
		case <-s.exited:
			return "", fmt.Errorf("the server exited (see its stderr above)")
		case <-deadline.C:
			return "", fmt.Errorf("no %q line within %s", prefix, timeout)
		}
	}
}

// LoopStart is one line of a File server's timeline: a mount's run of the
// file from From (a position in the file) to its end, whose position 0 was
// (or, for a run that began mid-file, would have been) sent at Zero. A
// change scripted at position p of the file, p ≥ From, reached the mount's
// clients at Zero + p, unless the mount's next LoopStart came first (its
// pipeline was restarted).
type LoopStart struct {
	Zero time.Time
	From time.Duration
}

// ReadTimeline parses a File server's Timeline: each mount's (its path's)
// loop starts, in order.
func ReadTimeline(path string) (map[string][]LoopStart, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rtsp timeline: %w", err)
	}
	out := map[string][]LoopStart{}
	for n, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if line == "" {
			continue
		}
		var mount string
		var zero, from int64
		if _, err := fmt.Sscanf(line, "%s %d %d", &mount, &zero, &from); err != nil {
			return nil, fmt.Errorf("rtsp timeline %s:%d: %q: %w", path, n+1, line, err)
		}
		out[mount] = append(out[mount], LoopStart{Zero: time.Unix(0, zero), From: time.Duration(from)})
	}
	return out, nil
}

// logWriter forwards a child's stderr to the test log, line by line.
type logWriter struct {
	mu     sync.Mutex
	logf   func(string, ...any)
	prefix string
	buf    []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.logf("%s%s", w.prefix, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
