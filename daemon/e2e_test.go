package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/siglipd/siglipd/configs"
	"github.com/siglipd/siglipd/daemon/httpapi"
	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/rules"
)

// running is a daemon run in-process by a test.
type running struct {
	t       *testing.T
	cfgPath string
	base    string // http://addr
	stdout  *testenv.SyncBuffer
	logs    *testenv.SyncBuffer
	reload  chan struct{}
	cancel  context.CancelFunc
	done    chan error
}

// startDaemon writes the YAML config, runs the daemon and waits until it
// serves HTTP; the test's cleanup stops it and checks it stopped cleanly
// within ShutdownTimeout.
func startDaemon(t *testing.T, yaml string, mod func(*hooks)) *running {
	t.Helper()
	lib := testenv.ORTLib(t)
	r := &running{t: t, cfgPath: filepath.Join(t.TempDir(), "cams.yaml"), stdout: &testenv.SyncBuffer{},
		logs: &testenv.SyncBuffer{}, reload: make(chan struct{}, 1), done: make(chan error, 1)}
	if err := os.WriteFile(r.cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(r.cfgPath)
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	ready, addr := make(chan struct{}), make(chan string, 1)
	opts := Options{
		ConfigPath: r.cfgPath, Logger: slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ORTLib: infer.LibraryChoice{Env: lib}, Reload: r.reload, Stdout: r.stdout,
	}
	h := hooks{ready: ready, httpAddr: addr}
	if mod != nil {
		mod(&h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- run(ctx, cfg, opts, h) }()
	select {
	case a := <-addr:
		r.base = "http://" + a
	case err := <-r.done:
		t.Fatalf("daemon exited at start: %v\n%s", err, r.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon did not start within 60s\n%s", r.logs.String())
	}
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("daemon exited at start: %v\n%s", err, r.logs.String())
	}
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels the daemon and waits for it (once).
func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	start := time.Now()
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("daemon stopped with an error: %v", err)
		}
		if took := time.Since(start); took > ShutdownTimeout {
			r.t.Errorf("stopping took %s, more than %s", took, ShutdownTimeout)
		}
	case <-time.After(ShutdownTimeout + 5*time.Second):
		r.t.Errorf("daemon did not stop within %s\n%s", ShutdownTimeout+5*time.Second, r.logs.String())
	}
	if r.t.Failed() {
		r.t.Logf("daemon log:\n%s", r.logs.String())
	}
}

// testClient bounds every request a test makes: a handler that hangs
// fails the test instead of hanging it.
var testClient = &http.Client{Timeout: 15 * time.Second}

func (r *running) get(path string) (int, []byte) {
	r.t.Helper()
	resp, err := testClient.Get(r.base + path)
	if err != nil {
		r.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (r *running) status() httpapi.Status {
	r.t.Helper()
	code, b := r.get("/api/status")
	var st httpapi.Status
	if code != 200 || json.Unmarshal(b, &st) != nil {
		r.t.Fatalf("/api/status: %d %s", code, b)
	}
	return st
}

func (r *running) camera(name string) httpapi.Camera {
	for _, c := range r.status().Cameras {
		if c.Name == name {
			return c
		}
	}
	return httpapi.Camera{}
}

// history is /api/history of one label (empty when it cannot be read).
func (r *running) history(camera, label string) httpapi.History {
	var h httpapi.History
	if code, body := r.get("/api/history?camera=" + camera + "&label=" + label); code == 200 {
		json.Unmarshal(body, &h)
	}
	return h
}

// metrics scrapes /metrics and parses it with Prometheus' text parser.
func (r *running) metrics() map[string]*dto.MetricFamily {
	r.t.Helper()
	code, b := r.get("/metrics")
	if code != 200 {
		r.t.Fatalf("/metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		r.t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// subscriber collects MQTT messages from a real client.
type subscriber struct {
	mu   sync.Mutex
	msgs []mqtt.Message
	at   []time.Time
}

func subscribe(t *testing.T, broker, topic string) *subscriber {
	t.Helper()
	s := &subscriber{}
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("test-sub-%d", time.Now().UnixNano())).SetAutoReconnect(true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		s.mu.Lock()
		s.msgs, s.at = append(s.msgs, m), append(s.at, time.Now())
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return s
}

// events returns the events received so far with their arrival times.
func (s *subscriber) events() ([]rules.Event, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var evs []rules.Event
	var at []time.Time
	for i, m := range s.msgs {
		if strings.HasSuffix(m.Topic(), "/events") {
			var ev rules.Event
			if json.Unmarshal(m.Payload(), &ev) == nil {
				evs, at = append(evs, ev), append(at, s.at[i])
			}
		}
	}
	return evs, at
}

func (s *subscriber) got(topic, payload string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if m.Topic() == topic && string(m.Payload()) == payload {
			return true
		}
	}
	return false
}

func count(evs []rules.Event, label, typ string) int {
	n := 0
	for _, e := range evs {
		if e.Label == label && e.Type == typ {
			n++
		}
	}
	return n
}

// TestEndToEndRedThenGrey is the product end to end: a real RTSP camera
// shows red for 3 s, then grey; the colour model, the batcher, rules and
// MQTT must deliver exactly one start and one end for "red" (and nothing
// for green or blue) to a real subscriber.
func TestEndToEndRedThenGrey(t *testing.T) {
	testenv.Integration(t)
	broker := testenv.StartMosquitto(t)
	cam := testenv.StartRTSP(t, testenv.RTSPOptions{Color: "ff0000"})
	sub := subscribe(t, broker.URL(), "siglipd/#")
	r := startDaemon(t, fmt.Sprintf(`
state_dir: %s
model: {path: %s}
mqtt: {broker: %s, client_id: e2e}
http: {listen: "127.0.0.1:0"}
label_defaults: {threshold: 0.5, min_frames: 2, off_frames: 2, cooldown: 0s}
cameras:
  - name: door
    url: %s
    fps: 4
    labels: [{name: red}, {name: green}, {name: blue}]
`, t.TempDir(), testenv.Model(t, "colour"), broker.URL(), cam.URL()), nil)

	testenv.WaitFor(t, 30*time.Second, func() bool { evs, _ := sub.events(); return count(evs, "red", "start") > 0 },
		"a start event for red; daemon log:\n%s", r.logs)
	redSince := time.Now()
	// Keep showing red for 3 s in all (the start took part of it).
	testenv.WaitFor(t, 5*time.Second, func() bool { return time.Since(redSince) >= 2*time.Second }, "red to show")
	cam.SetColor(color.RGBA{128, 128, 128, 255})
	testenv.WaitFor(t, 15*time.Second, func() bool { evs, _ := sub.events(); return count(evs, "red", "end") > 0 },
		"an end event for red after the picture turned grey")
	// Stop cleanly: every event is out once "offline" arrives.
	r.stop()
	testenv.WaitFor(t, 10*time.Second, func() bool { return sub.got("siglipd/available", "offline") }, "offline after shutdown")

	evs, at := sub.events()
	if count(evs, "red", "start") != 1 || count(evs, "red", "end") != 1 {
		t.Errorf("red: %d start, %d end events; want exactly one each: %+v", count(evs, "red", "start"), count(evs, "red", "end"), evs)
	}
	for _, l := range []string{"green", "blue"} {
		if n := count(evs, l, "start"); n != 0 {
			t.Errorf("%d start events for %s; want none", n, l)
		}
	}
	for i, e := range evs {
		if e.Label == "red" && e.Type == "start" {
			t.Logf("frame→event latency (capture to MQTT subscriber): %s", at[i].Sub(e.FrameTime).Round(time.Millisecond))
		}
		if e.Label == "red" && e.Type == "end" {
			t.Logf("red event lasted %s (start %s, end %s)", e.EndTime.Sub(e.StartTime).Round(time.Millisecond),
				e.StartTime.Format("15:04:05.000"), e.EndTime.Format("15:04:05.000"))
		}
	}
	if !sub.got("siglipd/door/red/state", "ON") || !sub.got("siglipd/door/red/state", "OFF") {
		t.Error("the retained state of door/red did not go ON and OFF")
	}
}

// slowClassifier makes inference slower than the cameras, as an
// overloaded box would.
type slowClassifier struct {
	infer.Classifier
	delay time.Duration
}

func (s slowClassifier) EmbedImages(images []infer.Image) ([][]float32, error) {
	time.Sleep(s.delay)
	return s.Classifier.EmbedImages(images)
}

func fourCameraConfig(t *testing.T, batch int, maxWait string) string {
	var cams strings.Builder
	for i := 0; i < 4; i++ {
		video := testenv.VideoFile(t, testenv.VideoOptions{Name: fmt.Sprintf("cam%d.mp4", i), Duration: 4 * time.Second})
		fmt.Fprintf(&cams, "  - {name: cam%d, url: %s, fps: 2, loop: true, labels: [{name: car}, {name: person}]}\n", i, video)
	}
	return fmt.Sprintf(`
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
inference: {batch_size: %d, max_batch_wait: %s}
cameras:
%s`, testenv.Model(t, "tiny"), batch, maxWait, cams.String())
}

func histogram(t *testing.T, fams map[string]*dto.MetricFamily, name string) *dto.Histogram {
	t.Helper()
	f, ok := fams[name]
	if !ok || len(f.Metric) == 0 {
		t.Fatalf("/metrics has no %s", name)
	}
	return f.Metric[0].Histogram
}

// cameraGauge is the value of the gauge name for camera (0 when absent).
func cameraGauge(fams map[string]*dto.MetricFamily, name, camera string) float64 {
	if f, ok := fams[name]; ok {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "camera" && l.GetValue() == camera && m.Gauge != nil {
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func counterSum(fams map[string]*dto.MetricFamily, name string) float64 {
	var sum float64
	if f, ok := fams[name]; ok {
		for _, m := range f.Metric {
			if m.Counter != nil {
				sum += m.Counter.GetValue()
			}
			if m.Gauge != nil {
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// TestBatchingEndToEnd: four cameras at 2 fps on the tiny model are scored in
// batches of more than one frame; no frame waits longer than
// max_batch_wait plus one inference; and when inference is slower than the
// cameras, frames are dropped (counted) instead of queueing.
func TestBatchingEndToEnd(t *testing.T) {
	testenv.Integration(t)
	const maxWait = 150 * time.Millisecond
	t.Run("batches and frame age", func(t *testing.T) {
		r := startDaemon(t, fourCameraConfig(t, 4, maxWait.String()), nil)
		testenv.WaitFor(t, 30*time.Second, func() bool {
			return histogram(t, r.metrics(), "siglipd_batch_size").GetSampleCount() >= 12
		}, "12 batches")
		fams := r.metrics()
		bs := histogram(t, fams, "siglipd_batch_size")
		single := bs.Bucket[0].GetCumulativeCount() // le=1
		t.Logf("%d batches, %d frames, %d of them single-frame", bs.GetSampleCount(), int(bs.GetSampleSum()), single)
		if single == bs.GetSampleCount() {
			t.Errorf("every batch had one frame; the batcher never combined cameras")
		}
		// The oldest frame may wait one inference plus max_batch_wait.
		inf := histogram(t, fams, "siglipd_inference_seconds")
		slowest := bucketAbove(inf, inf.GetSampleCount())
		bound := maxWait.Seconds() + slowest
		wait := histogram(t, fams, "siglipd_frame_wait_seconds")
		within := cumulativeAt(wait, bound)
		t.Logf("frame wait: mean %.1f ms; slowest inference ≤ %.0f ms; %d of %d frames waited ≤ %.0f ms",
			1000*wait.GetSampleSum()/float64(wait.GetSampleCount()), 1000*slowest, within, wait.GetSampleCount(), 1000*bound)
		if within != wait.GetSampleCount() {
			t.Errorf("%d frames waited longer than max_batch_wait + one inference (%.0f ms)", wait.GetSampleCount()-within, 1000*bound)
		}
		if d := counterSum(fams, "siglipd_frames_dropped_total"); d != 0 {
			t.Logf("(%v frames dropped with fast inference)", d)
		}
	})
	t.Run("slow inference drops frames", func(t *testing.T) {
		// Opened before the daemon starts, so its Close (a cleanup) runs
		// after the daemon has stopped.
		model, err := infer.Open(infer.Options{Dir: testenv.Model(t, "tiny"), Library: infer.LibraryChoice{Env: testenv.ORTLib(t)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { model.Close() })
		r := startDaemon(t, fourCameraConfig(t, 4, maxWait.String()), func(h *hooks) {
			h.classifier = slowClassifier{Classifier: model, delay: 1500 * time.Millisecond}
		})
		testenv.WaitFor(t, 30*time.Second, func() bool {
			fams := r.metrics()
			return counterSum(fams, "siglipd_frames_dropped_total") >= 4 && counterSum(fams, "siglipd_frames_scored_total") >= 4
		}, "drop counters to move, and frames still to be scored, while inference takes 1.5 s a batch")
		fams := r.metrics()
		t.Logf("sampled %v, dropped %v, scored %v frames", counterSum(fams, "siglipd_frames_sampled_total"),
			counterSum(fams, "siglipd_frames_dropped_total"), counterSum(fams, "siglipd_frames_scored_total"))
	})
}

// bucketAbove is the smallest bucket bound holding all n observations.
func bucketAbove(h *dto.Histogram, n uint64) float64 {
	for _, b := range h.Bucket {
		if b.GetCumulativeCount() >= n {
			return b.GetUpperBound()
		}
	}
	return 1e9
}

// cumulativeAt counts observations in buckets whose bound is at most x,
// plus the first bucket past x (its bound is the histogram's resolution).
func cumulativeAt(h *dto.Histogram, x float64) uint64 {
	for _, b := range h.Bucket {
		if b.GetUpperBound() >= x {
			return b.GetCumulativeCount()
		}
	}
	return h.GetSampleCount()
}

// TestMetricsAndReadyz: /metrics parses with Prometheus' own parser and has
// the families operators alert on; /readyz turns unready when the broker
// goes away and ready again when it is back. A camera that decodes key
// frames only beside one that decodes all: both show their keyframe rate
// (one a second), in /metrics and /api/status, and what they decode.
func TestMetricsAndReadyz(t *testing.T) {
	testenv.Integration(t)
	broker := testenv.StartMosquitto(t)
	video := testenv.VideoFile(t, testenv.VideoOptions{Source: "color=c=red", Duration: 3 * time.Second})
	r := startDaemon(t, fmt.Sprintf(`
state_dir: %s
model: {path: %s}
mqtt: {broker: %s, client_id: readyz}
http: {listen: "127.0.0.1:0"}
cameras:
  - {name: door, url: %s, loop: true, fps: 2, labels: [{name: red, threshold: 0.5}]}
  - {name: yard, url: %[4]s, loop: true, fps: 1, decode: keyframes, labels: [{name: red, threshold: 0.5}]}
`, t.TempDir(), testenv.Model(t, "colour"), broker.URL(), video), nil)
	ready := func() bool { code, _ := r.get("/readyz"); return code == 200 }
	testenv.WaitFor(t, 15*time.Second, ready, "/readyz 200 with the broker up")
	testenv.WaitFor(t, 15*time.Second, func() bool {
		return counterSum(r.metrics(), "siglipd_events_total") >= 1
	}, "the red event to be counted")
	fams := r.metrics()
	for _, name := range []string{"siglipd_frames_decoded_total", "siglipd_frames_sampled_total", "siglipd_frames_dropped_total",
		"siglipd_frames_scored_total", "siglipd_batch_size", "siglipd_inference_seconds", "siglipd_frame_to_event_seconds",
		"siglipd_events_total", "siglipd_outbox_depth", "siglipd_camera_reconnects_total", "siglipd_sink_connected",
		"siglipd_label_probability", "siglipd_build_info", "siglipd_frames_failed_total", "siglipd_inference_server_up",
		"siglipd_inference_server_failures_total", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if up := counterSum(fams, "siglipd_inference_server_up"); up != 1 {
		t.Errorf("siglipd_inference_server_up %v with the local backend, want 1", up)
	}
	// The file has a key frame a second; the first of a connection is not
	// measured, so the rate is known from its third on.
	testenv.WaitFor(t, 15*time.Second, func() bool {
		fams := r.metrics()
		return cameraGauge(fams, "siglipd_camera_keyframe_rate", "door") > 0 && cameraGauge(fams, "siglipd_camera_keyframe_rate", "yard") > 0
	}, "both cameras' keyframe rates in /metrics")
	fams = r.metrics()
	for _, cam := range []struct{ name, decode string }{{"door", "all"}, {"yard", "keyframes"}} {
		rate := cameraGauge(fams, "siglipd_camera_keyframe_rate", cam.name)
		st := r.camera(cam.name)
		t.Logf("%s: siglipd_camera_keyframe_rate %.3f; /api/status decode %s keyframe_rate %.3f fps_decoded %.1f", cam.name, rate, st.Decode, st.KeyframeRate, st.FPSDecoded)
		if math.Abs(rate-1) > 0.15 || math.Abs(st.KeyframeRate-1) > 0.15 {
			t.Errorf("%s: keyframe rate %.3f in /metrics, %.3f in /api/status; want 1 ± 0.15", cam.name, rate, st.KeyframeRate)
		}
		if st.Decode != cam.decode || st.HWAccel != "none" {
			t.Errorf("%s: /api/status decode %q hwaccel %q, want %q and none", cam.name, st.Decode, st.HWAccel, cam.decode)
		}
	}
	// What the model is: the colour model's 2313 weights, SigLIP's tokenizer.
	if m := r.status().Model; m.Family != "SigLIP" || m.Input != "64x64" || m.PatchSize != 16 || m.Parameters != 2313 {
		t.Errorf("/api/status model = %+v, want family SigLIP, input 64x64, patch 16, 2313 parameters", m)
	}
	broker.Stop()
	testenv.WaitFor(t, 20*time.Second, func() bool { return !ready() }, "/readyz to turn unready with the broker stopped")
	code, body := r.get("/readyz")
	t.Logf("broker down: /readyz %d %s", code, strings.Join(strings.Fields(string(body)), " "))
	broker.Start()
	testenv.WaitFor(t, 40*time.Second, ready, "/readyz to be ready again after the broker returned")
	if code, _ := r.get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
}

// TestReload: a threshold change applies without reconnecting the camera;
// an invalid file is rejected and the running config stays; a new camera
// starts.
func TestReload(t *testing.T) {
	testenv.Integration(t)
	red := testenv.VideoFile(t, testenv.VideoOptions{Name: "red.mp4", Source: "color=c=red", Duration: 3 * time.Second})
	blue := testenv.VideoFile(t, testenv.VideoOptions{Name: "blue.mp4", Source: "color=c=blue", Duration: 3 * time.Second})
	cfg := func(greenThreshold string, extra string) string {
		return fmt.Sprintf(`
model: {path: %s}
sink: stdout
http: {listen: "127.0.0.1:0"}
label_defaults: {min_frames: 1, off_frames: 1, cooldown: 0s}
cameras:
  - {name: door, url: %s, loop: true, fps: 4, labels: [{name: red, threshold: 0.5}, {name: green, threshold: %s}]}
%s`, testenv.Model(t, "colour"), red, greenThreshold, extra)
	}
	r := startDaemon(t, cfg("0.5", ""), nil)
	testenv.WaitFor(t, 15*time.Second, func() bool { return strings.Contains(r.stdout.String(), `"label":"red"`) }, "the red start event")
	if strings.Contains(r.stdout.String(), `"label":"green"`) {
		t.Fatal("green started at threshold 0.5")
	}
	before := r.camera("door")

	// A green threshold under the colour model's floor (6.1e-6) makes green
	// start: proof the new threshold is in force.
	write := func(body string) {
		if err := os.WriteFile(r.cfgPath, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		r.reload <- struct{}{}
	}
	write(cfg("0.000001", ""))
	testenv.WaitFor(t, 15*time.Second, func() bool { return strings.Contains(r.stdout.String(), `"label":"green"`) },
		"green to start under its new threshold")
	after := r.camera("door")
	if after.Reconnects != before.Reconnects || after.FramesDecoded < before.FramesDecoded {
		t.Errorf("the camera restarted on a threshold change: reconnects %d→%d, frames read %d→%d",
			before.Reconnects, after.Reconnects, before.FramesDecoded, after.FramesDecoded)
	}

	write("cameras: [this is: not valid")
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(r.logs.String(), "config reload rejected") },
		"the invalid file to be rejected")
	if st := r.status(); len(st.Cameras) != 1 || st.Cameras[0].Labels[1].Threshold != 0.000001 {
		t.Errorf("after an invalid reload the running config changed: %+v", st.Cameras)
	}
	// The rejection is logged a moment before it is counted.
	if !testenv.Eventually(5*time.Second, func() bool { return counterSum(r.metrics(), "siglipd_config_reloads_total") == 2 }) {
		t.Errorf("reload counters: %v, want 2 reloads in all", r.metrics()["siglipd_config_reloads_total"])
	}

	write(cfg("0.000001", fmt.Sprintf("  - {name: yard, url: %s, loop: true, fps: 4, labels: [{name: blue, threshold: 0.5}]}", blue)))
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(r.stdout.String(), `"camera":"yard"`) },
		"the added camera to start and report blue")
	if c := r.camera("door"); c.Reconnects != before.Reconnects || c.FramesDecoded < after.FramesDecoded {
		t.Errorf("adding a camera restarted the existing one: %+v", c)
	}
	for _, line := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(line, "reload") {
			t.Log(line)
		}
	}
}
