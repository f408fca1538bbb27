// Package configs holds siglipd's configuration: the schema, its defaults, the
// loader (defaults → file → ${ENV} substitution → Validate) and the example
// files shipped with the project (cams.yaml, demo.yaml).
//
// The schema is plain data. Stage packages (capture, infer, rules, publish)
// take their own options, which daemon fills from it, so a stage can be
// tested without a config file, and no stage imports this package: the
// helpers that must agree everywhere (Slug, RedactURL, ParseSource) are in
// internal/kit.
package configs

import (
	"fmt"
	"strconv"
	"time"
)

// Config is one siglipd configuration file.
type Config struct {
	// StateDir holds the MQTT outbox and other state that must survive restarts.
	StateDir  string        `yaml:"state_dir"`
	Model     Model         `yaml:"model"`
	Inference Inference     `yaml:"inference"`
	Sink      string        `yaml:"sink"` // where events go: "mqtt" or "stdout"
	MQTT      MQTT          `yaml:"mqtt"`
	HTTP      HTTP          `yaml:"http"`
	Store     Store         `yaml:"store"`
	Defaults  LabelDefaults `yaml:"label_defaults"`
	Cameras   []Camera      `yaml:"cameras"`

	// source is where the values came from, for ErrorAt.
	source struct {
		file  string
		lines map[string]int // key path → line
	}
}

// ErrorAt makes an Error about the value at path (e.g. "model.path") that
// names the file and line it came from: for problems found after loading,
// such as a model folder that lacks a file.
func (c *Config) ErrorAt(path, format string, args ...any) Error {
	return Error{File: c.source.file, Line: lineOf(c.source.lines, path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Model names a SigLIP model in the Hugging Face / Xenova ONNX layout: a
// folder (Path), or a repository of the Hugging Face hub (ID, at Revision)
// that siglipd fetches into the hub cache huggingface_hub uses. Exactly one
// of Path and ID is set.
type Model struct {
	Path string `yaml:"path"`
	// ID is a hub model id, e.g. Xenova/siglip-base-patch16-224.
	ID string `yaml:"id"`
	// Revision is the branch, tag or commit of ID; "" means main.
	Revision string `yaml:"revision"`
	// Variant picks onnx/<tower>_model<suffix>.onnx: "fp32" (no suffix),
	// "fp16", "quantized", "q8", "int8", "uint8", "q4", "bnb4".
	Variant string `yaml:"variant"`
	// Template turns a prompt into the text the tower sees; "{}" is replaced.
	Template string `yaml:"template"`
	// Lowercase is "auto" (lower-case prompts as the model's tokenizer files
	// say, as transformers does: SigLIP yes, SigLIP 2 no), "true" (as the
	// model was trained: SigLIP 2 saw lower-cased text) or "false".
	Lowercase string `yaml:"lowercase"`
	// LogitScale and LogitBias override the values read from onnx/model.onnx
	// (LogitScale is the raw parameter: the model multiplies by exp(LogitScale)).
	LogitScale *float64 `yaml:"logit_scale"`
	LogitBias  *float64 `yaml:"logit_bias"`
	// Resize is "exact" (PIL's antialiased resampling, what the Python pipeline
	// does) or "fast" (OpenCV INTER_AREA; see docs/04-models.md for its measured deviation).
	Resize string `yaml:"resize"`
}

// Inference configures where the towers run: ONNX Runtime in this process
// (backend local), or an Open Inference Protocol server (backend remote).
type Inference struct {
	// Backend is "local" or "remote".
	Backend string `yaml:"backend"`
	// Remote is the inference server of the remote backend.
	Remote RemoteInference `yaml:"remote"`
	// Device is "cpu", "auto" (the best provider the library has, else CPU),
	// "cuda", "cuda:N", "tensorrt" or "openvino".
	Device       string   `yaml:"device"`
	BatchSize    int      `yaml:"batch_size"`
	MaxBatchWait Duration `yaml:"max_batch_wait"`
	// Threads is ONNX Runtime's intra-op thread count; 0 lets it choose.
	Threads int `yaml:"threads"`
	// GraphOptimization is "disabled", "basic", "extended" or "all".
	GraphOptimization string `yaml:"graph_optimization"`
	// AllowSpinning lets ONNX Runtime's idle intra-op threads busy-wait for
	// the next piece of work. ONNX Runtime's default is on; siglipd's is
	// off: between batches the spinning threads burn CPU that the
	// cameras' decoding needs (see docs/06-speed.md).
	AllowSpinning bool `yaml:"allow_spinning"`
	// ORTLib is the path of libonnxruntime.so; --ort-lib and SIGLIPD_ORT_LIB win over it.
	ORTLib string `yaml:"ort_lib"`
}

// RemoteInference is an Open Inference Protocol (KServe v2) server that
// serves the SigLIP towers over gRPC: NVIDIA Triton, KServe, Seldon MLServer.
type RemoteInference struct {
	// URL is grpc://host:port, or grpcs://host:port for TLS.
	URL URL `yaml:"url"`
	// VisionModel and TextModel are the served models' names.
	VisionModel string `yaml:"vision_model"`
	TextModel   string `yaml:"text_model"`
	// ModelVersion is the served version of both; "" lets the server choose.
	ModelVersion string   `yaml:"model_version"`
	Timeout      Duration `yaml:"timeout"` // one call; a server slower than this counts as down
	TLS          TLS      `yaml:"tls"`
	// Headers are sent with every call, e.g. {name: authorization, value: "Bearer ${TOKEN}"}.
	Headers []Header `yaml:"headers"`
}

// Header is a request header (gRPC metadata); its value is a secret.
type Header struct {
	Name  string `yaml:"name"`
	Value Secret `yaml:"value"`
}

// MQTT configures the broker connection and the topics siglipd publishes.
type MQTT struct {
	Broker      URL       `yaml:"broker"` // may carry user:password: redacted in all output
	ClientID    string    `yaml:"client_id"`
	Username    string    `yaml:"username"`
	Password    Secret    `yaml:"password"`
	TLS         TLS       `yaml:"tls"`
	TopicPrefix string    `yaml:"topic_prefix"`
	QoS         int       `yaml:"qos"`
	Retain      bool      `yaml:"retain"` // retain flag on event messages (state topics are always retained)
	Outbox      Outbox    `yaml:"outbox"`
	Discovery   Discovery `yaml:"discovery"`
	Scores      Scores    `yaml:"scores"`
	Snapshots   Snapshots `yaml:"snapshots"`
}

// TLS configures a TLS connection (to the broker, or the inference server).
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Outbox bounds the on-disk queue of messages not yet acknowledged by the broker.
type Outbox struct {
	MaxMessages int `yaml:"max_messages"`
}

// Discovery configures Home Assistant MQTT discovery.
type Discovery struct {
	Enabled bool   `yaml:"enabled"`
	Prefix  string `yaml:"prefix"`
}

// Scores configures the optional per-label probability topics.
type Scores struct {
	Enabled  bool     `yaml:"enabled"`
	Interval Duration `yaml:"interval"`
}

// Snapshots configures the JPEG published when an event starts.
type Snapshots struct {
	Enabled  bool     `yaml:"enabled"`
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// HTTP configures the status server (health, metrics, live page).
type HTTP struct {
	Listen string `yaml:"listen"` // "" disables the server
	Token  Secret `yaml:"token"`  // optional bearer token for every endpoint but /healthz
	// AllowedHosts are the host names the server answers to besides IP
	// addresses, localhost, this machine's name and the listen host (DNS
	// rebinding protection). ".example.com" also allows its subdomains.
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// Store configures the frame store (state_dir/frames): scored frames'
// embeddings and thumbnails, kept for search and for trying labels on the
// past.
type Store struct {
	Enabled bool `yaml:"enabled"`
	// Every: a camera's scored frame is kept at least this often, besides
	// the frames the change gate saw change and those scored while one of
	// the camera's events was open.
	Every   Duration `yaml:"every"`
	Keep    Duration `yaml:"keep"`     // frames older than this are deleted
	MaxSize ByteSize `yaml:"max_size"` // the oldest frames go first past this
}

// LabelDefaults are the trigger settings a label inherits unless it sets its own.
type LabelDefaults struct {
	Threshold float64  `yaml:"threshold"`
	MinFrames int      `yaml:"min_frames"`
	OffFrames int      `yaml:"off_frames"`
	OffDelay  Duration `yaml:"off_delay"`
	Cooldown  Duration `yaml:"cooldown"`
}

// Camera is one video source and the labels scored on its frames.
type Camera struct {
	Name string `yaml:"name"`
	// URL is rtsp://, rtsps://, http(s)://, file://, a file path, /dev/videoN
	// or a USB index ("0"). Credentials in it are redacted in all output.
	URL URL `yaml:"url"`
	// FPS is how many frames per second are handed to inference.
	FPS float64 `yaml:"fps"`
	// ReadTimeout is the longest gap between two frames of a stream that
	// is running; a longer one is a stall.
	ReadTimeout Duration `yaml:"read_timeout"`
	// OpenTimeout bounds connecting, up to and including the first frame,
	// which needs a keyframe: it must cover the camera's keyframe interval.
	// Unset (0) means kit.OpenTimeoutFor(ReadTimeout).
	OpenTimeout   Duration `yaml:"open_timeout"`
	RTSPTransport string   `yaml:"rtsp_transport"` // "tcp" or "udp"
	// Decode is which frames of a stream or file are decoded: "all",
	// "keyframes" (sampling is then capped at the keyframe rate) or "auto"
	// (key frames only while they come at least fps times a second).
	// Not for devices.
	Decode string `yaml:"decode"`
	// HWAccel is a hardware decoder to try first: "none", "vaapi", "nvdec"
	// or "v4l2m2m"; one that cannot open falls back to software. Not for
	// devices.
	HWAccel string `yaml:"hwaccel"`
	// Format, Width, Height and FrameRate ask a video device (USB camera)
	// for a pixel format (mjpeg, yuyv, h264, or a FourCC), a size and its
	// own frame rate; unset leaves the device's choice. Devices only.
	Format    string  `yaml:"format"`
	Width     int     `yaml:"width"`
	Height    int     `yaml:"height"`
	FrameRate float64 `yaml:"frame_rate"`
	Loop      bool    `yaml:"loop"` // file sources: start again at the end
	Crop      *Region `yaml:"crop"`
	// SkipUnchanged spares the vision tower frames that look like the last
	// scored one.
	SkipUnchanged SkipUnchanged `yaml:"skip_unchanged"`
	Labels        []Label       `yaml:"labels"`
}

// SkipUnchanged is a camera's change gate: a sampled frame whose picture
// (inside the crop) differs from the last scored frame's in less than
// MinChange of its area is not scored; it takes the last scored frame's
// probabilities, so the rules still see a frame at its time. Every frame
// is scored at least every MaxSkip, for slow drifts such as daylight.
type SkipUnchanged struct {
	Enabled bool `yaml:"enabled"`
	// MinChange is the fraction of the picture that must have changed: the
	// share of cells of a small grey thumbnail whose brightness moved by
	// more than a noise margin.
	MinChange float64  `yaml:"min_change"`
	MaxSkip   Duration `yaml:"max_skip"`
}

// Region is a rectangle of the frame. With Units "normalized" (the default)
// the numbers are fractions of the frame size; with "pixels" they are pixels.
type Region struct {
	X      float64 `yaml:"x"`
	Y      float64 `yaml:"y"`
	Width  float64 `yaml:"width"`
	Height float64 `yaml:"height"`
	Units  string  `yaml:"units"`
}

// Label is one thing to watch for on a camera.
type Label struct {
	Name string `yaml:"name"`
	// Prompts are the texts embedded for this label; their embeddings are
	// averaged. Empty means [Name].
	Prompts   []string `yaml:"prompts"`
	Threshold float64  `yaml:"threshold"`
	// OffThreshold is the probability below which an active label counts as
	// gone; unset means Threshold - 0.1 (hysteresis).
	OffThreshold *float64 `yaml:"off_threshold"`
	MinFrames    int      `yaml:"min_frames"`
	OffFrames    int      `yaml:"off_frames"`
	OffDelay     Duration `yaml:"off_delay"`
	Cooldown     Duration `yaml:"cooldown"`
	// DeviceClass is the Home Assistant binary_sensor device_class (optional).
	DeviceClass string `yaml:"device_class"`
	// PinThreshold keeps Threshold even when a threshold was applied from
	// marked frames on the live page (the calibration file).
	PinThreshold bool `yaml:"pin_threshold"`
	// Source is where the label comes from: "" the config file,
	// SourcePage the labels added on the page (state_dir/labels.json).
	Source string `yaml:"-"`
}

// SourcePage is Label.Source for a label added on the page.
const SourcePage = "page"

// Default returns the configuration every file starts from.
func Default() Config {
	return Config{
		StateDir: defaultStateDir(),
		Model: Model{
			Variant:   "fp32",
			Template:  "This is a photo of {}.",
			Lowercase: "auto",
			Resize:    "exact",
		},
		Inference: Inference{
			Backend:           "local",
			Remote:            RemoteInference{VisionModel: "siglip_vision", TextModel: "siglip_text", Timeout: Duration(10 * time.Second)},
			Device:            "cpu",
			BatchSize:         8,
			MaxBatchWait:      Duration(50 * time.Millisecond),
			GraphOptimization: "all",
		},
		Sink: "mqtt",
		MQTT: MQTT{
			Broker:      "tcp://127.0.0.1:1883",
			ClientID:    "siglipd",
			TopicPrefix: "siglipd",
			QoS:         1,
			Outbox:      Outbox{MaxMessages: 10000},
			Discovery:   Discovery{Enabled: true, Prefix: "homeassistant"},
			Scores:      Scores{Enabled: false, Interval: Duration(time.Second)},
			Snapshots:   Snapshots{Enabled: false, MaxBytes: 256 << 10},
		},
		HTTP:  HTTP{Listen: "127.0.0.1:8080"},
		Store: Store{Enabled: true, Every: Duration(time.Minute), Keep: Duration(7 * 24 * time.Hour), MaxSize: 2 << 30},
		Defaults: LabelDefaults{
			Threshold: 0.5,
			MinFrames: 2,
			OffFrames: 2,
			Cooldown:  Duration(10 * time.Second),
		},
	}
}

// defaultCamera is what each element of cameras: starts from.
func defaultCamera() Camera {
	return Camera{
		FPS:           2,
		ReadTimeout:   Duration(10 * time.Second),
		RTSPTransport: "tcp",
		Decode:        "all",
		HWAccel:       "none",
		SkipUnchanged: SkipUnchanged{Enabled: true, MinChange: 0.005, MaxSkip: Duration(10 * time.Second)},
	}
}

// defaultLabel is what each element of labels: starts from: the file's
// label_defaults, so a label only states what differs.
func defaultLabel(d LabelDefaults) Label {
	return Label{
		Threshold: d.Threshold,
		MinFrames: d.MinFrames,
		OffFrames: d.OffFrames,
		OffDelay:  d.OffDelay,
		Cooldown:  d.Cooldown,
	}
}

// EffectiveOffThreshold is the probability under which an active label starts
// to end: OffThreshold when set, else Threshold − 0.1, or half the threshold
// when that is more (thresholds under 0.2). SigLIP's probabilities for a
// match are often a few hundredths, so thresholds of 0.05 are common, and
// threshold − 0.1 would make them 0: an event that never ends.
func (l Label) EffectiveOffThreshold() float64 {
	if l.OffThreshold != nil {
		return *l.OffThreshold
	}
	off := max(l.Threshold-0.1, l.Threshold/2)
	// Rounded to 12 digits so 0.3 gives 0.2, not 0.19999999999999998, in
	// --check output, while a threshold of 1e-6 still gets 5e-7.
	off, _ = strconv.ParseFloat(strconv.FormatFloat(off, 'g', 12, 64), 64)
	return off
}

// EffectivePrompts is Prompts, or the label's name when it has none.
func (l Label) EffectivePrompts() []string {
	if len(l.Prompts) > 0 {
		return l.Prompts
	}
	return []string{l.Name}
}
