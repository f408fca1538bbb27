package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/siglipd/siglipd/internal/testenv"
)

// TestHealthcheck: `siglipd healthcheck` answers 0 while the daemon runs
// (with the token it needs; over loopback when it listens on all
// addresses), 1 once it is gone, and 2 for a config without a server.
func TestHealthcheck(t *testing.T) {
	testenv.Integration(t)
	lib := testenv.ORTLib(t)
	port := testenv.FreePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`model: {path: %s}
sink: stdout
http: {listen: "0.0.0.0:%d", token: hc-secret}
cameras: [{name: door, url: /videos/door.mp4, labels: [{name: person}]}]
`, testenv.Model(t, "tiny"), port))
	cmd, _, _ := startBinary(t, lib, cfg)

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"healthcheck", "--config", cfg}, exitOK, "/healthz: ok"},
		{[]string{"healthcheck", "--config", cfg, "--ready"}, exitOK, `"ready": true`}, // needs the token
	} {
		out, errOut, code := run(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tt.args, code, tt.code, tt.want, out, errOut)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if _, errOut, code := run(t, nil, "healthcheck", "--config", cfg); code != exitFailure || !strings.Contains(errOut, "connection refused") {
		t.Errorf("daemon stopped: exit %d, want 1 with the reason:\n%s", code, errOut)
	}
	noHTTP := writeConfig(t, "model: {path: /m}\nsink: stdout\nhttp: {listen: \"\"}\ncameras: [{name: door, url: /v.mp4, labels: [{name: person}]}]\n")
	if _, errOut, code := run(t, nil, "healthcheck", "--config", noHTTP); code != exitUsage || !strings.Contains(errOut, "http.listen is empty") {
		t.Errorf("no http.listen: exit %d, want 2:\n%s", code, errOut)
	}
}

func TestLoopback(t *testing.T) {
	for listen, want := range map[string]string{
		":8080": "127.0.0.1:8080", "0.0.0.0:8080": "127.0.0.1:8080", "[::]:8080": "[::1]:8080",
		"127.0.0.1:9": "127.0.0.1:9", "192.168.1.5:8080": "192.168.1.5:8080", "nvr.lan:80": "nvr.lan:80",
	} {
		if got := loopback(listen); got != want {
			t.Errorf("loopback(%q) = %q, want %q", listen, got, want)
		}
	}
}
