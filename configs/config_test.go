package configs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// base is a minimal valid file; cases append to it or replace parts of it.
const base = `model:
  path: /models/siglip
cameras:
  - name: door
    url: rtsp://10.0.0.2/live
    labels:
      - name: person
        threshold: 0.3
`

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestParseValid(t *testing.T) {
	cfg, err := Parse("cams.yaml", []byte(base), env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	cam := cfg.Cameras[0]
	l := cam.Labels[0]
	// Defaults fill what the file leaves out.
	if cam.FPS != 2 || cam.ReadTimeout.D() != 10*time.Second || cam.RTSPTransport != "tcp" || cam.Decode != "all" || cam.HWAccel != "none" {
		t.Errorf("camera defaults not applied: %+v", cam)
	}
	if l.Threshold != 0.3 || l.MinFrames != 2 || l.OffFrames != 2 || l.Cooldown.D() != 10*time.Second {
		t.Errorf("label defaults not applied: %+v", l)
	}
	if got := *l.OffThreshold; got < 0.19999 || got > 0.20001 {
		t.Errorf("EffectiveOffThreshold = %v, want 0.2", got)
	}
	if got := l.Prompts; len(got) != 1 || got[0] != "person" {
		t.Errorf("EffectivePrompts = %q, want [person]", got)
	}
	if cfg.Inference.BatchSize != 8 || cfg.Inference.MaxBatchWait.D() != 50*time.Millisecond {
		t.Errorf("inference defaults not applied: %+v", cfg.Inference)
	}
}

// TestOpenTimeout: open_timeout, when not set, is the larger of 20 s and
// read_timeout, and what --check prints is the value in force.
func TestOpenTimeout(t *testing.T) {
	tests := []struct {
		name  string
		lines string // camera keys added before labels:
		want  time.Duration
	}{
		{"default", "", 20 * time.Second},
		{"derived from a long read_timeout", "    read_timeout: 30s\n", 30 * time.Second},
		{"short read_timeout keeps the default", "    read_timeout: 2s\n", 20 * time.Second},
		{"set", "    open_timeout: 45s\n", 45 * time.Second},
		{"equal to read_timeout", "    read_timeout: 12s\n    open_timeout: 12s\n", 12 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("cams.yaml", []byte(strings.Replace(base, "    labels:", tt.lines+"    labels:", 1)), env(nil))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := cfg.Cameras[0].OpenTimeout.D(); got != tt.want {
				t.Errorf("open_timeout = %s, want %s", got, tt.want)
			}
			out, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if want := "open_timeout: " + tt.want.String(); !strings.Contains(string(out), want) {
				t.Errorf("resolved config lacks %q:\n%s", want, out)
			}
		})
	}
}

// TestLabelDefaultsOrder: label_defaults applies to labels even when it comes
// after cameras in the file, and a label's own value wins.
func TestLabelDefaultsOrder(t *testing.T) {
	src := base + `      - name: car
        min_frames: 5
label_defaults:
  threshold: 0.7
  min_frames: 3
  off_delay: 2s
`
	cfg, err := Parse("cams.yaml", []byte(src), env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	person, car := cfg.Cameras[0].Labels[0], cfg.Cameras[0].Labels[1]
	if person.Threshold != 0.3 || person.MinFrames != 3 || person.OffDelay.D() != 2*time.Second {
		t.Errorf("person = %+v, want threshold 0.3 (own), min_frames 3, off_delay 2s (defaults)", person)
	}
	if car.Threshold != 0.7 || car.MinFrames != 5 {
		t.Errorf("car = %+v, want threshold 0.7 (default), min_frames 5 (own)", car)
	}
}

func TestEnvSubstitution(t *testing.T) {
	src := base + `mqtt:
  password: ${MQTT_PASSWORD}
  client_id: ${CLIENT:-siglipd-a}
  topic_prefix: cost$$
`
	cfg, err := Parse("cams.yaml", []byte(strings.Replace(src, "rtsp://10.0.0.2", "rtsp://admin:${CAM_PW}@10.0.0.2", 1)),
		env(map[string]string{"MQTT_PASSWORD": "s3cret", "CAM_PW": "hunter2"}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.MQTT.Password.Reveal() != "s3cret" || cfg.MQTT.ClientID != "siglipd-a" || cfg.MQTT.TopicPrefix != "cost$" {
		t.Errorf("got password %q client_id %q prefix %q", cfg.MQTT.Password.Reveal(), cfg.MQTT.ClientID, cfg.MQTT.TopicPrefix)
	}
	if got := cfg.Cameras[0].URL.Reveal(); got != "rtsp://admin:hunter2@10.0.0.2/live" {
		t.Errorf("url = %q", got)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret", "hunter2"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("marshalled config contains secret %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(string(out), "password: '***'") || !strings.Contains(string(out), "rtsp://admin:***@10.0.0.2/live") {
		t.Errorf("marshalled config does not show redacted values:\n%s", out)
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want []string // every error line, in order
	}{
		{
			name: "bad url scheme",
			src:  strings.Replace(base, "rtsp://10.0.0.2/live", "ftp://10.0.0.2/live", 1),
			want: []string{`cams.yaml:5: cameras[0].url: unsupported scheme "ftp" (want rtsp, rtsps, http, https, file, a file path, /dev/videoN or a USB index)`},
		},
		{
			name: "device settings on a stream",
			src:  strings.Replace(base, "url: rtsp://10.0.0.2/live\n", "url: rtsp://10.0.0.2/live\n    format: mjpeg\n", 1),
			want: []string{`cams.yaml:6: cameras[0].format: is for video devices (url /dev/video…, /dev/v4l/by-id/…), not this url`},
		},
		{
			name: "device settings out of range",
			src: strings.Replace(base, "url: rtsp://10.0.0.2/live\n",
				"url: /dev/v4l/by-id/usb-Cam-video-index0\n    format: mpeg4x\n    width: 1920\n    frame_rate: 500\n", 1),
			want: []string{
				`cams.yaml:6: cameras[0].format: must be mjpeg, yuyv, h264, nv12 or a four-character code such as MJPG, got "mpeg4x"`,
				`cams.yaml:7: cameras[0].width: width and height go together, each 1 to 8192, got 1920x0`,
				`cams.yaml:8: cameras[0].frame_rate: must be more than 0 and at most 240, got 500`,
			},
		},
		{
			name: "decode and hwaccel misspelt",
			src:  strings.Replace(base, "url: rtsp://10.0.0.2/live\n", "url: rtsp://10.0.0.2/live\n    decode: iframes\n    hwaccel: cuda\n", 1),
			want: []string{
				`cams.yaml:6: cameras[0].decode: must be all, keyframes or auto, got "iframes"`,
				`cams.yaml:7: cameras[0].hwaccel: must be none, vaapi, nvdec or v4l2m2m, got "cuda"`,
			},
		},
		{
			name: "decode and hwaccel of a device",
			src: strings.Replace(base, "url: rtsp://10.0.0.2/live\n",
				"url: /dev/v4l/by-id/usb-Cam-video-index0\n    decode: keyframes\n    hwaccel: vaapi\n", 1),
			want: []string{
				`cams.yaml:6: cameras[0].decode: is for streams and files: a video device (url /dev/video…, /dev/v4l/by-id/…) delivers every frame it captures; remove it`,
				`cams.yaml:7: cameras[0].hwaccel: is for streams and files, not a video device (url /dev/video…, /dev/v4l/by-id/…); remove it`,
			},
		},
		{
			name: "rtsp url without host",
			src:  strings.Replace(base, "rtsp://10.0.0.2/live", "rtsp:///live", 1),
			want: []string{`cams.yaml:5: cameras[0].url: rtsp URL has no host`},
		},
		{
			name: "threshold out of range",
			src:  strings.Replace(base, "threshold: 0.3", "threshold: 1.5", 1),
			want: []string{`cams.yaml:8: cameras[0].labels[0].threshold: must be between 0 and 1, got 1.5`},
		},
		{
			name: "duplicate camera names",
			src: base + `  - name: Door
    url: /videos/door.mp4
    labels: [{name: cat}]
`,
			want: []string{`cams.yaml:9: cameras[1].name: duplicate camera name "Door" (also cameras[0])`},
		},
		{
			name: "duplicate label names in a camera",
			src: base + `      - name: person
        threshold: 0.4
`,
			want: []string{`cams.yaml:9: cameras[0].labels[1].name: duplicate label name "person" in camera "door" (also labels[0])`},
		},
		{
			name: "labels sharing a topic name",
			src: base + `      - name: Person!
`,
			want: []string{`cams.yaml:9: cameras[0].labels[1].name: label "Person!" and labels[0] "person" share the MQTT topic name "person"; rename one`},
		},
		{
			name: "fps zero",
			src:  strings.Replace(base, "    labels:", "    fps: 0\n    labels:", 1),
			want: []string{`cams.yaml:6: cameras[0].fps: must be more than 0 and at most 60, got 0`},
		},
		{
			name: "open_timeout under read_timeout",
			src:  strings.Replace(base, "    labels:", "    read_timeout: 10s\n    open_timeout: 5s\n    labels:", 1),
			want: []string{`cams.yaml:7: cameras[0].open_timeout: must be at least read_timeout (10s), got 5s: opening also waits for a frame, and the first needs a keyframe`},
		},
		{
			name: "open_timeout too short",
			src:  strings.Replace(base, "    labels:", "    read_timeout: 1s\n    open_timeout: 500ms\n    labels:", 1),
			want: []string{`cams.yaml:7: cameras[0].open_timeout: must be at least 1s, got 500ms`},
		},
		{
			name: "unknown key with suggestion",
			src:  strings.Replace(base, "threshold: 0.3", "treshold: 0.3", 1),
			want: []string{`cams.yaml:8: cameras[0].labels[0].treshold: unknown key (did you mean "threshold"?)`},
		},
		{
			name: "unknown top-level key",
			src:  base + "cameraz: []\n",
			want: []string{`cams.yaml:9: cameraz: unknown key (did you mean "cameras"?)`},
		},
		{
			name: "wrong type",
			src:  strings.Replace(base, "    labels:", "    fps: fast\n    labels:", 1),
			want: []string{`cams.yaml:6: cameras[0].fps: expected a number, got "fast"`},
		},
		{
			name: "mapping where a list is expected",
			src:  strings.Replace(base, "cameras:", "cameras:\n  name: x\nold_cameras:", 1),
			want: []string{
				`cams.yaml:4: cameras: expected a list, got a mapping`,
				`cams.yaml:5: old_cameras: unknown key`,
			},
		},
		{
			name: "empty labels",
			src: `model: {path: /m}
cameras:
  - name: door
    url: "0"
    labels: []
`,
			want: []string{`cams.yaml:5: cameras[0].labels: at least one label is required`},
		},
		{
			name: "bad duration",
			src:  base + "inference:\n  max_batch_wait: 5 parsecs\n",
			want: []string{`cams.yaml:10: inference.max_batch_wait: invalid duration "5 parsecs" (write e.g. 500ms, 10s, 1m)`},
		},
		{
			name: "undefined env var",
			src:  base + "mqtt:\n  password: ${MQTT_PASSWORD}\n",
			want: []string{`cams.yaml:10: mqtt.password: environment variable MQTT_PASSWORD is not set (write ${MQTT_PASSWORD:-default} for a fallback)`},
		},
		{
			name: "env var making a number invalid",
			src:  strings.Replace(base, "threshold: 0.3", "threshold: ${DOOR_THRESHOLD}", 1),
			env:  map[string]string{"DOOR_THRESHOLD": "high"},
			want: []string{`cams.yaml:8: cameras[0].labels[0].threshold: expected a number, got "high"`},
		},
		{
			name: "missing model path and no cameras",
			src:  "inference:\n  device: cpu\n",
			want: []string{
				`cams.yaml: model.path: is required: a SigLIP model folder in the Hugging Face ONNX layout (config.json, tokenizer.json, onnx/); ` +
					`or set model.id to a Hugging Face model id, e.g. Xenova/siglip-base-patch16-224, to have it downloaded`,
				`cams.yaml: cameras: at least one camera is required`,
			},
		},
		{
			name: "model path and id",
			src:  strings.Replace(base, "  path: /models/siglip\n", "  path: /models/siglip\n  id: Xenova/siglip-base-patch16-224\n", 1),
			want: []string{`cams.yaml:3: model.id: set model.path (a folder) or model.id (a Hugging Face model id), not both`},
		},
		{
			name: "model id malformed",
			src:  strings.Replace(base, "  path: /models/siglip\n", "  id: ../siglip\n", 1),
			want: []string{`cams.yaml:2: model.id: must be a Hugging Face model id, owner/name (e.g. Xenova/siglip-base-patch16-224), got "../siglip"`},
		},
		{
			name: "model revision without id",
			src:  strings.Replace(base, "  path: /models/siglip\n", "  path: /models/siglip\n  revision: main\n", 1),
			want: []string{`cams.yaml:3: model.revision: only applies to model.id (a Hugging Face model)`},
		},
		{
			name: "bad device and batch size",
			src:  base + "inference:\n  device: gpu\n  batch_size: 0\n",
			want: []string{
				`cams.yaml:10: inference.device: must be cpu, auto, cuda, cuda:N, tensorrt or openvino, got "gpu"`,
				`cams.yaml:11: inference.batch_size: must be between 1 and 256, got 0`,
			},
		},
		{
			name: "mqtt broker scheme and qos",
			src:  base + "mqtt:\n  broker: http://broker:1883\n  qos: 3\n",
			want: []string{
				`cams.yaml:10: mqtt.broker: scheme must be tcp, mqtt, ssl, tls, mqtts, ws or wss, got "http"`,
				`cams.yaml:11: mqtt.qos: must be 0, 1 or 2, got 3`,
			},
		},
		{
			name: "topic prefix with wildcard",
			src:  base + "mqtt:\n  topic_prefix: home/#\n",
			want: []string{`cams.yaml:10: mqtt.topic_prefix: must not contain +, # or NUL, got "home/#"`},
		},
		{
			name: "off_threshold above threshold",
			src:  strings.Replace(base, "threshold: 0.3", "threshold: 0.3\n        off_threshold: 0.5", 1),
			want: []string{`cams.yaml:9: cameras[0].labels[0].off_threshold: must be between 0 and threshold (0.3), got 0.5`},
		},
		{
			name: "min_frames zero and negative cooldown",
			src:  strings.Replace(base, "threshold: 0.3", "threshold: 0.3\n        min_frames: 0\n        cooldown: -1s", 1),
			want: []string{
				`cams.yaml:9: cameras[0].labels[0].min_frames: must be at least 1, got 0`,
				`cams.yaml:10: cameras[0].labels[0].cooldown: must not be negative, got -1s`,
			},
		},
		{
			name: "skip_unchanged out of range",
			src:  strings.Replace(base, "    labels:", "    skip_unchanged: {min_change: 1.5, max_skip: 0s}\n    labels:", 1),
			want: []string{
				`cams.yaml:6: cameras[0].skip_unchanged.min_change: must be more than 0 and less than 1 (a fraction of the picture), got 1.5`,
				`cams.yaml:6: cameras[0].skip_unchanged.max_skip: must be more than 0 (every frame is scored at least this often), got 0s`,
			},
		},
		{
			name: "camera name not topic safe",
			src:  strings.Replace(base, "name: door", "name: front door", 1),
			want: []string{`cams.yaml:4: cameras[0].name: must be 1-63 letters, digits, _ or - (starting with a letter or digit), got "front door"`},
		},
		{
			name: "crop outside the frame",
			src:  strings.Replace(base, "    labels:", "    crop: {x: 0.5, y: 0, width: 0.6, height: 1}\n    labels:", 1),
			want: []string{`cams.yaml:6: cameras[0].crop: normalized region must lie within the frame (x+width <= 1, y+height <= 1), got x=0.5 y=0 width=0.6 height=1`},
		},
		{
			name: "empty prompt",
			src:  strings.Replace(base, "threshold: 0.3", "threshold: 0.3\n        prompts: [\"a person\", \" \"]", 1),
			want: []string{`cams.yaml:9: cameras[0].labels[0].prompts[1]: must not be empty`},
		},
		{
			name: "template without placeholder",
			src:  strings.Replace(base, "  path: /models/siglip", "  path: /models/siglip\n  template: a photo", 1),
			want: []string{`cams.yaml:3: model.template: must contain {} exactly once (where the prompt goes), got "a photo"`},
		},
		{
			name: "tls cert without key",
			src:  base + "mqtt:\n  broker: ssl://10.0.0.5:8883\n  tls:\n    cert_file: /etc/siglipd/client.pem\n",
			want: []string{`cams.yaml:12: mqtt.tls: cert_file and key_file must be given together`},
		},
		{
			name: "tls files with a plain broker",
			src:  base + "mqtt:\n  broker: tcp://u:BrokerPw@10.0.0.5:1883\n  tls:\n    ca_file: /etc/siglipd/ca.pem\n",
			want: []string{`cams.yaml:12: mqtt.tls.ca_file: is set but mqtt.broker (tcp://u:***@10.0.0.5:1883) is not TLS: use ssl://, mqtts:// or wss://`},
		},
		{
			name: "bad http listen",
			src:  base + "http:\n  listen: localhost\n",
			want: []string{`cams.yaml:10: http.listen: must be host:port (e.g. 127.0.0.1:8080) or empty to disable, got "localhost"`},
		},
		{
			name: "unknown device class",
			src:  strings.Replace(base, "threshold: 0.3", "threshold: 0.3\n        device_class: human", 1),
			want: []string{`cams.yaml:9: cameras[0].labels[0].device_class: is not a Home Assistant binary_sensor device class: "human"`},
		},
		{
			name: "invalid YAML",
			src:  "model:\n  path: /m\n   variant: fp16\n",
			want: []string{`cams.yaml:3: invalid YAML: mapping values are not allowed in this context`,
				`     2 |   path: /m`,
				`>    3 |    variant: fp16`},
		},
		// Syntax errors name the line where the problem is (yaml.v3 alone
		// said 4, 2 and 5 for these), with the column where it is known.
		{
			name: "a tab in the indentation",
			src:  "model: {path: /m}\ncameras:\n  - name: a\n    url: /v.mp4\n\tlabels: []\n",
			want: []string{`cams.yaml:5:1: invalid YAML: a tab character: YAML indents with spaces only`,
				`     4 |     url: /v.mp4`,
				`>    5 | →labels: []`,
				`       | ^`},
		},
		{
			name: "an unclosed [",
			src:  "model: {path: /m}\ncameras:\n  - {name: a, url: /v.mp4, labels: [{name: x}\nsink: mqtt\n",
			want: []string{`cams.yaml:4:1: invalid YAML: ',' or ']' must be specified`,
				`     3 |   - {name: a, url: /v.mp4, labels: [{name: x}`,
				`>    4 | sink: mqtt`,
				`       | ^`},
		},
		{
			name: "a bad indent",
			src:  "model: {path: /m}\ncameras:\n  - name: a\n    url: /v.mp4\n    labels:\n      - name: x\n        threshold: 0.5\n       min_frames: 2\n",
			want: []string{`cams.yaml:8:8: invalid YAML: value is not allowed in this context`,
				`     7 |         threshold: 0.5`,
				`>    8 |        min_frames: 2`,
				`       |        ^`},
		},
		{
			name: "a misspelt key, not also the key it misses",
			src:  "model: {path: /m}\ncameras:\n  - name: a\n    url: /v.mp4\n    lables: [{name: x}]\n",
			want: []string{`cams.yaml:5: cameras[0].lables: unknown key (did you mean "labels"?)`},
		},
		{
			name: "a merged value is reported where it is merged",
			src: "model: {path: /m}\ncameras:\n  - name: a\n    url: /v.mp4\n    labels:\n      - &l {name: x, threshold: 0.5, min_frames: 0}\n" +
				"      - <<: *l\n        name: y\n",
			want: []string{`cams.yaml:6: cameras[0].labels[0].min_frames: must be at least 1, got 0`,
				`cams.yaml:7: cameras[0].labels[1].min_frames: must be at least 1, got 0 (merged from line 6)`},
		},
		{
			name: "a merged value that cannot be decoded",
			src:  "model: {path: /m}\ncameras:\n  - &c {name: a, url: /v.mp4, fps: fast, labels: [{name: x}]}\n  - <<: *c\n    name: b\n",
			want: []string{`cams.yaml:3: cameras[0].fps: expected a number, got "fast"`,
				`cams.yaml:4: cameras[1].fps: expected a number, got "fast" (merged from line 3)`},
		},
		{
			name: "duplicate key",
			src:  base + "model:\n  path: /other\n",
			want: []string{`cams.yaml:9: model: duplicate key (first at line 1)`},
		},
		{
			name: "remote backend without a url",
			src:  base + "inference: {backend: remote}\n",
			want: []string{`cams.yaml:9: inference.remote.url: is required when inference.backend is remote (e.g. grpc://triton:8001)`},
		},
		{
			name: "unknown backend",
			src:  base + "inference: {backend: triton}\n",
			want: []string{`cams.yaml:9: inference.backend: must be local (ONNX Runtime here) or remote (an Open Inference Protocol server), got "triton"`},
		},
		{
			name: "remote url problems",
			src: base + `inference:
  backend: remote
  remote:
    url: http://triton:8000
    vision_model: ""
    timeout: 0s
`,
			want: []string{
				`cams.yaml:12: inference.remote.url: scheme must be grpc or grpcs (the Open Inference Protocol's gRPC service), got "http"`,
				`cams.yaml:13: inference.remote.vision_model: must name the served model`,
				`cams.yaml:14: inference.remote.timeout: must be between 0s and 5m, got 0s`,
			},
		},
		{
			name: "remote url without port, credentials in the url",
			src:  base + "inference: {backend: remote, remote: {url: \"grpc://triton\"}}\n",
			want: []string{`cams.yaml:9: inference.remote.url: must name the gRPC port (Triton serves it on 8001, KServe and MLServer on 8081), got grpc://triton`},
		},
		{
			name: "remote url with a password is redacted",
			src:  base + "inference: {backend: remote, remote: {url: \"grpc://u:S3cret@triton:8001\"}}\n",
			want: []string{`cams.yaml:9: inference.remote.url: must be only scheme://host:port (credentials go in inference.remote.headers), got grpc://u:***@triton:8001`},
		},
		{
			name: "remote tls and headers",
			src: base + `inference:
  backend: remote
  remote:
    url: grpc://triton:8001
    tls: {ca_file: /etc/ca.pem}
    headers:
      - {name: Authorization, value: "Bearer x"}
      - {name: grpc-timeout, value: 1S}
      - {name: x-api-key, value: ""}
`,
			want: []string{
				`cams.yaml:13: inference.remote.tls.ca_file: is set but inference.remote.url (grpc://triton:8001) is not TLS: use grpcs://`,
				`cams.yaml:15: inference.remote.headers[0].name: must be a lower-case header name of letters, digits, -, _ and . (not ending in -bin), got "Authorization"`,
				`cams.yaml:16: inference.remote.headers[1].name: grpc-timeout is a header gRPC sets itself`,
				`cams.yaml:17: inference.remote.headers[2].value: is empty (was a ${VARIABLE:-} empty?)`,
			},
		},
		{
			name: "several problems at once",
			src: `model: {path: /m, resize: nearest}
sink: kafka
cameras:
  - url: rtsp://cam/1
    fps: -1
    labels: [{name: a, threshold: 0}]
`,
			want: []string{
				`cams.yaml:1: model.resize: must be exact or fast, got "nearest"`,
				`cams.yaml:2: sink: must be mqtt or stdout, got "kafka"`,
				`cams.yaml:4: cameras[0].name: is required`,
				`cams.yaml:5: cameras[0].fps: must be more than 0 and at most 60, got -1`,
				`cams.yaml:6: cameras[0].labels[0].threshold: must be between 0 and 1, got 0`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("cams.yaml", []byte(tt.src), env(tt.env))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse error = %v, want Errors", err)
			}
			got := strings.Split(errs.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}

// TestExample keeps configs/cams.yaml and configs/demo.yaml valid.
func TestExample(t *testing.T) {
	secrets := env(map[string]string{"MQTT_PASSWORD": "s3cret", "DRIVEWAY_PASSWORD": "hunter2"})
	if _, err := Parse("cams.yaml", Example, secrets); err != nil {
		t.Fatalf("configs/cams.yaml is invalid:\n%v", err)
	}
	// Its secrets are required: a forgotten variable is an error, not an
	// empty password.
	_, err := Parse("cams.yaml", Example, env(nil))
	for _, v := range []string{"MQTT_PASSWORD", "DRIVEWAY_PASSWORD"} {
		if err == nil || !strings.Contains(err.Error(), "environment variable "+v+" is not set") {
			t.Errorf("configs/cams.yaml without $%s: %v, want an error naming it", v, err)
		}
	}
	if _, err := Parse("demo.yaml", Demo, env(nil)); err != nil {
		t.Fatalf("configs/demo.yaml is invalid:\n%v", err)
	}
	if _, err := os.Stat("cams.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		err  bool
	}{
		{"262144", 262144, false}, {"256KiB", 256 << 10, false}, {"1 MB", 1000000, false},
		{"2gib", 2 << 30, false}, {"12 parsecs", 0, true}, {"-1", 0, true},
	}
	for _, tt := range tests {
		got, err := parseByteSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseByteSize(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// TestLoadResolvesPaths: relative paths are relative to the config file.
func TestLoadResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	body := `state_dir: state
model: {path: ../models/siglip}
mqtt: {broker: "mqtts://10.0.0.5:8883", tls: {ca_file: certs/ca.pem}}
cameras:
  - {name: a, url: videos/door.mp4, labels: [{name: x}]}
  - {name: b, url: /abs/door.mp4, labels: [{name: x}]}
  - {name: c, url: "rtsp://10.0.0.2/live", labels: [{name: x}]}
  - {name: d, url: "0", labels: [{name: x}]}
`
	path := dir + "/conf/cams.yaml"
	os.MkdirAll(dir+"/conf", 0o755)
	os.WriteFile(path, []byte(body), 0o644)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"state_dir": dir + "/conf/state", "model.path": dir + "/models/siglip", "ca_file": dir + "/conf/certs/ca.pem",
		"a": dir + "/conf/videos/door.mp4", "b": "/abs/door.mp4", "c": "rtsp://10.0.0.2/live", "d": "0",
	}
	got := map[string]string{"state_dir": cfg.StateDir, "model.path": cfg.Model.Path, "ca_file": cfg.MQTT.TLS.CAFile}
	for _, c := range cfg.Cameras {
		got[c.Name] = c.URL.Reveal()
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
}

// TestHostileFiles: what a wrong path or a hostile file costs is bounded,
// and each gets one clear error.
func TestHostileFiles(t *testing.T) {
	t.Run("/dev/zero", func(t *testing.T) {
		start := time.Now()
		_, err := Load("/dev/zero")
		if err == nil || !strings.Contains(err.Error(), "config /dev/zero: larger than 1MiB, the most siglipd reads") {
			t.Errorf("Load(/dev/zero) = %v, want the size error", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("Load(/dev/zero) took %s", took)
		}
	})
	t.Run("a file over the limit", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "big.yaml")
		if err := os.WriteFile(p, []byte(base+strings.Repeat("# padding\n", MaxFileSize/10+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than 1MiB") {
			t.Errorf("Load = %v, want the size error", err)
		}
	})
	t.Run("many problems", func(t *testing.T) {
		src := base
		for i := range 80 {
			src += fmt.Sprintf("nonsense_%d: 1\n", i)
		}
		_, err := Parse("cams.yaml", []byte(src), env(nil))
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 80 {
			t.Fatalf("Parse = %v, want 80 problems", err)
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != MaxReported+1 || lines[MaxReported] != "… and 30 more" {
			t.Errorf("%d lines, last %q; want %d lines ending with … and 30 more", len(lines), lines[len(lines)-1], MaxReported+1)
		}
	})
	t.Run("alias bomb", func(t *testing.T) {
		// Each level merges the one before nine times: 9^9 pairs if expanded.
		src := "a0: &a0 {fps: 1}\n"
		for i := 1; i <= 9; i++ {
			src += fmt.Sprintf("a%d: &a%d {<<: [", i, i) + strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 9), ", ") + "]}\n"
		}
		src += "cameras:\n  - <<: *a9\n    name: door\n    url: /v.mp4\n    labels: [{name: x}]\nmodel: {path: /m}\n"
		start := time.Now()
		_, err := Parse("bomb.yaml", []byte(src), env(nil))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("aliases expand to more than %d values", maxVisits)) {
			t.Errorf("Parse = %v, want the alias error", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Parse took %s", took)
		}
	})
	t.Run("second document", func(t *testing.T) {
		_, err := Parse("cams.yaml", []byte(base+"---\nsink: stdout\n"), env(nil))
		want := "cams.yaml:9: a second YAML document (---): siglipd reads one; put everything in the first"
		if err == nil || err.Error() != want {
			t.Errorf("Parse = %v, want %q", err, want)
		}
	})
}

// TestQuotedNumbers: one rule for every numeric and boolean key: quoted or
// not, the text is what counts ("0.5" is 0.5), so a value from ${VAR}
// works anywhere; text that is not a number is an error either way.
func TestQuotedNumbers(t *testing.T) {
	plain := `model: {path: /m, logit_scale: 4.7, logit_bias: -12.5}
inference: {batch_size: 4, threads: 2}
mqtt: {qos: 2, retain: true, outbox: {max_messages: 500}, scores: {enabled: true, interval: 2s}, snapshots: {enabled: true, max_bytes: 1024}}
label_defaults: {threshold: 0.4, min_frames: 3, off_frames: 4}
cameras:
  - {name: a, url: /v.mp4, fps: 1.5, loop: true, crop: {x: 0.1, y: 0.2, width: 0.5, height: 0.5},
     labels: [{name: x, threshold: 0.3, off_threshold: 0.2, min_frames: 2, off_frames: 2}]}
`
	quoted := regexp.MustCompile(`: (-?[0-9][0-9.]*|true)([,}\n])`).ReplaceAllString(plain, `: "$1"$2`)
	if strings.Count(quoted, `"`) < 2*20 {
		t.Fatalf("the quoted file quotes too few values:\n%s", quoted)
	}
	a, err := Parse("plain.yaml", []byte(plain), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("quoted.yaml", []byte(quoted), env(nil))
	if err != nil {
		t.Fatalf("quoted numbers refused:\n%v\n%s", err, quoted)
	}
	b.source = a.source // only the file name differs
	if !reflect.DeepEqual(a, b) {
		t.Errorf("quoted and plain numbers differ:\n%+v\n%+v", a, b)
	}
	for _, bad := range []string{`fps: "fast"`, `fps: fast`} {
		_, err := Parse("bad.yaml", []byte(strings.Replace(plain, "fps: 1.5", bad, 1)), env(nil))
		if err == nil || !strings.Contains(err.Error(), `cameras[0].fps: expected a number, got "fast"`) {
			t.Errorf("%s: %v, want the number error", bad, err)
		}
	}
}

// TestModelID: a hub model id (with or without owner, with a revision)
// takes the place of model.path.
func TestModelID(t *testing.T) {
	for _, id := range []string{"Xenova/siglip-base-patch16-224", "google/siglip2-base-patch16-224", "siglip_v1.5"} {
		src := strings.Replace(base, "  path: /models/siglip\n", "  id: "+id+"\n  revision: v1.0\n", 1)
		cfg, err := Parse("cams.yaml", []byte(src), env(nil))
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if cfg.Model.ID != id || cfg.Model.Revision != "v1.0" || cfg.Model.Path != "" {
			t.Errorf("%s: model %+v", id, cfg.Model)
		}
	}
}

// TestSkipUnchangedDefaults: the change gate is on by default, and
// enabled: false alone turns it off.
func TestSkipUnchangedDefaults(t *testing.T) {
	cfg, err := Parse("cams.yaml", []byte(base), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := SkipUnchanged{Enabled: true, MinChange: 0.005, MaxSkip: Duration(10 * time.Second)}
	if got := cfg.Cameras[0].SkipUnchanged; got != want {
		t.Errorf("default %+v, want %+v", got, want)
	}
	cfg, err = Parse("cams.yaml", []byte(strings.Replace(base, "    labels:", "    skip_unchanged: {enabled: false}\n    labels:", 1)), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Cameras[0].SkipUnchanged; got.Enabled || got.MaxSkip != want.MaxSkip {
		t.Errorf("enabled: false gives %+v", got)
	}
}

// TestOffThresholdDefault: the hysteresis when off_threshold is not set.
// Low thresholds must keep a gap above 0, or their events never end.
func TestOffThresholdDefault(t *testing.T) {
	off := 0.25
	for _, c := range []struct {
		label Label
		want  float64
	}{
		{Label{Threshold: 0.9}, 0.8},
		{Label{Threshold: 0.3}, 0.2},
		{Label{Threshold: 0.2}, 0.1},
		{Label{Threshold: 0.15}, 0.075},
		{Label{Threshold: 0.05}, 0.025},
		{Label{Threshold: 2e-6}, 1e-6},
		{Label{Threshold: 0.5, OffThreshold: &off}, 0.25},
	} {
		if got := c.label.EffectiveOffThreshold(); got != c.want {
			t.Errorf("threshold %g, off_threshold %v: off threshold %v, want %v", c.label.Threshold, c.label.OffThreshold, got, c.want)
		}
	}
}

// TestModelLowercase: model.lowercase is auto unless the file says true or
// false (also through ${VAR}); anything else, or a misspelt key, is an error
// that names the key.
func TestModelLowercase(t *testing.T) {
	tests := []struct {
		name, line string // line goes under model:
		env        map[string]string
		want       string
		wantErr    string
	}{
		{name: "default", want: "auto"},
		{name: "true", line: "lowercase: true", want: "true"},
		{name: "false", line: "lowercase: false", want: "false"},
		{name: "quoted", line: `lowercase: "auto"`, want: "auto"},
		{name: "from the environment", line: "lowercase: ${LOWER}", env: map[string]string{"LOWER": "false"}, want: "false"},
		{name: "yes", line: "lowercase: yes",
			wantErr: `cams.yaml:3: model.lowercase: must be auto (as the model's tokenizer files say), true or false, got "yes"`},
		{name: "capitalized", line: "lowercase: True",
			wantErr: `cams.yaml:3: model.lowercase: must be auto (as the model's tokenizer files say), true or false, got "True"`},
		{name: "misspelt", line: "lower_case: true", wantErr: `cams.yaml:3: model.lower_case: unknown key (did you mean "lowercase"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := base
			if tt.line != "" {
				src = strings.Replace(base, "  path: /models/siglip\n", "  path: /models/siglip\n  "+tt.line+"\n", 1)
			}
			cfg, err := Parse("cams.yaml", []byte(src), env(tt.env))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error:\n got: %v\nwant: %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Model.Lowercase != tt.want {
				t.Errorf("model.lowercase = %q, want %q", cfg.Model.Lowercase, tt.want)
			}
		})
	}
}
