package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/rules"
)

// TestRemoteBackendEndToEnd is issue 16's fault story with real parts: two
// daemons, each with its own camera, client_id and topic prefix, score on
// one MLServer serving the colour model's towers over the Open Inference
// Protocol, and publish to one broker. Both see red and start an event.
// The server is killed; the daemons say so (/readyz, /api/status,
// /metrics) and keep running. While it is down the cameras turn grey, and
// once it is back — same daemons, no restart — each ends its red event:
// one start and one end per daemon, nothing lost, nothing twice.
func TestRemoteBackendEndToEnd(t *testing.T) {
	testenv.Integration(t)
	dir := testenv.Model(t, "colour")
	srv := testenv.StartMLServer(t, testenv.Towers(dir, ""))
	broker := testenv.StartMosquitto(t)
	sub := subscribe(t, broker.URL(), "#")
	type edge struct {
		name string
		cam  *testenv.RTSPServer
		d    *running
	}
	var edges []*edge
	for _, name := range []string{"north", "south"} {
		cam := testenv.StartRTSP(t, testenv.RTSPOptions{Color: "ff0000"})
		d := startDaemon(t, fmt.Sprintf(`
state_dir: %s
model: {path: %s}
inference:
  backend: remote
  batch_size: 4
  remote: {url: "grpc://%s", timeout: 5s}
mqtt: {broker: %s, client_id: %s, topic_prefix: %s}
http: {listen: "127.0.0.1:0"}
label_defaults: {threshold: 0.5, min_frames: 2, off_frames: 2, cooldown: 0s}
cameras:
  - name: door
    url: %s
    fps: 4
    labels: [{name: red}, {name: green}]
`, t.TempDir(), dir, srv.Addr(), broker.URL(), name, name, cam.URL()), nil)
		edges = append(edges, &edge{name: name, cam: cam, d: d})
	}
	events := func(prefix, label, typ string) int { return count(sub.eventsUnder(prefix+"/"), label, typ) }
	for _, e := range edges {
		testenv.WaitFor(t, 40*time.Second, func() bool { return events(e.name, "red", "start") == 1 },
			"%s: a start event for red through the remote backend; daemon log:\n%s", e.name, e.d.logs)
		if st := e.d.status().Model; st.Backend != "remote" || st.Server == nil || !st.Server.Up || st.Server.Address != srv.Addr() {
			t.Fatalf("%s: /api/status model %+v, want the remote backend up at %s", e.name, st, srv.Addr())
		}
	}

	srv.Kill()
	for _, e := range edges {
		d := e.d
		testenv.WaitFor(t, 20*time.Second, func() bool { code, _ := d.get("/readyz"); return code == 503 },
			"%s: /readyz 503 with the inference server down", e.name)
		_, body := d.get("/readyz")
		var ready httpapi.Ready
		if err := json.Unmarshal(body, &ready); err != nil || ready.Model || !ready.Sink || !strings.Contains(ready.Reason, "inference server "+srv.Addr()+" is down") {
			t.Errorf("%s: /readyz body %s, want model false, sink true and the server named", e.name, body)
		}
		st := d.status().Model.Server
		if st == nil || st.Up || st.LastError == "" {
			t.Errorf("%s: /api/status server %+v, want down with the error", e.name, st)
		}
		testenv.WaitFor(t, 20*time.Second, func() bool {
			fams := d.metrics()
			return counterSum(fams, "siglipd_inference_server_up") == 0 && counterSum(fams, "siglipd_frames_failed_total") > 0
		}, "%s: /metrics to show the server down and frames failing", e.name)
		e.cam.SetColor(color.RGBA{128, 128, 128, 255})
	}
	// Nothing can end while nobody scores: the grey frames are not seen.
	for _, e := range edges {
		if n := events(e.name, "red", "end"); n != 0 {
			t.Fatalf("%s: %d end events while the server was down", e.name, n)
		}
	}

	downAt := time.Now()
	srv.Start()
	for _, e := range edges {
		d := e.d
		testenv.WaitFor(t, 40*time.Second, func() bool { return events(e.name, "red", "end") == 1 },
			"%s: the red event to end once the server is back; daemon log:\n%s", e.name, d.logs)
		testenv.WaitFor(t, 20*time.Second, func() bool { code, _ := d.get("/readyz"); return code == 200 },
			"%s: /readyz 200 again", e.name)
		fams := d.metrics()
		if counterSum(fams, "siglipd_inference_server_up") != 1 || counterSum(fams, "siglipd_inference_server_failures_total") == 0 {
			t.Errorf("%s: after recovery server_up %v, failures %v", e.name,
				counterSum(fams, "siglipd_inference_server_up"), counterSum(fams, "siglipd_inference_server_failures_total"))
		}
		t.Logf("%s: red ended %s after the restart began (MLServer's start included); %v frames failed while the server was down",
			e.name, time.Since(downAt).Round(100*time.Millisecond), counterSum(fams, "siglipd_frames_failed_total"))
	}
	for _, e := range edges {
		e.d.stop()
	}
	for _, e := range edges {
		for _, c := range []struct {
			label, typ string
			want       int
		}{{"red", "start", 1}, {"red", "end", 1}, {"green", "start", 0}} {
			if n := events(e.name, c.label, c.typ); n != c.want {
				t.Errorf("%s: %d %s %s events, want %d", e.name, n, c.label, c.typ, c.want)
			}
		}
	}
}

// eventsUnder is the events received on topics that start with prefix.
func (s *subscriber) eventsUnder(prefix string) []rules.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var evs []rules.Event
	for _, m := range s.msgs {
		var ev rules.Event
		if strings.HasPrefix(m.Topic(), prefix) && strings.HasSuffix(m.Topic(), "/events") && json.Unmarshal(m.Payload(), &ev) == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

// starting is a daemon run in-process whose start a test watches: unlike
// startDaemon, it returns at once, so the test can act while the daemon
// waits (or fails) at start.
type starting struct {
	t            *testing.T
	logs, stdout *testenv.SyncBuffer
	ready        chan struct{}
	done         chan error
	cancel       context.CancelFunc
}

func startAsync(t *testing.T, yaml string) *starting {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cams.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &starting{t: t, logs: &testenv.SyncBuffer{}, stdout: &testenv.SyncBuffer{}, ready: make(chan struct{}), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	opts := Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Stdout: s.stdout}
	go func() { s.done <- run(ctx, cfg, opts, hooks{ready: s.ready}) }()
	t.Cleanup(func() {
		if s.cancel != nil {
			s.stop()
		}
	})
	return s
}

// running waits until the daemon runs; the test fails if it exits first.
func (s *starting) running(within time.Duration) {
	s.t.Helper()
	select {
	case <-s.ready:
	case err := <-s.done:
		s.cancel = nil
		s.t.Fatalf("the daemon exited: %v\n%s", err, s.logs)
	case <-time.After(within):
		s.t.Fatalf("the daemon was not running within %s\n%s", within, s.logs)
	}
}

// exited waits for the daemon to stop at start and returns its error.
func (s *starting) exited(within time.Duration) error {
	s.t.Helper()
	select {
	case err := <-s.done:
		s.cancel = nil
		return err
	case <-s.ready:
		s.t.Fatalf("the daemon ran\n%s", s.logs)
	case <-time.After(within):
		s.t.Fatalf("the daemon neither ran nor exited within %s\n%s", within, s.logs)
	}
	return nil
}

// stop cancels a running daemon and checks it stopped cleanly.
func (s *starting) stop() {
	s.cancel()
	s.cancel = nil
	if err := <-s.done; err != nil {
		s.t.Errorf("stop: %v", err)
	}
}

// TestRemoteServerStartsLate: a daemon whose inference server is not up
// yet waits for it (logging each attempt) instead of exiting, and runs as
// soon as the server is there: daemons and their server often start
// together, and an orchestrator should not have to order them.
func TestRemoteServerStartsLate(t *testing.T) {
	testenv.Integration(t)
	dir := testenv.Model(t, "colour")
	srv := testenv.NewMLServer(t, testenv.Towers(dir, ""), testenv.MLServerOptions{Threads: 1})
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=red", Duration: 3 * time.Second})
	d := startAsync(t, fmt.Sprintf(`
state_dir: %s
model: {path: %s}
inference: {backend: remote, remote: {url: "grpc://%s", timeout: 5s}}
sink: stdout
http: {listen: "127.0.0.1:0"}
cameras: [{name: door, url: %s, loop: true, fps: 2, labels: [{name: red, threshold: 0.5}]}]
`, t.TempDir(), dir, srv.Addr(), video))

	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(d.logs.String(), "attempt=3") },
		"three attempts to reach the server that is not there")
	select {
	case err := <-d.done:
		d.cancel = nil
		t.Fatalf("the daemon exited while its server was not up: %v\n%s", err, d.logs)
	case <-d.ready:
		t.Fatalf("the daemon ran without its server\n%s", d.logs)
	default:
	}
	if !strings.Contains(d.logs.String(), "waiting for the inference server") || !strings.Contains(d.logs.String(), srv.Addr()) {
		t.Errorf("the log does not say what it waits for:\n%s", d.logs)
	}
	srv.Start()
	d.running(30 * time.Second)
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(d.stdout.String(), `"type":"start"`) },
		"the red event once the server is up")
	d.stop()
}

// TestRemoteTLSAndHeaders: inference.remote's TLS and headers reach the
// server. MLServer, behind a TLS-terminating proxy (as behind an ingress),
// refuses inference without the bearer token; the daemon with the CA file
// and the token runs and scores, one with a wrong token is refused at
// start naming the refusal, and the token appears in no log line.
func TestRemoteTLSAndHeaders(t *testing.T) {
	testenv.Integration(t)
	dir := testenv.Model(t, "colour")
	srv := testenv.StartMLServerWith(t, testenv.Towers(dir, ""), testenv.MLServerOptions{Threads: 1, RequireHeader: "authorization: Bearer S3cretTok"})
	proxy := testenv.StartTLSProxy(t, srv.Addr())
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=red", Duration: 3 * time.Second})
	for _, tc := range []struct {
		name, token, wantErr string
	}{
		{"TLS and the token", "Bearer S3cretTok", ""},
		{"a wrong token", "Bearer nope", `vision tower model "siglip_vision" on ` + proxy.Addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startAsync(t, fmt.Sprintf(`
state_dir: %s
model: {path: %s}
inference:
  backend: remote
  remote:
    url: grpcs://%s
    timeout: 5s
    tls: {ca_file: %s}
    headers: [{name: authorization, value: "%s"}]
sink: stdout
http: {listen: ""}
cameras: [{name: door, url: %s, loop: true, fps: 2, labels: [{name: red, threshold: 0.5}]}]
`, t.TempDir(), dir, proxy.Addr, proxy.Files.CAFile, tc.token, video))
			if tc.wantErr != "" {
				err := d.exited(30 * time.Second)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "missing or wrong") {
					t.Errorf("start: %v, want an error with %q and the server's refusal", err, tc.wantErr)
				}
			} else {
				d.running(30 * time.Second)
				testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(d.stdout.String(), `"type":"start"`) },
					"the red event through TLS with the token")
				d.stop()
			}
			if strings.Contains(d.logs.String(), "S3cretTok") {
				t.Errorf("the token is in the log:\n%s", d.logs)
			}
		})
	}
}

// TestRemoteSlowServer: a server that answers within the timeout but
// slower than the cameras ask keeps the latest frame winning: frames are
// dropped and counted, none waits longer than max_batch_wait and one
// batch, and the server counts as up (slow is not down).
func TestRemoteSlowServer(t *testing.T) {
	testenv.Integration(t)
	dir := testenv.Model(t, "tiny")
	srv := testenv.StartMLServerWith(t, testenv.Towers(dir, ""), testenv.MLServerOptions{Threads: 1, Slow: []string{"siglip_vision"}}) // 2 s per batch
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "testsrc2", Duration: 4 * time.Second})
	var cams strings.Builder
	for i := range 2 {
		fmt.Fprintf(&cams, "  - {name: cam%d, url: %s, loop: true, fps: 4, skip_unchanged: {enabled: false}, labels: [{name: car}]}\n", i, video)
	}
	r := startDaemon(t, fmt.Sprintf(`
state_dir: %s
model: {path: %s}
inference: {backend: remote, batch_size: 4, max_batch_wait: 100ms, remote: {url: "grpc://%s", timeout: 10s}}
sink: stdout
http: {listen: "127.0.0.1:0"}
cameras:
%s`, t.TempDir(), dir, srv.Addr(), cams.String()), nil)
	testenv.WaitFor(t, 40*time.Second, func() bool {
		fams := r.metrics()
		return counterSum(fams, "siglipd_frames_dropped_total") >= 8 && counterSum(fams, "siglipd_frames_scored_total") >= 4
	}, "frames dropped (latest wins) and still scored while each batch takes 2 s")
	fams := r.metrics()
	inf := histogram(t, fams, "siglipd_inference_seconds")
	bound := 0.1 + bucketAbove(inf, inf.GetSampleCount())
	wait := histogram(t, fams, "siglipd_frame_wait_seconds")
	if within := cumulativeAt(wait, bound); within != wait.GetSampleCount() {
		t.Errorf("%d of %d frames waited longer than max_batch_wait + one batch (%.1f s): a queue grew",
			wait.GetSampleCount()-within, wait.GetSampleCount(), bound)
	}
	if code, body := r.get("/readyz"); code != 200 || counterSum(fams, "siglipd_frames_failed_total") != 0 {
		t.Errorf("a slow server: /readyz %d %s, %v frames failed; want ready and none failed", code, body, counterSum(fams, "siglipd_frames_failed_total"))
	}
	t.Logf("sampled %v, dropped %v, scored %v frames; mean batch %.1f s",
		counterSum(fams, "siglipd_frames_sampled_total"), counterSum(fams, "siglipd_frames_dropped_total"),
		counterSum(fams, "siglipd_frames_scored_total"), inf.GetSampleSum()/float64(inf.GetSampleCount()))
}

// TestRemoteProbeWhileIdle: with no frame to score (the only camera is
// unreachable), the daemon still notices its server going away and coming
// back, by asking it every few seconds: /readyz follows the server.
func TestRemoteProbeWhileIdle(t *testing.T) {
	testenv.Integration(t)
	dir := testenv.Model(t, "tiny")
	srv := testenv.StartMLServer(t, testenv.Towers(dir, ""))
	r := startDaemon(t, fmt.Sprintf(`
state_dir: %s
model: {path: %s}
inference: {backend: remote, remote: {url: "grpc://%s", timeout: 2s}}
sink: stdout
http: {listen: "127.0.0.1:0"}
cameras: [{name: gone, url: "rtsp://127.0.0.1:%d/none", labels: [{name: car}]}]
`, t.TempDir(), dir, srv.Addr(), testenv.FreePort(t)), nil)
	ready := func() bool { code, _ := r.get("/readyz"); return code == 200 }
	testenv.WaitFor(t, 10*time.Second, ready, "/readyz 200 with the server up")
	srv.Kill()
	testenv.WaitFor(t, 3*serverProbeInterval, func() bool { return !ready() }, "/readyz 503 after the server died, with no frame scored")
	srv.Start()
	testenv.WaitFor(t, 3*serverProbeInterval, ready, "/readyz 200 again once the server is back")
	if n := counterSum(r.metrics(), "siglipd_frames_scored_total"); n != 0 {
		t.Errorf("%v frames scored from an unreachable camera", n)
	}
}
