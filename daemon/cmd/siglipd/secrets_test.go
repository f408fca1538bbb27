package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/internal/testenv"
)

// TestNoSecretInAnyOutput runs siglipd with credentials in every place a
// URL can carry them — the broker URL's user:password, an RTSP camera's,
// an HTTP camera's query string (?pwd=), and a camera that cannot be
// reached, with both — and greps every channel a user or another program
// sees: the log in text and in JSON, --check, /api/status, /metrics, the
// page, a snapshot, and every MQTT message and topic. No secret may appear;
// the redacted URLs must (so the test sees the places it checks).
func TestNoSecretInAnyOutput(t *testing.T) {
	testenv.Integration(t)
	lib := testenv.ORTLib(t)
	secrets := []string{"BrokerSecret1", "RtspSecret2", "QuerySecret3", "GoneSecret4", "GoneToken5"}

	broker := testenv.StartMosquitto(t, testenv.WithPassword("siglipd", secrets[0]))
	cam := testenv.StartRTSP(t, testenv.RTSPOptions{Width: 320, Height: 240})
	web := httptest.NewServer(mjpegWithQueryAuth(t, "admin", secrets[2]))
	t.Cleanup(web.Close) // after siglipd is killed (cleanups run last first): it holds a stream open
	closed := testenv.FreePort(t)
	dir := t.TempDir()
	config := func(httpPort int) string {
		return writeConfig(t, fmt.Sprintf(`model: {path: %s}
state_dir: %s
http: {listen: "127.0.0.1:%d"}
mqtt:
  broker: "tcp://siglipd:%s@%s"
  scores: {enabled: true, interval: 500ms}
  snapshots: {enabled: true}
cameras:
  - {name: door, url: "rtsp://admin:%s@%s/cam", fps: 2, labels: [{name: red, threshold: 0.01, min_frames: 1}]}
  - {name: web, url: "%s/video.mjpg?user=admin&pwd=%s", fps: 2, labels: [{name: person}]}
  - {name: gone, url: "http://admin:%s@127.0.0.1:%d/snap.mjpg?channel=1&token=%s", read_timeout: 1s, labels: [{name: x}]}
`, testenv.Model(t, "tiny"), filepath.Join(dir, "state"), httpPort, secrets[0], broker.Addr(), secrets[1], cam.Addr(), web.URL, secrets[2],
			secrets[3], closed, secrets[4]))
	}

	var seen []struct{ where, text string }
	add := func(where, text string) { seen = append(seen, struct{ where, text string }{where, text}) }

	stdout, stderr, code := run(t, []string{"SIGLIPD_ORT_LIB=" + lib}, "--config", config(0), "--check")
	if code != 0 {
		t.Fatalf("--check: exit %d\n%s", code, stderr)
	}
	add("--check", stdout+stderr)

	sub := testenv.SubscribeAll(t, broker.URL(), "siglipd", secrets[0])
	for _, format := range []string{"text", "json"} {
		port := testenv.FreePort(t)
		var logs testenv.SyncBuffer
		cmd := exec.Command(siglipdBin, "--config", config(port), "--log-format", format, "--log-level", "debug")
		cmd.Env = append(cmd.Environ(), "SIGLIPD_ORT_LIB="+lib)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() }) // if the test fails first; harmless after Wait
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		states := func() map[string]string {
			var st httpapi.Status
			json.Unmarshal([]byte(get(base+"/api/status")), &st)
			m := map[string]string{}
			for _, c := range st.Cameras {
				m[c.Name] = c.State
			}
			return m
		}
		if !testenv.Eventually(60*time.Second, func() bool {
			s := states()
			return s["door"] == "connected" && s["web"] == "connected" && s["gone"] == "reconnecting"
		}) {
			t.Fatalf("cameras %v, want door and web connected, gone reconnecting (%s log):\n%s", states(), format, logs.String())
		}
		if !testenv.Eventually(30*time.Second, func() bool { return strings.Contains(sub.All(), "/score ") }) {
			t.Fatalf("no score messages over MQTT; got:\n%s\nlog:\n%s", sub.All(), logs.String())
		}
		for _, path := range []string{"/api/status", "/metrics", "/", "/api/cameras/door/snapshot.jpg", "/readyz"} {
			add(format+" run: GET "+path, get(base+path))
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("siglipd (%s log) exited with %v\n%s", format, err, logs.String())
		}
		add(format+" log", logs.String())
	}
	add("MQTT", sub.All())

	for _, s := range seen {
		for _, secret := range secrets {
			if strings.Contains(s.text, secret) {
				i := strings.Index(s.text, secret)
				t.Errorf("%s shows the secret %s: …%s…", s.where, secret, s.text[max(i-80, 0):min(i+40, len(s.text))])
			}
		}
	}
	// The redacted forms are there: the URLs were shown, not left out.
	all := ""
	for _, s := range seen {
		all += s.text
	}
	for _, want := range []string{"tcp://siglipd:***@", "rtsp://admin:***@", "pwd=***", "http://admin:***@", "token=***"} {
		if !strings.Contains(all, want) {
			t.Errorf("no output shows %q: the test did not see the URL it checks", want)
		}
	}
}

// get returns the body of url, or "" on any error (the caller waits on it).
func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// mjpegWithQueryAuth serves a small MJPEG stream at /video.mjpg to requests
// that carry ?user=...&pwd=..., as cheap HTTP cameras check credentials.
func mjpegWithQueryAuth(t *testing.T, user, password string) http.Handler {
	var frame bytes.Buffer
	if err := jpeg.Encode(&frame, image.NewRGBA(image.Rect(0, 0, 160, 120)), nil); err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/video.mjpg" || q.Get("user") != user || q.Get("pwd") != password {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		testenv.WriteMJPEG(w, r, 100*time.Millisecond, func(int) ([]byte, error) { return frame.Bytes(), nil })
	})
}
