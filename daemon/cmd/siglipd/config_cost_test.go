package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon"
	"github.com/siglipd/siglipd/infer/testmodel"
	"github.com/siglipd/siglipd/internal/testenv"
)

// What one hostile config file may cost siglipd beyond what it costs to
// start (the shared libraries it maps, about 90 MB resident, are most of
// that): it runs on edge boxes of 4 GB, where a fault report's file
// (100,000 levels deep, 200 KB) once took --check 37 s and 15 GB. The time
// is CPU time, which a busy test machine does not inflate.
const (
	maxCheckTime = time.Second
	maxCheckRSS  = 100 << 20
)

// hostileValid is the valid start of every hostile file.
const hostileValid = `model: {path: /m}
cameras:
  - name: door
    url: rtsp://10.0.0.2/live
    labels:
      - name: person
        threshold: 0.3
`

var maxrss struct {
	once sync.Once
	bin  string
	err  error
}

// measured is what one run of siglipd cost.
type measured struct {
	code      int
	stderr    string
	peak      int64 // bytes resident at most
	cpu, wall time.Duration
}

// runMeasured runs siglipd with args through testdata/maxrss, which
// measures its peak memory: a child's peak as this (large) test process
// would see it includes this process's own.
func runMeasured(t *testing.T, args ...string) measured {
	t.Helper()
	maxrss.once.Do(func() {
		maxrss.bin = filepath.Join(filepath.Dir(siglipdBin), "maxrss")
		build := exec.Command("go", "build", "-o", maxrss.bin, ".")
		build.Dir = filepath.Join("testdata", "maxrss")
		build.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
		if out, err := build.CombinedOutput(); err != nil {
			maxrss.err = fmt.Errorf("building testdata/maxrss: %v\n%s", err, out)
		}
	})
	if maxrss.err != nil {
		t.Fatal(maxrss.err)
	}
	out := filepath.Join(t.TempDir(), "maxrss.txt")
	cmd := exec.Command(maxrss.bin, append([]string{out, siglipdBin}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	m := measured{code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("maxrss wrote nothing (exit %d): %v\n%s", m.code, err, m.stderr)
	}
	var cpu, wall int64
	if _, err := fmt.Sscan(string(raw), &m.peak, &cpu, &wall); err != nil {
		t.Fatalf("maxrss wrote %q: %v", raw, err)
	}
	m.cpu, m.wall = time.Duration(cpu), time.Duration(wall)
	return m
}

// TestCheckHostileConfig: `siglipd --check` on each hostile file
// (testenv.HostileConfigs, the fault report's first) exits 2 within
// maxCheckTime of CPU and maxCheckRSS of peak memory more than a file with
// one problem takes, with every problem on a line of readable length.
func TestCheckHostileConfig(t *testing.T) {
	base := runMeasured(t, "--config", writeConfig(t, "a: 1\n"), "--check")
	t.Logf("a file with one problem: exit %d, %s CPU, %s wall, peak RSS %.1f MB",
		base.code, base.cpu.Round(time.Millisecond), base.wall.Round(time.Millisecond), float64(base.peak)/(1<<20))
	check := func(t *testing.T, data []byte) measured {
		m := runMeasured(t, "--config", writeConfig(t, string(data)), "--check")
		t.Logf("%d bytes: exit %d, %s CPU, %s wall, peak RSS %.1f MB", len(data), m.code,
			m.cpu.Round(time.Millisecond), m.wall.Round(time.Millisecond), float64(m.peak)/(1<<20))
		if m.code != exitUsage || !strings.Contains(m.stderr, "problem(s):") {
			t.Fatalf("exit %d, want %d with the problems listed; stderr:\n%.2000s", m.code, exitUsage, m.stderr)
		}
		if m.cpu > maxCheckTime {
			t.Errorf("--check took %s of CPU, more than %s", m.cpu, maxCheckTime)
		}
		if m.peak-base.peak > maxCheckRSS {
			t.Errorf("--check peaked at %d MB resident, %d MB more than for one problem (at most %d MB more)",
				m.peak>>20, (m.peak-base.peak)>>20, maxCheckRSS>>20)
		}
		for i, line := range strings.Split(m.stderr, "\n") {
			if n := len([]rune(line)); n > 500 {
				t.Errorf("stderr line %d is %d characters: %.200s…", i+1, n, line)
			}
		}
		return m
	}
	for _, h := range testenv.HostileConfigs(hostileValid, configs.MaxDepth) {
		t.Run(h.Name, func(t *testing.T) {
			m := check(t, h.Data)
			// A file stopped by a bound on depth or size is also measured
			// up to where it stopped: the most of it the parsers see.
			if at := boundAt(h.Data, m.stderr); at > 0 {
				t.Run("cut where the bound stopped it", func(t *testing.T) { check(t, h.Data[:at]) })
			}
		})
	}
}

var boundError = regexp.MustCompile(`cams\.yaml:(\d+):(\d+): (nesting deeper than|more than \d+ keys and values)`)

// boundAt is the offset in data of the line and column where --check's
// stderr says a bound on depth or size stopped it; 0 if none did.
func boundAt(data []byte, stderr string) int {
	m := boundError.FindStringSubmatch(stderr)
	if m == nil {
		return 0
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	at := 0
	for range line - 1 {
		at += bytes.IndexByte(data[at:], '\n') + 1
	}
	for range col - 1 {
		_, size := utf8.DecodeRune(data[at:])
		at += size
	}
	return at
}

// TestWatchConfigHostile: a running daemon with --watch-config sees each
// hostile file saved over its config, rejects it within maxCheckTime, and
// grows its peak memory by less than maxCheckRSS over them all; it then
// still applies a good change and stops cleanly.
func TestWatchConfigHostile(t *testing.T) {
	testenv.Integration(t)
	lib := testenv.ORTLib(t)
	model := filepath.Join(t.TempDir(), "tiny")
	if err := testmodel.Generate(testmodel.Options{Preset: "tiny", OutDir: model}); err != nil {
		t.Fatal(err)
	}
	good := func(threshold string) string {
		return `model: {path: ` + model + `}
sink: stdout
http: {listen: ""}
cameras: [{name: door, url: /videos/door.mp4, labels: [{name: person, threshold: ` + threshold + `}]}]
`
	}
	cfg := writeConfig(t, good("0.5"))
	save := func(data []byte) { // as editors do: a new file renamed over the old
		tmp := cfg + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(siglipdBin, "--config", cfg, "--watch-config", "50ms")
	cmd.Env = append(os.Environ(), "SIGLIPD_ORT_LIB="+lib)
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { // owned by the process: ends when it exits
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(stderr.String(), "siglipd running") },
		"the daemon to report it is running; stderr:\n%s", &stderr)
	before := peakRSS(t, cmd.Process.Pid)

	for i, h := range testenv.HostileConfigs(good("0.5"), configs.MaxDepth) {
		save(h.Data)
		start := time.Now()
		testenv.WaitFor(t, 30*time.Second, func() bool {
			return strings.Count(stderr.String(), "config reload rejected") == i+1
		}, "%s to be rejected; stderr:\n%.4000s", h.Name, &stderr)
		took := time.Since(start) // the 50 ms poll included
		t.Logf("%s: rejected after %s", h.Name, took.Round(time.Millisecond))
		if took > maxCheckTime {
			t.Errorf("%s: rejected after %s, more than %s", h.Name, took, maxCheckTime)
		}
	}
	after := peakRSS(t, cmd.Process.Pid)
	t.Logf("peak RSS %.1f MB before the hostile files, %.1f MB after", float64(before)/(1<<20), float64(after)/(1<<20))
	if after-before > maxCheckRSS {
		t.Errorf("the hostile files grew the daemon's peak memory by %d MB, more than %d MB", (after-before)>>20, maxCheckRSS>>20)
	}

	save([]byte(good("0.6")))
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(stderr.String(), "config reloaded") },
		"a good change to be applied after the hostile files; stderr:\n%.4000s", &stderr)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("exit: %v", waitErr)
		}
	case <-time.After(daemon.ShutdownTimeout + 5*time.Second):
		t.Fatalf("still running %s after SIGTERM", daemon.ShutdownTimeout+5*time.Second)
	}
}
