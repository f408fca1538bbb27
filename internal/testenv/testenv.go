// Package testenv holds what siglipd's tests share: finding the repository
// and its installed tools, free ports, and waiting on a condition with a
// deadline (never a fixed sleep).
//
// A test that needs a tool (mosquitto, ffmpeg, node, ONNX Runtime) calls
// Need. Under `make test` (SIGLIPD_REQUIRE_ALL=1, everything installed by
// setup) a missing tool fails the test; in a plain `go test` on a developer's
// machine it skips with a message naming what to install. `go test -short`
// skips the slow integration tests via Integration.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Required reports whether missing dependencies must fail tests rather than
// skip them (set by scripts/test.sh, so CI never passes by skipping).
func Required() bool { return os.Getenv("SIGLIPD_REQUIRE_ALL") == "1" }

// Need fails or skips t when ok is false, naming what is missing and how to
// get it.
func Need(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if Required() {
		t.Fatalf("%s is required (SIGLIPD_REQUIRE_ALL=1); run scripts/setup.sh", what)
	}
	t.Skipf("skipping: %s is not available (run scripts/setup.sh, or make test)", what)
}

// Integration skips t under -short: it starts real servers or models.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test; skipped with -short")
	}
}

// providers says where each program the tests run comes from, so that a
// missing one names what to install. scripts/setup.sh installs the Debian
// packages; the rest come with a machine of the CI kind.
var providers = map[string]string{
	"chromium":        "Debian package chromium",
	"ffmpeg":          "Debian package ffmpeg",
	"node":            "Node.js 20 or later, on the CI machine from the start (Debian package nodejs elsewhere)",
	"python3":         "Python 3, on the CI machine from the start (Debian package python3 elsewhere)",
	"systemd-analyze": "Debian package systemd, on the CI machine from the start",
	"v4l2-ctl":        "Debian package v4l-utils",
	"v4l2-compliance": "Debian package v4l-utils",
}

// LookPath returns the path of an executable, or fails/skips t naming the
// package that provides it.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	what := name
	if pkg, ok := providers[name]; ok {
		what += " (" + pkg + ")"
	}
	Need(t, err == nil, what)
	return p
}

// RepoRoot is the folder holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}

// ORTLib is the ONNX Runtime library the tests use: $SIGLIPD_ORT_LIB, else
// the copy scripts/fetch-ort.sh installs.
func ORTLib(t testing.TB) string {
	t.Helper()
	p := os.Getenv("SIGLIPD_ORT_LIB")
	if p == "" {
		p = filepath.Join(RepoRoot(t), ".deps", "onnxruntime", "lib", "libonnxruntime.so.1")
	}
	_, err := os.Stat(p)
	Need(t, err == nil, "ONNX Runtime library "+p)
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitFor polls cond every 10 ms until it is true or timeout passes, then
// fails t with the message. It is how tests wait: on a condition, with a
// deadline.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !Eventually(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, fmt.Sprintf(format, args...))
	}
}

// Eventually polls cond every 10 ms and reports whether it became true
// within timeout.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitTCP waits until something accepts TCP connections on addr.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "a listener on %s", addr)
}
