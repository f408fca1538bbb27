package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/internal/testenv"
)

// TestFileSumBounded: the watcher's checksum reads at most the read limit
// through a small buffer, however big the file has become (here 256 MiB,
// sparse); a change within the limit still changes it.
func TestFileSumBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cams.yaml")
	if err := os.WriteFile(p, []byte("sink: stdout\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	small, err := fileSum(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 256<<20); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	big, err := fileSum(p)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("fileSum of a 256 MiB file allocated %d KB", alloc>>10)
	}
	if big == small {
		t.Error("the checksum did not change when the file grew")
	}
}

// TestReloadHostileFile: each hostile file (testenv.HostileConfigs: the
// fault report's 100,000-deep list, alias bombs, very many keys, lines of
// a megabyte) saved over the config is rejected by a reload within a
// second, with readable errors, and the daemon keeps its config and keeps
// serving.
func TestReloadHostileFile(t *testing.T) {
	testenv.Integration(t)
	red := testenv.VideoFile(t, testenv.VideoOptions{Name: "red.mp4", Source: "color=c=red", Duration: 3 * time.Second})
	good := fmt.Sprintf(`model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
cameras:
  - name: door
    url: %s
    loop: true
    fps: 4
    labels: [{name: red, threshold: 0.5}]
`, testenv.Model(t, "colour"), red)
	r := startDaemon(t, good, nil)
	for i, h := range testenv.HostileConfigs(good, configs.MaxDepth) {
		if err := os.WriteFile(r.cfgPath, h.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r.reload <- struct{}{}
		testenv.WaitFor(t, 30*time.Second, func() bool {
			return strings.Count(r.logs.String(), "config reload rejected") == i+1
		}, "%s to be rejected", h.Name)
		took := time.Since(start)
		t.Logf("%s: rejected after %s", h.Name, took.Round(time.Millisecond))
		if took > time.Second*testenv.RaceSlowdown {
			t.Errorf("%s: the reload took %s, more than %s", h.Name, took, time.Second*testenv.RaceSlowdown)
		}
	}
	for _, line := range strings.Split(r.logs.String(), "\n") {
		if len(line) > 64<<10 {
			t.Errorf("a log line of %d bytes: %.200s…", len(line), line)
		}
	}
	if st := r.status(); len(st.Cameras) != 1 || st.Cameras[0].Labels[0].Threshold != 0.5 {
		t.Errorf("after the rejected reloads the running config changed: %+v", st.Cameras)
	}
	if code, _ := r.get("/healthz"); code != 200 {
		t.Errorf("/healthz %d after the rejected reloads", code)
	}
}
