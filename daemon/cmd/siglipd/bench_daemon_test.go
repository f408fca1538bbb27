package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"gocv.io/x/gocv"

	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/internal/testenv"
	"github.com/siglipd/siglipd/rules"
)

// BenchmarkTable is `make bench`: one table a user can check, measured in
// one run on this machine — the vision tower (a bare ONNX Runtime session
// against siglipd's path, fp32 and int8), the whole daemon (the built
// binary on file cameras, through the rules to a real mosquitto) and the
// peers (transformers.js on the same model and frames). It prints the table
// to stdout, and to $SIGLIPD_BENCH_OUT when set. Run it once:
//
//	go test -run '^$' -bench Table -benchtime 1x ./daemon/cmd/siglipd
//
// $SIGLIPD_BENCH_MODEL is the model folder (default .deps/models/base),
// $SIGLIPD_BENCH_WINDOW how long each daemon row is measured (default 40s,
// after a 10 s warm-up), $SIGLIPD_BENCH_SOAK (e.g. 30m) runs only the memory
// soak: four cameras at full load for that long, RSS every minute.
func BenchmarkTable(b *testing.B) {
	model := benchModelDir(b)
	lib := testenv.ORTLib(b)
	ffmpeg := testenv.LookPath(b, "ffmpeg")
	window := envDuration(b, "SIGLIPD_BENCH_WINDOW", 40*time.Second)
	soak := envDuration(b, "SIGLIPD_BENCH_SOAK", 0)
	for range b.N { // the work is minutes long: -benchtime 1x
		t := &table{model: model, date: time.Now().Format("2006-01-02"), cpu: cpuModel(), cores: runtime.NumCPU()}
		videos := makeBenchVideos(b, ffmpeg)
		broker := testenv.StartMosquitto(b)
		sub := subscribeEvents(b, broker.URL())
		thresholds := calibrate(b, lib, model, ffmpeg, videos)
		if soak > 0 {
			runSoak(b, lib, model, broker, videos, thresholds, soak)
			return
		}
		t.tower = towerReport(b, lib, model, "640x360")
		for _, v := range []*benchVideo{videos["alt360"], videos["alt1080"], videos["still360"]} {
			v.decodeCPU = decodeCPU(b, v.path)
		}
		for _, size := range [][2]int{{640, 360}, {1920, 1080}} {
			t.resizeCPU = append(t.resizeCPU, resizeCPU(b, model, size[0], size[1]))
		}
		for _, sc := range scenarios {
			t.rows = append(t.rows, runScenario(b, lib, model, broker, sub, videos, thresholds, sc, window))
			b.Logf("%s: measured", sc.name)
		}
		t.peers = peers(b, model, videos["alt360"], t.tower)
		out := t.String()
		fmt.Println(out)
		if p := os.Getenv("SIGLIPD_BENCH_OUT"); p != "" {
			if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
				b.Error(err)
			}
		}
	}
}

func benchModelDir(b *testing.B) string {
	dir := os.Getenv("SIGLIPD_BENCH_MODEL")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(b), ".deps", "models", "base")
	}
	if _, err := os.Stat(filepath.Join(dir, "onnx", "vision_model.onnx")); err != nil {
		b.Skipf("no model at %s: run make bench (it writes the base preset there)", dir)
	}
	return dir
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		b.Fatalf("$%s: %v", name, err)
	}
	return d
}

// scenario is one whole-daemon row: cameras playing a video file (looped, at
// its own 25 fps, every frame decoded as from a live camera), sampled at fps.
type scenario struct {
	name    string
	video   string // key of makeBenchVideos
	cameras int
	fps     float64
	labels  int
	gate    bool
	// remote is the gRPC URL of the inference server the daemons use
	// (inference.backend remote), "" for the local backend; daemons is how
	// many run side by side (default 1), each with its own cameras.
	remote    string
	daemons   int
	serverPid int // the server's process, whose CPU the row reports
	// noStore turns the frame store off (store: {enabled: false}); every
	// other row has it on, as the default config does.
	noStore bool
}

// The rows. One camera at 1 fps leaves the model time to spare: its
// latency is a frame's own. At 2 fps the cameras ask for more frames than two cores can
// score, so the first rows measure the daemon at full load (frames are
// dropped, latest first) and compare with the raw session; the still rows
// are the change gate's workload: eight cameras watching a still scene.
// The row after the first 4-camera one is its twin with the frame store
// off: what keeping frames costs the frames scored.
var scenarios = []scenario{
	{name: "1 camera 640×360, 4 labels", video: "alt360", cameras: 1, fps: 1, labels: 4},
	{name: "4 cameras 640×360, 4 labels", video: "alt360", cameras: 4, fps: 2, labels: 4},
	{name: "4 cameras 640×360, 4 labels, frame store off", video: "alt360", cameras: 4, fps: 2, labels: 4, noStore: true},
	{name: "4 cameras 640×360, 32 labels", video: "alt360", cameras: 4, fps: 2, labels: 32},
	{name: "2 cameras 1920×1080, 4 labels", video: "alt1080", cameras: 2, fps: 2, labels: 4},
	{name: "8 still cameras 640×360, gate off", video: "still360", cameras: 8, fps: 2, labels: 4},
	{name: "8 still cameras 640×360, gate on", video: "still360", cameras: 8, fps: 2, labels: 4, gate: true},
}

// benchLabels are the prompts; rows use the first 4 or all 32.
var benchLabels = []string{
	"a car in the driveway", "a person at the door", "a package on the porch", "the garage door open",
	"a dog in the garden", "a cat on the fence", "a delivery van", "a bicycle",
	"snow on the ground", "a fallen tree", "smoke", "a fire",
	"a child playing", "a ladder against the wall", "an open gate", "a truck",
	"rain", "a bird", "a deer", "a raccoon",
	"a motorbike", "a lawn mower", "a trash can at the curb", "a person with a flashlight",
	"headlights", "an empty street", "a parked car", "a crowd",
	"a ball", "a tent", "water on the floor", "a window open",
}

type benchVideo struct {
	path          string
	width, height int
	// sceneA and sceneB are seconds into the video showing each of its two
	// scenes, for the thresholds.
	sceneA, sceneB []float64
	decodeCPU      time.Duration // per frame, measured alone
}

// makeBenchVideos writes the test videos: H.264 at 25 fps, keyframe a
// second. alt: moving content (testsrc2) for 2 s, then 2 s of white, so
// events start and end all the time (a model with random weights tells
// white from the pattern, but hardly one moving pattern from another);
// still: a grey scene where a small box shows for 3 s of every 30.
func makeBenchVideos(b *testing.B, ffmpeg string) map[string]*benchVideo {
	dir := b.TempDir()
	out := map[string]*benchVideo{}
	for name, o := range map[string]testenv.VideoOptions{
		"alt360":   {Width: 640, Height: 360, Source: "testsrc2", Duration: 8 * time.Second, Filter: "drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='gte(mod(t,4),2)'"},
		"alt1080":  {Width: 1920, Height: 1080, Source: "testsrc2", Duration: 8 * time.Second, Filter: "drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='gte(mod(t,4),2)'"},
		"still360": {Width: 640, Height: 360, Source: "color=c=gray", Duration: 30 * time.Second, Filter: "drawbox=x=300:y=160:w=64:h=36:color=red:t=fill:enable='between(t,20,23)'"},
	} {
		v := &benchVideo{path: filepath.Join(dir, name+".mp4"), width: o.Width, height: o.Height,
			sceneA: []float64{0.2, 0.6, 1.0, 1.4, 1.8}, sceneB: []float64{2.2, 2.6, 3.0, 3.4, 3.8}}
		if name == "still360" {
			v.sceneA, v.sceneB = []float64{21, 21.5, 22}, []float64{5, 10, 15}
		}
		if err := testenv.MakeVideo(ffmpeg, v.path, o); err != nil {
			b.Fatal(err)
		}
		out[name] = v
	}
	return out
}

// calibrate sets each label's threshold per video between its
// probabilities on the two scenes (from `siglipd classify` on frames of the
// same file), halfway in logit space between the closest frames of each, so
// that a model with random weights still starts and ends events as the
// scenes change. A label that does not tell the scenes apart never fires.
func calibrate(b *testing.B, lib, model, ffmpeg string, videos map[string]*benchVideo) map[string][]float64 {
	out := map[string][]float64{}
	for name, v := range videos {
		scores := func(at []float64) [][]float64 {
			return classifyFrames(b, lib, model, "fp32", extractFrames(b, ffmpeg, v.path, name, at))
		}
		out[name] = midThresholds(scores(v.sceneA), scores(v.sceneB))
	}
	return out
}

// extractFrames writes the frames of the video at the times given (s) as
// PNGs, named after name, and returns their paths.
func extractFrames(b *testing.B, ffmpeg, video, name string, at []float64) []string {
	var pngs []string
	for i, s := range at {
		png := filepath.Join(b.TempDir(), fmt.Sprintf("%s-%d.png", name, i))
		cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-ss", fmt.Sprint(s), "-i", video, "-frames:v", "1", png)
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ffmpeg: %v\n%s", err, o)
		}
		pngs = append(pngs, png)
	}
	return pngs
}

// classifyFrames is every bench label's probability on each image, from
// `siglipd classify` with the model's variant: per label, per image.
func classifyFrames(b *testing.B, lib, model, variant string, pngs []string) [][]float64 {
	args := []string{"classify", "--model", model, "--variant", variant}
	for _, l := range benchLabels {
		args = append(args, "--label", l)
	}
	args = append(args, pngs...)
	cmd := exec.Command(siglipdBin, args...)
	cmd.Env = append(os.Environ(), "SIGLIPD_ORT_LIB="+lib)
	stdout, err := cmd.Output()
	if err != nil {
		b.Fatalf("siglipd classify: %v", err)
	}
	p := make([][]float64, len(benchLabels)) // per label, per frame
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	for sc.Scan() {
		var line classifyResult
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			b.Fatalf("classify output %q: %v", sc.Text(), err)
		}
		for _, r := range line.Results {
			j := slices.Index(benchLabels, r.Label)
			p[j] = append(p[j], float64(r.Score))
		}
	}
	return p
}

// midThresholds is each label's threshold between its probabilities on
// the frames of scene a and of scene b (per label, per frame), halfway in
// logit space between the closest frames of each; a label that does not
// tell the scenes apart gets a threshold it never reaches.
func midThresholds(a, bb [][]float64) []float64 {
	logit := func(p float64) float64 { return math.Log(p / (1 - p)) }
	th := make([]float64, len(a))
	for i := range th {
		lo, hi := slices.Max(a[i]), slices.Min(bb[i])
		if lo >= hi {
			lo, hi = slices.Max(bb[i]), slices.Min(a[i])
		}
		th[i] = 1 - 1e-9 // cannot tell the scenes apart: never fires
		if lo < hi {
			th[i] = 1 / (1 + math.Exp(-(logit(max(lo, 1e-12))+logit(hi))/2))
		}
	}
	return th
}

// towerReport runs `siglipd bench --json` on every variant in the folder.
func towerReport(b *testing.B, lib, model, frame string) benchReport {
	runs := "3"
	if s := os.Getenv("SIGLIPD_BENCH_RUNS"); s != "" {
		runs = s
	}
	cmd := exec.Command(siglipdBin, "bench", "--model", model, "--json", "--frame", frame, "--runs", runs)
	cmd.Env = append(os.Environ(), "SIGLIPD_ORT_LIB="+lib)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("siglipd bench: %v", err)
	}
	var rep benchReport
	if err := json.Unmarshal(out, &rep); err != nil {
		b.Fatalf("siglipd bench --json: %v\n%s", err, out)
	}
	return rep
}

// decodeCPU is OpenCV's CPU time per frame of the file (H.264 decode and
// the conversion to BGR, as capture reads), measured in this process alone.
func decodeCPU(b *testing.B, path string) time.Duration {
	vc, err := gocv.OpenVideoCapture(path)
	if err != nil {
		b.Fatal(err)
	}
	defer vc.Close()
	mat := gocv.NewMat()
	defer mat.Close()
	c0, n := processCPU(), 0
	for vc.Read(&mat) && !mat.Empty() {
		n++
	}
	if n == 0 {
		b.Fatalf("%s: no frames decoded", path)
	}
	return (processCPU() - c0) / time.Duration(n)
}

// resizeCPU is the CPU time of preprocessing one w×h frame for the model,
// with the processor siglipd builds from its preprocessor_config.json.
func resizeCPU(b *testing.B, model string, w, h int) time.Duration {
	p, err := infer.ReadPreprocessor(filepath.Join(model, "preprocessor_config.json"), "exact")
	if err != nil {
		b.Fatal(err)
	}
	img := structured(w, h)
	dst := make([]float32, p.PlaneSize())
	const n = 50
	p.Process(img, dst)
	c0 := processCPU()
	for range n {
		if err := p.Process(img, dst); err != nil {
			b.Fatal(err)
		}
	}
	return (processCPU() - c0) / n
}

// eventLog is every event the broker carried, with when it arrived.
type eventLog struct {
	mu  sync.Mutex
	evs []arrived
}

type arrived struct {
	ev rules.Event
	at time.Time
}

func subscribeEvents(b *testing.B, broker string) *eventLog {
	l := &eventLog{}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("bench-events").SetAutoReconnect(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscriber: %v", tok.Error())
	}
	tok := c.Subscribe("#", 1, func(_ mqtt.Client, m mqtt.Message) {
		at := time.Now()
		var ev rules.Event
		// A label's Home Assistant event entity gets a copy of each start
		// and end with the same id and frame time but no "type" (its key is
		// event_type): counting it would count the event twice.
		if json.Unmarshal(m.Payload(), &ev) != nil || ev.ID == "" || ev.FrameTime.IsZero() || ev.Type == "" {
			return // discovery, status, state, event entities
		}
		l.mu.Lock()
		l.evs = append(l.evs, arrived{ev, at})
		l.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscribe: %v", tok.Error())
	}
	b.Cleanup(func() { c.Disconnect(100) })
	return l
}

// latencies are frame→event times (capture of the frame that caused the
// event to its arrival at a subscriber) of the cameras with the prefix, for
// events whose frame was captured and which arrived within [from, to): the
// ends a shutdown sends are not frame→event times.
func (l *eventLog) latencies(prefix string, from, to time.Time) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Duration
	for _, a := range l.evs {
		if strings.HasPrefix(a.ev.Camera, prefix) && !a.ev.FrameTime.Before(from) && a.at.Before(to) &&
			a.ev.Type != rules.TypeUpdate {
			out = append(out, a.at.Sub(a.ev.FrameTime))
		}
	}
	return out
}

// daemonRow is what one scenario measured.
type daemonRow struct {
	sc                        scenario
	seconds                   float64
	decoded, sampled, scored  float64
	skipped, dropped, batches float64
	cpu                       time.Duration // the daemon process, user + system
	latencies                 []time.Duration
	peakRSS                   int64 // bytes, VmHWM
	// Means from the daemon's histograms: a frame's wait for its batch, a
	// batch's run, capture to the event being queued.
	wait, batchRun, toQueue time.Duration
	decodeCPU               time.Duration // per decoded frame of the row's video
	serverCPU               time.Duration // the inference server process (remote rows)
}

// runCount numbers the daemon runs, whose camera names it prefixes: the
// subscriber tells their events apart by it.
var runCount int

// startBenchDaemon starts the built siglipd on the scenario and waits until
// it is ready; it returns the process, its HTTP base URL and its cameras'
// name prefix.
func startBenchDaemon(b *testing.B, lib, model string, broker *testenv.Mosquitto, v *benchVideo, th []float64, sc scenario) (*exec.Cmd, string, string) {
	runCount++
	prefix := fmt.Sprintf("r%d-", runCount)
	port := testenv.FreePort(b)
	var cams []string
	for i := range sc.cameras {
		var labels []string
		for j := range sc.labels {
			labels = append(labels, fmt.Sprintf("{name: l%d, prompts: [%q], threshold: %g, off_threshold: %g, min_frames: 1, off_frames: 1, cooldown: 0s}",
				j, benchLabels[j], th[j], th[j]))
		}
		cams = append(cams, fmt.Sprintf("{name: %s%d, url: %q, loop: true, fps: %g, skip_unchanged: {enabled: %t}, labels: [%s]}",
			prefix, i, v.path, sc.fps, sc.gate, strings.Join(labels, ", ")))
	}
	extra := "" // the top-level keys the row sets besides the defaults
	if sc.remote != "" {
		extra += fmt.Sprintf("inference: {backend: remote, remote: {url: %q, timeout: 60s}}\n", sc.remote)
	}
	if sc.noStore {
		extra += "store: {enabled: false}\n"
	}
	cfg := fmt.Sprintf(`model: {path: %s}
state_dir: %s
sink: mqtt
mqtt: {broker: %q, client_id: %q, topic_prefix: %q}
http: {listen: "127.0.0.1:%d"}
%scameras:
  - %s
`, model, b.TempDir(), broker.URL(), "bench-"+prefix, "bench-"+strings.TrimSuffix(prefix, "-"), port, extra, strings.Join(cams, "\n  - "))
	cmd, base := launchBenchDaemon(b, lib, sc.name, cfg, port)
	return cmd, base, prefix
}

// launchBenchDaemon starts the built siglipd on the config cfg, whose HTTP
// server listens on port, and waits until it is ready; the test's cleanup
// kills it. name says which row failed.
func launchBenchDaemon(b *testing.B, lib, name, cfg string, port int) (*exec.Cmd, string) {
	path := filepath.Join(b.TempDir(), "cams.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(siglipdBin, "--config", path, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "SIGLIPD_ORT_LIB="+lib)
	var logs testenv.SyncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !testenv.Eventually(2*time.Minute, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		b.Fatalf("%s: siglipd not ready within 2m\n%s", name, logs.String())
	}
	return cmd, base
}

// runScenario measures sc's daemons (one unless sc.daemons says more) over
// the same window; the row sums them (means and latencies over all).
func runScenario(b *testing.B, lib, model string, broker *testenv.Mosquitto, sub *eventLog, videos map[string]*benchVideo, thresholds map[string][]float64, sc scenario, window time.Duration) daemonRow {
	v := videos[sc.video]
	type started struct {
		cmd          *exec.Cmd
		base, prefix string
		m0           map[string]float64
		c0           time.Duration
	}
	var ds []*started
	for range max(sc.daemons, 1) {
		cmd, base, prefix := startBenchDaemon(b, lib, model, broker, v, thresholds[sc.video], sc)
		ds = append(ds, &started{cmd: cmd, base: base, prefix: prefix})
	}
	time.Sleep(10 * time.Second) // warm-up: first batches allocate, cameras open
	var s0 time.Duration
	if sc.serverPid != 0 {
		s0 = pidCPU(b, sc.serverPid)
	}
	t0 := time.Now()
	for _, d := range ds {
		d.m0, d.c0 = scrape(b, d.base), pidCPU(b, d.cmd.Process.Pid)
	}
	time.Sleep(window) // the measuring window
	row := daemonRow{sc: sc, decodeCPU: v.decodeCPU}
	sums := map[string]float64{}
	for _, d := range ds {
		m1 := scrape(b, d.base)
		row.cpu += pidCPU(b, d.cmd.Process.Pid) - d.c0
		row.peakRSS = max(row.peakRSS, peakRSS(b, d.cmd.Process.Pid))
		for k, v := range m1 {
			sums[k] += v - d.m0[k]
		}
	}
	t1 := time.Now()
	row.seconds = t1.Sub(t0).Seconds()
	if sc.serverPid != 0 {
		row.serverCPU = pidCPU(b, sc.serverPid) - s0
	}
	d := func(name string) float64 { return sums[name] }
	row.decoded, row.sampled, row.scored = d("siglipd_frames_decoded_total"), d("siglipd_frames_sampled_total"), d("siglipd_frames_scored_total")
	row.skipped, row.dropped, row.batches = d("siglipd_frames_skipped_total"), d("siglipd_frames_dropped_total"), d("siglipd_batch_size_count")
	mean := func(name string) time.Duration {
		return time.Duration(d(name+"_sum") / max(d(name+"_count"), 1) * float64(time.Second))
	}
	row.wait, row.batchRun, row.toQueue = mean("siglipd_frame_wait_seconds"), mean("siglipd_inference_seconds"), mean("siglipd_frame_to_event_seconds")
	for _, d := range ds {
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.cmd.Wait()
		row.latencies = append(row.latencies, sub.latencies(d.prefix, t0, t1)...)
	}
	return row
}

// runSoak runs the four cameras at full load for d and logs RSS every
// minute; it fails when RSS after the first minute and at the end differ by
// more than 5 %.
func runSoak(b *testing.B, lib, model string, broker *testenv.Mosquitto, videos map[string]*benchVideo, thresholds map[string][]float64, d time.Duration) {
	sc := scenarios[1]
	cmd, _, _ := startBenchDaemon(b, lib, model, broker, videos[sc.video], thresholds[sc.video], sc)
	var first, last, most int64
	for minute := 1; time.Duration(minute)*time.Minute <= d; minute++ {
		time.Sleep(time.Minute)
		rss := currentRSS(b, cmd.Process.Pid)
		if minute == 1 {
			first = rss
		}
		last, most = rss, max(most, rss)
		fmt.Printf("soak: minute %d: RSS %.1f MiB\n", minute, float64(rss)/(1<<20))
	}
	growth := float64(last-first) / float64(first) * 100
	fmt.Printf("soak: %s: RSS %.1f MiB after minute 1, %.1f MiB at the end (%+.1f %%), highest %.1f MiB\n",
		sc.name, float64(first)/(1<<20), float64(last)/(1<<20), growth, float64(most)/(1<<20))
	if math.Abs(growth) > 5 {
		b.Errorf("RSS changed %+.1f %% over %s (target ±5 %%)", growth, d)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// scrape sums each metric of /metrics over its labels.
func scrape(b *testing.B, base string) map[string]float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[name] += v
		}
	}
	return out
}

// pidCPU is a process's CPU time so far, from /proc/PID/stat.
func pidCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces): utime is the
	// 14th field of the line, the 12th after ")".
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

func procStatus(b testing.TB, pid int, key string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatalf("/proc/%d/status: no %s", pid, key)
	return 0
}

func peakRSS(b testing.TB, pid int) int64    { return procStatus(b, pid, "VmHWM") }
func currentRSS(b testing.TB, pid int) int64 { return procStatus(b, pid, "VmRSS") }

// peerResult is scripts/js/bench.mjs's answer for one dtype.
type peerResult struct {
	dtype    string
	pipeline float64
	batched  map[int]float64
}

// peers runs transformers.js on the same model and frames of the video
// (PNG, decoded before timing), fp32 and int8 when the folder has it.
func peers(b *testing.B, model string, v *benchVideo, rep benchReport) []peerResult {
	node := testenv.LookPath(b, "node")
	script := filepath.Join(testenv.RepoRoot(b), "scripts", "js", "bench.mjs")
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "node_modules", "@huggingface", "transformers")); err != nil {
		b.Logf("no peers: transformers.js is not installed (scripts/setup-node.sh installs it)")
		return nil
	}
	var frames []string
	dir := b.TempDir()
	ffmpeg := testenv.LookPath(b, "ffmpeg")
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-i", v.path, "-vf", "fps=2", "-frames:v", "8", filepath.Join(dir, "f%d.png"))
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg: %v\n%s", err, o)
	}
	for i := 1; i <= 8; i++ {
		frames = append(frames, filepath.Join(dir, fmt.Sprintf("f%d.png", i)))
	}
	var logit struct {
		Scale, Bias float64
	}
	logit.Scale, logit.Bias = modelLogits(b, model)
	var out []peerResult
	for _, dt := range []struct{ dtype, suffix string }{{"fp32", ""}, {"q8", "_quantized"}} {
		if _, err := os.Stat(filepath.Join(model, "onnx", "model"+dt.suffix+".onnx")); err != nil {
			continue
		}
		req, _ := json.Marshal(map[string]any{"model": model, "images": frames, "labels": benchLabels[:4],
			"template": "This is a photo of {}.", "batches": []int{1, 4, 8}, "runs": 3, "pipeline_runs": 8,
			"dtype": dt.dtype, "scale": logit.Scale, "bias": logit.Bias})
		cmd := exec.Command(node, script)
		cmd.Stdin = bytes.NewReader(req)
		cmd.Stderr = os.Stderr
		raw, err := cmd.Output()
		if err != nil {
			b.Fatalf("node bench.mjs (%s): %v", dt.dtype, err)
		}
		var resp struct {
			Pipeline float64 `json:"pipeline_images_per_s"`
			Batched  []struct {
				Batch  int     `json:"batch"`
				PerSec float64 `json:"images_per_s"`
			} `json:"batched"`
		}
		if err := json.Unmarshal(raw, &resp); err != nil {
			b.Fatalf("bench.mjs: %v\n%s", err, raw)
		}
		pr := peerResult{dtype: dt.dtype, pipeline: resp.Pipeline, batched: map[int]float64{}}
		for _, r := range resp.Batched {
			pr.batched[r.Batch] = r.PerSec
		}
		out = append(out, pr)
	}
	return out
}

// modelLogits is the model's exp(logit_scale) and logit_bias, as siglipd
// reads them, for the batched peer's sigmoid.
func modelLogits(b *testing.B, model string) (scale, bias float64) {
	m, err := (&modelFlags{dir: model, variant: "fp32", device: "cpu", resize: "exact"}).open("")
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	info := m.Info()
	return info.LogitScale, info.LogitBias
}

// table prints the measurements as one Markdown table per section.
type table struct {
	model, date, cpu string
	cores            int
	tower            benchReport
	resizeCPU        []time.Duration // 640×360, 1920×1080
	rows             []daemonRow
	peers            []peerResult
}

func (t *table) raw(variant string, batch int) (benchRow, bool) {
	best, ok := benchRow{}, false
	for _, r := range t.tower.Rows {
		if r.Variant == variant && (!ok || abs(r.Batch-batch) < abs(best.Batch-batch)) {
			best, ok = r, true
		}
	}
	return best, ok
}

// row is the measured row of the scenario named so.
func (t *table) row(name string) (daemonRow, bool) {
	i := slices.IndexFunc(t.rows, func(r daemonRow) bool { return r.sc.name == name })
	if i < 0 {
		return daemonRow{}, false
	}
	return t.rows[i], true
}

func (r daemonRow) perSec() float64 { return r.scored / r.seconds }

func abs(x int) int { return max(x, -x) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

func (t *table) String() string {
	var s strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&s, format, args...) }
	w("siglipd benchmark, %s: %s, %d cores; ONNX Runtime %s, device %s; model %s (%dx%d)\n\n",
		t.date, t.cpu, t.cores, t.tower.ORTVersion, t.tower.Device, filepath.Base(t.model), t.tower.ImageWidth, t.tower.ImageHeight)

	w("Vision tower: images/s (%d rounds each)\n\n", t.tower.Runs)
	w("| variant | batch | raw ONNX Runtime | siglipd | siglipd / raw | siglipd from %dx%d frames | raw CPU ms per image |\n|---|---|---|---|---|---|---|\n",
		t.tower.FrameWidth, t.tower.FrameHeight)
	for _, r := range t.tower.Rows {
		w("| %s | %d | %.2f | %.2f | %.2f | %.2f | %.0f |\n", r.Variant, r.Batch, r.RawImagesPerSec, r.SiglipdImagesPerSec,
			r.SiglipdImagesPerSec/r.RawImagesPerSec, r.FrameImagesPerSec, r.RawCPUPerImageMS)
	}
	if fp, ok := t.raw("fp32", 8); ok {
		if q, ok := t.raw("quantized", 8); ok {
			w("\nint8 / fp32 (siglipd, batch 1/4/8):")
			for _, n := range []int{1, 4, 8} {
				fp, _ = t.raw("fp32", n)
				q, _ = t.raw("quantized", n)
				w(" %.2f×", q.SiglipdImagesPerSec/fp.SiglipdImagesPerSec)
			}
			w("\n")
		}
	}

	w("\nWhole daemon (fp32; cameras loop an H.264 file at 25 fps, sampled at the fps given; events to mosquitto)\n\n")
	w("| workload | sampled/s | scored/s | dropped/s | skipped/s | mean batch | scored / raw at that batch | CPU cores | CPU ms per scored frame: total = decode + resize + inference + rest | frame→event ms p50 / p99 (events) | mean ms: wait + batch run; to queue | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range t.rows {
		perSec := r.scored / r.seconds
		batch := r.scored / max(r.batches, 1)
		// The ratio says something only at full load: when the cameras
		// offer more than the model can score, so frames are dropped.
		ratio := "not at full load"
		if raw, ok := t.raw("fp32", int(math.Round(batch))); ok && r.dropped > 0.05*r.sampled {
			ratio = fmt.Sprintf("%.2f", perSec/raw.RawImagesPerSec)
		}
		scored := max(r.scored, 1)
		total := r.cpu / time.Duration(scored)
		decode := time.Duration(float64(r.decodeCPU) * r.decoded / scored)
		resize := t.resizeCPU[0]
		if r.sc.video == "alt1080" {
			resize = t.resizeCPU[1]
		}
		inf := time.Duration(0)
		if raw, ok := t.raw("fp32", int(math.Round(batch))); ok {
			inf = time.Duration(raw.RawCPUPerImageMS * float64(time.Millisecond))
		}
		rest := total - decode - resize - inf
		split := fmt.Sprintf("%s = %s + %s + %s + %s", ms(total), ms(decode), ms(resize), ms(inf), ms(rest))
		if r.skipped > 0 {
			split = "— (skipped frames cost decode and a thumbnail: see CPU cores)"
		}
		lat := slices.Clone(r.latencies)
		slices.Sort(lat)
		latency := "no events"
		if len(lat) > 0 {
			latency = fmt.Sprintf("%s / %s (%d)", ms(lat[len(lat)/2]), ms(lat[min(len(lat)-1, len(lat)*99/100)]), len(lat))
		}
		w("| %s, %g fps | %.2f | %.2f | %.2f | %.2f | %.1f | %s | %.2f | %s | %s | %s + %s; %s | %.0f |\n",
			r.sc.name, r.sc.fps, r.sampled/r.seconds, perSec, r.dropped/r.seconds, r.skipped/r.seconds, batch, ratio,
			r.cpu.Seconds()/r.seconds, split, latency, ms(r.wait), ms(r.batchRun), ms(r.toQueue), float64(r.peakRSS)/(1<<20))
	}
	if four, ok := t.row("4 cameras 640×360, 4 labels"); ok {
		if many, ok := t.row("4 cameras 640×360, 32 labels"); ok {
			w("\n32 labels / 4 labels, frames scored/s: %.3f\n", many.perSec()/four.perSec())
		}
		if off, ok := t.row("4 cameras 640×360, 4 labels, frame store off"); ok {
			w("Frame store on / off (4 cameras 640×360, 4 labels): frames scored/s %.2f / %.2f (%.3f), CPU cores %.2f / %.2f\n",
				four.perSec(), off.perSec(), four.perSec()/off.perSec(), four.cpu.Seconds()/four.seconds, off.cpu.Seconds()/off.seconds)
		}
	}
	if n := len(t.rows); n >= 2 && t.rows[n-1].sc.gate {
		off, on := t.rows[n-2], t.rows[n-1]
		w("Change gate on the still cameras: %.2f vision-tower runs/s of frames against %.2f without it (%.1f× fewer)\n",
			on.scored/on.seconds, off.scored/off.seconds, (off.scored/off.seconds)/max(on.scored/on.seconds, 1e-9))
	}

	if len(t.peers) > 0 {
		w("\nPeers on the same model and 640×360 frames (4 labels; transformers.js %s on onnxruntime-node), images/s\n\n", "4.3.1")
		w("| variant | transformers.js pipeline | siglipd / pipeline | transformers.js batched, text once: batch 1 / 4 / 8 | siglipd from frames: batch 1 / 4 / 8 | siglipd / batched |\n|---|---|---|---|---|---|\n")
		for _, p := range t.peers {
			variant := map[string]string{"fp32": "fp32", "q8": "quantized"}[p.dtype]
			var ours, theirs, ratio []string
			for _, n := range []int{1, 4, 8} {
				r, _ := t.raw(variant, n)
				ours = append(ours, fmt.Sprintf("%.2f", r.FrameImagesPerSec))
				theirs = append(theirs, fmt.Sprintf("%.2f", p.batched[n]))
				ratio = append(ratio, fmt.Sprintf("%.2f", r.FrameImagesPerSec/p.batched[n]))
			}
			r1, _ := t.raw(variant, 1)
			w("| %s | %.2f | %.2f | %s | %s | %s |\n", variant, p.pipeline, r1.FrameImagesPerSec/p.pipeline,
				strings.Join(theirs, " / "), strings.Join(ours, " / "), strings.Join(ratio, " / "))
		}
	}
	w("\nraw: a bare ONNX Runtime session fed a ready tensor. CPU split: total is the daemon process's CPU time over the window\n" +
		"per scored frame; decode (OpenCV, per decoded frame × decoded per scored), resize and inference (the raw session's\n" +
		"process CPU per image at the nearest batch size) are measured alone in this run; rest is what remains (the batcher,\n" +
		"rules, MQTT, HTTP, the Go runtime), so it carries their measuring noise too.\n")
	return s.String()
}
