package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/siglipd/siglipd/daemon"
	"github.com/siglipd/siglipd/infer/testmodel"
	"github.com/siglipd/siglipd/internal/testenv"
)

var siglipdBin string // built once by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "siglipd-daemon-test")
	if err != nil {
		panic(err)
	}
	siglipdBin = filepath.Join(dir, "siglipd")
	out, err := exec.Command("go", "build", "-o", siglipdBin, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs the built siglipd and returns stdout, stderr and the exit code.
func run(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(siglipdBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func writeSolidPNG(t *testing.T, dir, name string, c color.RGBA) string {
	return testenv.WritePNG(t, dir, name, testenv.Solid(640, 480, c))
}

// TestClassifyColour is the acceptance check for `siglipd classify`: on
// the colour model a red image ranks red first above 0.9 with the others
// below 0.1, and a grey image scores every colour below 0.1.
func TestClassifyColour(t *testing.T) {
	lib := testenv.ORTLib(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "colour")
	if err := testmodel.Generate(testmodel.Options{Preset: "colour", OutDir: model}); err != nil {
		t.Fatal(err)
	}
	red := writeSolidPNG(t, dir, "red.png", color.RGBA{255, 0, 0, 255})
	grey := writeSolidPNG(t, dir, "grey.png", color.RGBA{128, 128, 128, 255})
	green := writeSolidPNG(t, dir, "green.png", color.RGBA{0, 180, 0, 255})
	stdout, stderr, code := run(t, []string{"SIGLIPD_ORT_LIB=" + lib},
		"classify", "--model", model, "--label", "red", "--label", "green", "--label", "blue", "--batch", "2", red, grey, green)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var results []classifyResult
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var r classifyResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		results = append(results, r)
	}
	if len(results) != 3 {
		t.Fatalf("got %d result lines, want 3:\n%s", len(results), stdout)
	}
	for _, tt := range []struct {
		r     classifyResult
		image string
		top   string // "" = nothing high
	}{{results[0], red, "red"}, {results[1], grey, ""}, {results[2], green, "green"}} {
		if tt.r.Image != tt.image || len(tt.r.Results) != 3 {
			t.Fatalf("unexpected line %+v", tt.r)
		}
		for i, lr := range tt.r.Results {
			if i > 0 && lr.Score > tt.r.Results[i-1].Score {
				t.Errorf("%s: results not sorted by score: %+v", tt.image, tt.r.Results)
			}
			if lr.Label == tt.top {
				if i != 0 || lr.Score <= 0.9 {
					t.Errorf("%s: %s at rank %d with %.4g, want first above 0.9", tt.image, lr.Label, i, lr.Score)
				}
			} else if lr.Score >= 0.1 {
				t.Errorf("%s: %s scores %.4g, want < 0.1", tt.image, lr.Label, lr.Score)
			}
		}
	}
}

// TestClassifyImages: each image that cannot be used gets one line saying
// why (a missing file says so), an image whose header declares more pixels
// than --max-pixels is refused before it is decoded, and the others are
// still classified (exit 1 for the lot).
func TestClassifyImages(t *testing.T) {
	lib := testenv.ORTLib(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny")
	if err := testmodel.Generate(testmodel.Options{Preset: "tiny", OutDir: model}); err != nil {
		t.Fatal(err)
	}
	red := writeSolidPNG(t, dir, "red.png", color.RGBA{255, 0, 0, 255})
	// A PNG that declares 20000×20000 pixels: its header alone (a 1.2 GB
	// image once decoded).
	huge := filepath.Join(dir, "huge.png")
	if err := os.WriteFile(huge, pngHeader(20000, 20000), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.png")
	tests := []struct {
		name  string
		extra []string
		image string
		want  string
	}{
		{"missing file", nil, missing, missing + ": no such file or directory"},
		{"a folder", nil, dir, dir + ": is a directory"},
		{"over the pixel cap", nil, huge, huge + ": PNG of 20000x20000 is 400.0 megapixels, more than --max-pixels allows (64.0)"},
		{"cap lifted: OpenCV judges", []string{"--max-pixels", "0"}, huge, huge + ": not an image OpenCV can decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"classify", "--model", model, "--ort-lib", lib, "--label", "red"}, tt.extra...)
			stdout, stderr, code := run(t, nil, append(args, tt.image, red)...)
			if code != exitFailure || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", code, stderr, exitFailure, tt.want)
			}
			if n := strings.Count(stdout, `"image":`); n != 1 || !strings.Contains(stdout, red) {
				t.Errorf("stdout %q: want the one good image classified", stdout)
			}
		})
	}
}

// pngHeader is a PNG signature and IHDR chunk declaring w×h 8-bit RGB: all
// a header reader sees, and not a whole image.
func pngHeader(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // bit depth, colour type RGB, compression, filter, interlace
	chunk := append([]byte("IHDR"), ihdr...)
	out := []byte("\x89PNG\r\n\x1a\n")
	out = binary.BigEndian.AppendUint32(out, uint32(len(ihdr)))
	out = append(out, chunk...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(chunk))
}

func TestClassifyErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no labels", []string{"classify", "--model", "/m", "x.png"}, exitUsage, "at least one --label"},
		{"no images", []string{"classify", "--model", "/m", "--label", "a"}, exitUsage, "no images"},
		{"missing model", []string{"classify", "--model", "/nonexistent/model", "--label", "a", "x.png"}, exitFailure, "model folder /nonexistent/model: does not exist"},
		{"bad template", []string{"classify", "--model", "/m", "--label", "a", "--template", "a photo", "x.png"}, exitUsage, "--template must contain {}"},
		{"no --model", []string{"classify", "--label", "a", "x.png"}, exitUsage, "--model DIR is required"},
		{"bad variant", []string{"classify", "--model", "/m", "--variant", "fp64", "--label", "a", "x.png"}, exitUsage, `--variant "fp64"`},
		{"negative --max-pixels", []string{"classify", "--model", "/m", "--label", "a", "--max-pixels", "-1", "x.png"}, exitUsage, "--max-pixels must be 0"},
		{"bench without --model", []string{"bench"}, exitUsage, "--model DIR is required"},
		{"bench with --runs 0", []string{"bench", "--model", "/m", "--runs", "0"}, exitUsage, "--runs 0: want at least 1"},
		{"bench with a bad frame", []string{"bench", "--model", "/m", "--frame", "big"}, exitUsage, `--frame "big": want WxH`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := run(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cams.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// startBinary runs the siglipd binary on a config file, with env added to
// its environment (a simulated device's), and waits until it says it runs;
// the test's cleanup kills it if the test has not stopped it.
func startBinary(t *testing.T, lib, cfg string, env ...string) (cmd *exec.Cmd, stdout, stderr *testenv.SyncBuffer) {
	t.Helper()
	cmd = exec.Command(siglipdBin, "--config", cfg)
	cmd.Env = append(append(os.Environ(), "SIGLIPD_ORT_LIB="+lib), env...)
	stdout, stderr = &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(stderr.String(), "siglipd running") },
		"the daemon to run; stderr:\n%s", stderr)
	return cmd, stdout, stderr
}

// TestCheck: --check prints the resolved config with secrets as *** and
// exits 0; a broken file exits 2 listing every problem.
func TestCheck(t *testing.T) {
	root := testenv.RepoRoot(t)
	// configs/cams.yaml as shipped, with its model folder and state folder
	// made real: --check looks at both.
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	if err := testmodel.Generate(testmodel.Options{Preset: "tiny", OutDir: model}); err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(root, "configs", "cams.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cams := writeConfig(t, strings.Replace(string(example), "/var/lib/siglipd/models/siglip-base-patch16-224", model, 1))
	env := []string{"DRIVEWAY_PASSWORD=hunter2", "MQTT_PASSWORD=s3cret", "STATE_DIRECTORY=" + filepath.Join(dir, "state"),
		"SIGLIPD_ORT_LIB=" + testenv.ORTLib(t)}
	stdout, stderr, code := run(t, env, "--config", cams, "--check")
	if code != 0 {
		t.Fatalf("configs/cams.yaml --check: exit %d\n%s", code, stderr)
	}
	for _, secret := range []string{"hunter2", "s3cret"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("--check output contains the secret %q", secret)
		}
	}
	for _, want := range []string{"password: '***'", "rtsp://viewer:***@192.168.1.20:554/stream2", "off_threshold: 0.2"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--check output lacks %q:\n%s", want, stdout)
		}
	}

	// Passwords in a broker URL and in a camera URL's query string too.
	withURLs := writeConfig(t, `model: {path: `+model+`}
mqtt: {broker: "tcp://siglipd:BrokerPw1@10.0.0.5:1883"}
inference:
  backend: remote
  remote:
    url: grpc://triton.lan:8001
    headers: [{name: authorization, value: "Bearer ServerTok3"}]
cameras:
  - name: door
    url: http://10.0.0.7/video.mjpg?user=admin&pwd=CamPw2
    labels: [{name: person}]
`)
	stdout, stderr, code = run(t, env, "--config", withURLs, "--check")
	if code != 0 {
		t.Fatalf("--check: exit %d\n%s", code, stderr)
	}
	for _, secret := range []string{"BrokerPw1", "CamPw2", "ServerTok3"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("--check output contains the secret %q:\n%s", secret, stdout)
		}
	}
	for _, want := range []string{"broker: tcp://siglipd:***@10.0.0.5:1883", "url: http://10.0.0.7/video.mjpg?user=admin&pwd=***", "value: '***'"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--check output lacks %q:\n%s", want, stdout)
		}
	}
	if want := "siglipd: note: model: SigLIP, patch 16, 64x64 input, 240836 parameters"; !strings.Contains(stderr, want) {
		t.Errorf("--check does not say what the model is (%q):\n%s", want, stderr)
	}

	broken := writeConfig(t, `model: {path: /m}
cameras:
  - name: door
    url: ftp://x/y
    fps: 0
    labels: [{name: person, threshold: 1.5}]
`)
	_, stderr, code = run(t, nil, "--config", broken, "--check")
	if code != exitUsage {
		t.Errorf("broken file: exit %d, want %d", code, exitUsage)
	}
	for _, want := range []string{"3 problem(s)", "cams.yaml:4: cameras[0].url: unsupported scheme \"ftp\"",
		"cams.yaml:5: cameras[0].fps: must be more than 0", "cams.yaml:6: cameras[0].labels[0].threshold: must be between 0 and 1, got 1.5"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestCheckOffline: --check reports, with file:line and exit 2, what the
// daemon would refuse at start and what can be known without the network:
// the model folder, the ONNX Runtime library, the broker's TLS files and
// the state folder.
func TestCheckOffline(t *testing.T) {
	lib := testenv.ORTLib(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	if err := testmodel.Generate(testmodel.Options{Preset: "tiny", OutDir: model}); err != nil {
		t.Fatal(err)
	}
	noTokenizer := filepath.Join(dir, "no-tokenizer")
	if err := testmodel.Generate(testmodel.Options{Preset: "tiny", OutDir: noTokenizer}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(noTokenizer, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(dir, "a-file")
	garbage := filepath.Join(dir, "garbage.pem")
	for _, f := range []string{aFile, garbage} {
		if err := os.WriteFile(f, []byte("not a certificate\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cameras := "cameras: [{name: door, url: /videos/door.mp4, labels: [{name: person}]}]\n"
	tests := []struct {
		name, config string
		env          []string
		want         string // in stderr; "" for a valid file
	}{
		{"valid", "model: {path: " + model + "}\nstate_dir: " + filepath.Join(dir, "new", "state") + "\n" + cameras, nil, ""},
		{"model folder missing", "model: {path: /nonexistent/siglip}\n" + cameras, nil,
			"cams.yaml:1: model.path: model folder /nonexistent/siglip: does not exist"},
		{"model folder without its tokenizer", "model:\n  path: " + noTokenizer + "\n" + cameras, nil,
			"cams.yaml:2: model.path: tokenizer " + filepath.Join(noTokenizer, "tokenizer.json") + ": missing from the model folder"},
		{"ort_lib missing", "model: {path: " + model + "}\ninference:\n  ort_lib: /nonexistent/libonnxruntime.so.1\n" + cameras, []string{"SIGLIPD_ORT_LIB="},
			"cams.yaml:3: inference.ort_lib: ONNX Runtime library from inference.ort_lib /nonexistent/libonnxruntime.so.1"},
		{"TLS with a plain broker", "model: {path: " + model + "}\nmqtt:\n  tls: {ca_file: " + garbage + "}\n" + cameras, nil,
			"cams.yaml:3: mqtt.tls.ca_file: is set but mqtt.broker (tcp://127.0.0.1:1883) is not TLS"},
		{"CA file that holds no certificate", "model: {path: " + model + "}\nmqtt:\n  broker: mqtts://10.0.0.5:8883\n  tls: {ca_file: " + garbage + "}\n" + cameras, nil,
			"cams.yaml:4: mqtt.tls: TLS: CA file " + garbage + ": no PEM certificate in it"},
		{"state_dir is a file", "model: {path: " + model + "}\nstate_dir: " + aFile + "\n" + cameras, nil,
			"cams.yaml:2: state_dir: " + aFile + " is a file, not a folder"},
	}
	// A warning, not an error: a user name with an empty password.
	t.Run("empty password", func(t *testing.T) {
		cfg := writeConfig(t, "model: {path: "+model+"}\nmqtt:\n  username: siglipd\n  password: ${MQTT_PASSWORD:-}\n"+cameras)
		_, stderr, code := run(t, []string{"SIGLIPD_ORT_LIB=" + lib, "STATE_DIRECTORY=" + filepath.Join(dir, "state")}, "--config", cfg, "--check")
		want := "siglipd: warning: " + cfg + ":4: mqtt.password: is empty while mqtt.username is set"
		if code != 0 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 0 with %q", code, stderr, want)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := append([]string{"SIGLIPD_ORT_LIB=" + lib, "STATE_DIRECTORY=" + filepath.Join(dir, "state")}, tt.env...)
			_, stderr, code := run(t, env, "--config", writeConfig(t, tt.config), "--check")
			if tt.want == "" {
				if code != 0 {
					t.Errorf("exit %d, want 0:\n%s", code, stderr)
				}
				return
			}
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d with %q", code, stderr, exitUsage, tt.want)
			}
			if strings.Contains(stderr, "mqtt: mqtt:") || strings.Contains(stderr, "model: model") {
				t.Errorf("a doubled prefix:\n%s", stderr)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "siglipd: unknown flag: --bogus"},
		{"missing config file", []string{"--config", "/nonexistent/cams.yaml"}, "siglipd: config /nonexistent/cams.yaml: no such file or directory"},
		{"no config", nil, "--config FILE is required"},
		{"bad log level", []string{"--config", "x.yaml", "--log-level", "loud"}, "--log-level"},
		{"negative --watch-config", []string{"--config", "x.yaml", "--watch-config", "-5s"}, "--watch-config must be 0 (reload on SIGHUP only) or more, got -5s"},
		{"/dev/zero as the config", []string{"--config", "/dev/zero", "--check"}, "siglipd: config /dev/zero: larger than 1MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := run(t, nil, tt.args...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != exitUsage || len(lines) != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and one line with %q", code, stderr, tt.want)
			}
		})
	}
	stdout, _, code := run(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(stdout, "siglipd ") {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
}

// TestMissingModel: the daemon fails fast, exit 1, with one error line
// naming the model path, and no panic or stack trace.
func TestMissingModel(t *testing.T) {
	cfg := writeConfig(t, `model: {path: /nonexistent/siglip-model}
sink: stdout
http: {listen: ""}
cameras: [{name: door, url: /videos/door.mp4, labels: [{name: person}]}]
`)
	_, stderr, code := run(t, nil, "--config", cfg)
	if code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	var errLines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "level=ERROR") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], "/nonexistent/siglip-model") {
		t.Errorf("want one error line naming the model path, got:\n%s", stderr)
	}
	if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("stderr shows a panic:\n%s", stderr)
	}
}

// TestSignalStop: SIGTERM and SIGINT stop a running daemon cleanly (exit
// 0) within daemon.ShutdownTimeout.
func TestSignalStop(t *testing.T) {
	testenv.Integration(t)
	lib := testenv.ORTLib(t)
	model := filepath.Join(t.TempDir(), "tiny")
	if err := testmodel.Generate(testmodel.Options{Preset: "tiny", OutDir: model}); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, `model: {path: `+model+`}
sink: stdout
http: {listen: ""}
cameras: [{name: door, url: /videos/door.mp4, labels: [{name: person}]}]
`)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, _, stderr := startBinary(t, lib, cfg)
			start := time.Now()
			cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("exit: %v\n%s", err, stderr.String())
				}
				t.Logf("stopped %s after the signal", time.Since(start).Round(time.Millisecond))
			case <-time.After(daemon.ShutdownTimeout):
				cmd.Process.Kill()
				t.Fatalf("still running %s after %s", daemon.ShutdownTimeout, sig)
			}
		})
	}
}

// TestBench: `siglipd bench` measures both paths on every variant in the
// folder (and --compare's tower), and a variant the folder lacks is an
// error naming the file.
func TestBench(t *testing.T) {
	lib := testenv.ORTLib(t)
	model := testenv.Model(t, "tiny")
	env := []string{"SIGLIPD_ORT_LIB=" + lib}
	stdout, stderr, code := run(t, env, "bench", "--model", model, "--batch", "1,2", "--runs", "2", "--frame", "320x240", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	if rep.Device != "cpu" || rep.ORTVersion == "" || rep.Cores < 1 || rep.FrameWidth != 320 || rep.ImageWidth != 64 || rep.Runs != 2 {
		t.Errorf("report header: %+v", rep)
	}
	if len(rep.Rows) != 2 || rep.Rows[0].Variant != "fp32" || rep.Rows[0].Batch != 1 || rep.Rows[1].Batch != 2 {
		t.Fatalf("rows %+v, want fp32 at batch 1 and 2 (the tiny preset has no other variant)", rep.Rows)
	}
	for _, r := range rep.Rows {
		if !(r.RawImagesPerSec > 0 && r.SiglipdImagesPerSec > 0 && r.FrameImagesPerSec > 0) {
			t.Errorf("batch %d: images/s %v %v %v, want all > 0", r.Batch, r.RawImagesPerSec, r.SiglipdImagesPerSec, r.FrameImagesPerSec)
		}
	}

	stdout, stderr, code = run(t, env, "bench", "--model", model, "--batch", "1", "--runs", "1")
	if code != exitOK || !strings.Contains(stdout, "raw img/s") || !strings.Contains(stdout, "fp32") || !strings.Contains(stdout, "idle threads sleep") {
		t.Errorf("text table: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if rep.AllowSpinning {
		t.Error("report says the idle threads spun without --allow-spinning")
	}
	stdout, stderr, code = run(t, env, "bench", "--model", model, "--batch", "1", "--runs", "1", "--allow-spinning", "--json")
	rep = benchReport{}
	if err := json.Unmarshal([]byte(stdout), &rep); code != exitOK || err != nil || !rep.AllowSpinning {
		t.Errorf("--allow-spinning: exit %d, %v, allow_spinning %v; stderr %q", code, err, rep.AllowSpinning, stderr)
	}

	_, stderr, code = run(t, env, "bench", "--model", model, "--variant", "quantized", "--runs", "1")
	if want := filepath.Join(model, "onnx", "vision_model_quantized.onnx"); code != exitFailure || !strings.Contains(stderr, want) {
		t.Errorf("missing variant: exit %d, stderr %q; want exit 1 naming %s", code, stderr, want)
	}

	// --compare times a second vision tower in the same rounds; a folder
	// means its onnx/vision_model.onnx.
	stdout, stderr, code = run(t, env, "bench", "--model", model, "--batch", "1", "--runs", "2", "--compare", model, "--json")
	if code != exitOK {
		t.Fatalf("--compare: exit %d: %s", code, stderr)
	}
	rep = benchReport{}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--compare --json output: %v\n%s", err, stdout)
	}
	if rep.Compare != filepath.Join(model, "onnx", "vision_model.onnx") || len(rep.Rows) != 1 || !(rep.Rows[0].CompareImagesPerSec > 0) {
		t.Errorf("--compare report: %+v", rep)
	}
	stdout, _, code = run(t, env, "bench", "--model", model, "--batch", "1", "--runs", "1", "--compare", model)
	if code != exitOK || !strings.Contains(stdout, "compare img/s") {
		t.Errorf("--compare text table: exit %d, stdout %q", code, stdout)
	}
	_, stderr, code = run(t, env, "bench", "--model", model, "--compare", filepath.Join(model, "nothing.onnx"))
	if code != exitUsage || !strings.Contains(stderr, "nothing.onnx") {
		t.Errorf("--compare of a missing file: exit %d, stderr %q", code, stderr)
	}

	// --remote times the same frames with the towers on a real server.
	srv := testenv.StartMLServer(t, testenv.Towers(model, ""))
	stdout, stderr, code = run(t, env, "bench", "--model", model, "--batch", "1,4", "--runs", "2", "--remote", "grpc://"+srv.Addr(), "--json")
	if code != exitOK {
		t.Fatalf("--remote: exit %d: %s", code, stderr)
	}
	rep = benchReport{}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--remote --json output: %v\n%s", err, stdout)
	}
	if rep.Remote != "grpc://"+srv.Addr() || len(rep.Rows) != 2 {
		t.Fatalf("--remote report: %+v", rep)
	}
	for _, r := range rep.Rows {
		if !(r.RemoteImagesPerSec > 0 && r.RemoteMSPerBatch > 0 && r.SiglipdMSPerBatch > 0) {
			t.Errorf("--remote batch %d: %+v, want remote images/s and both ms/batch > 0", r.Batch, r)
		}
	}
	_, stderr, code = run(t, env, "bench", "--model", model, "--remote", "http://"+srv.Addr())
	if code != exitUsage || !strings.Contains(stderr, "want grpc://host:port") {
		t.Errorf("--remote http://: exit %d, stderr %q", code, stderr)
	}
}

// TestBenchLayouts: `siglipd bench` on the other two layouts. One graph of
// both towers has no tower file for a bare session (its raw column is
// empty, siglipd's rows are timed); a checkpoint is timed on the towers
// built from it, in float32 only.
func TestBenchLayouts(t *testing.T) {
	testenv.Integration(t)
	env := []string{"SIGLIPD_ORT_LIB=" + testenv.ORTLib(t)}
	combined, _ := testenv.TinyCombined(t)
	checkpoint := testenv.GoogleCheckpoint(t, t.TempDir(), "small")
	tests := []struct {
		name, model string
		raw         bool
	}{
		{"combined", combined, false},
		{"checkpoint", checkpoint, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, env, "bench", "--model", tt.model, "--batch", "1", "--runs", "1", "--json")
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var rep benchReport
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("--json output: %v\n%s", err, stdout)
			}
			if len(rep.Rows) != 1 || rep.Rows[0].Variant != "fp32" || !(rep.Rows[0].SiglipdImagesPerSec > 0) || (rep.Rows[0].RawImagesPerSec > 0) != tt.raw {
				t.Errorf("rows %+v: want one fp32 row, siglipd timed, raw timed: %v", rep.Rows, tt.raw)
			}
		})
	}
}

// TestCPUFeatures: bench names the CPU features that set ONNX Runtime's
// speed, from x86's "flags" and arm64's "Features" lines, in a fixed order.
func TestCPUFeatures(t *testing.T) {
	for _, c := range []struct {
		name, cpuinfo string
		want          []string
	}{
		{"x86 with VNNI and AMX", "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_int8 avx512_vnni avx_vnni\n\nprocessor\t: 1\nflags\t\t: fpu\n",
			[]string{"avx2", "avx512f", "avx_vnni", "avx512_vnni", "amx_int8"}},
		{"x86 AVX2 only", "flags\t\t: fpu sse4_2 avx avx2 fma\n", []string{"avx2"}},
		{"Raspberry Pi 5 (Cortex-A76)", "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n",
			[]string{"asimd", "asimddp"}},
		{"no flags line", "processor\t: 0\n", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := parseCPUFeatures(c.cpuinfo); !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}
