package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/siglipd/siglipd/internal/testenv"
)

// TestSearchCommand: `siglipd search` asks the running daemon (with its
// token) and prints the moments found, best first; usage errors exit 2, a
// daemon that is not there 1.
func TestSearchCommand(t *testing.T) {
	testenv.Integration(t)
	lib := testenv.ORTLib(t)
	port := testenv.FreePort(t)
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=gray", Duration: 4 * time.Second,
		Filter: "drawbox=x=0:y=0:w=iw:h=ih:color=yellow:t=fill:enable='between(t,1,3)'"})
	cfg := writeConfig(t, fmt.Sprintf(`state_dir: %s
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:%d", token: search-secret}
store: {every: 1s}
cameras: [{name: garden, url: %s, loop: true, fps: 4, labels: [{name: blue}]}]
`, t.TempDir(), testenv.Model(t, "colour"), port, video))
	cmd, _, _ := startBinary(t, lib, cfg)
	var out, errOut string
	ok := testenv.Eventually(30*time.Second, func() bool {
		o, e, code := run(t, nil, "search", "--config", cfg, "--since", "10m", "something", "yellow")
		out, errOut = o, e
		return code == exitOK && strings.Contains(o, "garden")
	})
	if !ok {
		t.Fatalf("no yellow moment on the garden camera; last output:\n%s%s", out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[1], "PROBABILITY") || !strings.HasPrefix(lines[2], "1.000") || !strings.Contains(lines[2], "/thumbnail.jpg") {
		t.Errorf("output:\n%s", out)
	}
	if o, _, code := run(t, nil, "search", "--config", cfg, "--json", "yellow"); code != exitOK || !strings.Contains(o, `"moments"`) {
		t.Errorf("--json: exit %d\n%s", code, o)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"search", "--config", cfg}, exitUsage, "give a text"},
		{[]string{"search", "yellow"}, exitUsage, "--config FILE is required"},
		{[]string{"search", "--config", cfg, "--since", "yesterday", "yellow"}, exitUsage, "since"},
		{[]string{"search", "--config", cfg, "--similar", "1", "yellow"}, exitUsage, "not both"},
	} {
		o, e, code := run(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(o+e, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tt.args, code, tt.code, tt.want, o, e)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if _, e, code := run(t, nil, "search", "--config", cfg, "yellow"); code != exitFailure || !strings.Contains(e, "is the daemon running?") {
		t.Errorf("daemon stopped: exit %d, want 1:\n%s", code, e)
	}
}
