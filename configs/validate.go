package configs

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/siglipd/siglipd/internal/kit"
)

// FieldError is one invalid value, named by its key path.
type FieldError struct {
	Path string
	Msg  string
}

// Warnings are values that are valid but probably not what was meant; the
// daemon logs them at start and --check prints them.
func (c *Config) Warnings() []Error {
	var out []Error
	if c.Sink == "mqtt" && c.MQTT.Username != "" && c.MQTT.Password == "" {
		out = append(out, c.ErrorAt("mqtt.password", "is empty while mqtt.username is set: the broker will refuse the login "+
			"unless it allows empty passwords (was a ${VARIABLE:-} empty?)"))
	}
	return out
}

// Validate checks every value and returns all problems, not only the first.
func (c *Config) Validate() []FieldError {
	v := &validator{}
	if strings.TrimSpace(c.StateDir) == "" {
		v.add("state_dir", "must not be empty")
	}
	c.Model.validate(v)
	c.Inference.validate(v)
	switch c.Sink {
	case "mqtt":
		c.MQTT.validate(v)
	case "stdout":
	default:
		v.add("sink", "must be mqtt or stdout, got %q", c.Sink)
	}
	c.HTTP.validate(v)
	c.Store.validate(v)
	c.Defaults.validate(v)
	if len(c.Cameras) == 0 {
		v.add("cameras", "at least one camera is required")
	}
	names := map[string]int{}
	for i := range c.Cameras {
		cam := &c.Cameras[i]
		p := fmt.Sprintf("cameras[%d]", i)
		cam.validate(v, p)
		if cam.Name == "" {
			continue
		}
		if j, dup := names[strings.ToLower(cam.Name)]; dup {
			v.add(p+".name", "duplicate camera name %q (also cameras[%d])", cam.Name, j)
		} else {
			names[strings.ToLower(cam.Name)] = i
		}
	}
	return v.errs
}

type validator struct{ errs []FieldError }

func (v *validator) add(path, format string, args ...any) {
	if len(v.errs) >= maxProblems {
		return // Parse stops there too
	}
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func oneOf(s string, allowed ...string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

// Variants maps model.variant to the file suffix of the Xenova ONNX exports.
var Variants = map[string]string{
	"fp32": "", "fp16": "_fp16", "quantized": "_quantized", "q8": "_quantized",
	"int8": "_int8", "uint8": "_uint8", "q4": "_q4", "bnb4": "_bnb4",
}

func (m *Model) validate(v *validator) {
	switch path, id := strings.TrimSpace(m.Path), strings.TrimSpace(m.ID); {
	case path == "" && id == "":
		v.add("model.path", "is required: a SigLIP model folder in the Hugging Face ONNX layout (config.json, tokenizer.json, onnx/); "+
			"or set model.id to a Hugging Face model id, e.g. Xenova/siglip-base-patch16-224, to have it downloaded")
	case path != "" && id != "":
		v.add("model.id", "set model.path (a folder) or model.id (a Hugging Face model id), not both")
	case id != "" && !kit.ValidModelID(id):
		v.add("model.id", "must be a Hugging Face model id, owner/name (e.g. Xenova/siglip-base-patch16-224), got %q", m.ID)
	case id == "" && m.Revision != "":
		v.add("model.revision", "only applies to model.id (a Hugging Face model)")
	}
	if _, ok := Variants[m.Variant]; !ok {
		v.add("model.variant", "must be one of fp32, fp16, quantized, q8, int8, uint8, q4, bnb4, got %q", m.Variant)
	}
	if strings.Count(m.Template, "{}") != 1 {
		v.add("model.template", "must contain {} exactly once (where the prompt goes), got %q", m.Template)
	}
	if !oneOf(m.Lowercase, "auto", "true", "false") {
		v.add("model.lowercase", "must be auto (as the model's tokenizer files say), true or false, got %q", m.Lowercase)
	}
	if !oneOf(m.Resize, "exact", "fast") {
		v.add("model.resize", "must be exact or fast, got %q", m.Resize)
	}
}

var deviceRe = regexp.MustCompile(`^(cpu|auto|tensorrt|openvino|cuda(:[0-9]+)?)$`)

func (in *Inference) validate(v *validator) {
	if !deviceRe.MatchString(in.Device) {
		v.add("inference.device", "must be cpu, auto, cuda, cuda:N, tensorrt or openvino, got %q", in.Device)
	}
	if in.BatchSize < 1 || in.BatchSize > 256 {
		v.add("inference.batch_size", "must be between 1 and 256, got %d", in.BatchSize)
	}
	if in.MaxBatchWait < 0 || in.MaxBatchWait.D() > 10*time.Second {
		v.add("inference.max_batch_wait", "must be between 0s and 10s, got %s", in.MaxBatchWait)
	}
	if in.Threads < 0 {
		v.add("inference.threads", "must be 0 (ONNX Runtime chooses) or more, got %d", in.Threads)
	}
	if !oneOf(in.GraphOptimization, "disabled", "basic", "extended", "all") {
		v.add("inference.graph_optimization", "must be disabled, basic, extended or all, got %q", in.GraphOptimization)
	}
	switch in.Backend {
	case "local":
	case "remote":
		in.Remote.validate(v)
	default:
		v.add("inference.backend", "must be local (ONNX Runtime here) or remote (an Open Inference Protocol server), got %q", in.Backend)
	}
}

// headerRe is a gRPC metadata key siglipd may send: lower-case, as HTTP/2
// wants, and not binary (-bin) or reserved (grpc-).
var headerRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

func (r *RemoteInference) validate(v *validator) {
	const p = "inference.remote."
	u, err := url.Parse(r.URL.Reveal())
	switch {
	case r.URL == "":
		v.add(p+"url", "is required when inference.backend is remote (e.g. grpc://triton:8001)")
	case err != nil:
		v.add(p+"url", "invalid URL: %s", kit.RedactURL(err.Error()))
	case !oneOf(u.Scheme, "grpc", "grpcs"):
		v.add(p+"url", "scheme must be grpc or grpcs (the Open Inference Protocol's gRPC service), got %q", u.Scheme)
	case u.Hostname() == "":
		v.add(p+"url", "has no host")
	case u.Port() == "":
		v.add(p+"url", "must name the gRPC port (Triton serves it on 8001, KServe and MLServer on 8081), got %s", r.URL)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "":
		v.add(p+"url", "must be only scheme://host:port (credentials go in inference.remote.headers), got %s", r.URL)
	}
	for _, m := range []struct{ key, name string }{{"vision_model", r.VisionModel}, {"text_model", r.TextModel}} {
		if strings.TrimSpace(m.name) == "" {
			v.add(p+m.key, "must name the served model")
		}
	}
	if r.Timeout <= 0 || r.Timeout.D() > 5*time.Minute {
		v.add(p+"timeout", "must be between 0s and 5m, got %s", r.Timeout)
	}
	if u != nil && err == nil && u.Scheme != "grpcs" {
		for _, f := range []struct{ key, file string }{{"ca_file", r.TLS.CAFile}, {"cert_file", r.TLS.CertFile}, {"key_file", r.TLS.KeyFile}} {
			if f.file != "" {
				v.add(p+"tls."+f.key, "is set but inference.remote.url (%s) is not TLS: use grpcs://", r.URL)
				break
			}
		}
	}
	if (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
		v.add(p+"tls", "cert_file and key_file must be given together")
	}
	for i, h := range r.Headers {
		key := fmt.Sprintf("%sheaders[%d]", p, i)
		switch k := h.Name; {
		case !headerRe.MatchString(k) || strings.HasSuffix(k, "-bin"):
			v.add(key+".name", "must be a lower-case header name of letters, digits, -, _ and . (not ending in -bin), got %q", k)
		case strings.HasPrefix(k, "grpc-") || k == "te" || k == "content-type" || k == "user-agent":
			v.add(key+".name", "%s is a header gRPC sets itself", k)
		case h.Value == "":
			v.add(key+".value", "is empty (was a ${VARIABLE:-} empty?)")
		}
	}
}

func (m *MQTT) validate(v *validator) {
	u, err := url.Parse(m.Broker.Reveal())
	switch {
	case m.Broker == "":
		v.add("mqtt.broker", "is required when sink is mqtt (e.g. tcp://127.0.0.1:1883)")
	case err != nil:
		v.add("mqtt.broker", "invalid URL: %s", kit.RedactURL(err.Error())) // url.Parse quotes the URL
	case !oneOf(u.Scheme, "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"):
		v.add("mqtt.broker", "scheme must be tcp, mqtt, ssl, tls, mqtts, ws or wss, got %q", u.Scheme)
	case u.Hostname() == "":
		v.add("mqtt.broker", "has no host")
	}
	if strings.TrimSpace(m.ClientID) == "" {
		v.add("mqtt.client_id", "must not be empty (a stable id keeps the broker session across restarts)")
	}
	if err := topicLevelsValid(m.TopicPrefix); err != "" {
		v.add("mqtt.topic_prefix", "%s", err)
	}
	if m.QoS < 0 || m.QoS > 2 {
		v.add("mqtt.qos", "must be 0, 1 or 2, got %d", m.QoS)
	}
	if u != nil && err == nil && !oneOf(u.Scheme, "ssl", "tls", "mqtts", "wss") {
		// paho ignores TLS settings on a plain scheme: a user who set a CA
		// expects encryption, so refuse rather than send in clear.
		for _, f := range []struct{ key, file string }{{"ca_file", m.TLS.CAFile}, {"cert_file", m.TLS.CertFile}, {"key_file", m.TLS.KeyFile}} {
			if f.file != "" {
				v.add("mqtt.tls."+f.key, "is set but mqtt.broker (%s) is not TLS: use ssl://, mqtts:// or wss://", m.Broker)
				break
			}
		}
	}
	if (m.TLS.CertFile == "") != (m.TLS.KeyFile == "") {
		v.add("mqtt.tls", "cert_file and key_file must be given together")
	}
	if m.Outbox.MaxMessages < 1 {
		v.add("mqtt.outbox.max_messages", "must be at least 1, got %d", m.Outbox.MaxMessages)
	}
	if m.Discovery.Enabled {
		if err := topicLevelsValid(m.Discovery.Prefix); err != "" {
			v.add("mqtt.discovery.prefix", "%s", err)
		}
	}
	if m.Scores.Enabled && m.Scores.Interval <= 0 {
		v.add("mqtt.scores.interval", "must be more than 0s, got %s", m.Scores.Interval)
	}
	if m.Snapshots.MaxBytes < 1024 {
		v.add("mqtt.snapshots.max_bytes", "must be at least 1KiB, got %s", m.Snapshots.MaxBytes)
	}
}

// topicLevelsValid checks a topic prefix: no wildcards, no empty levels.
func topicLevelsValid(p string) string {
	switch {
	case p == "":
		return "must not be empty"
	case strings.ContainsAny(p, "+#\x00"):
		return fmt.Sprintf("must not contain +, # or NUL, got %q", p)
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//"):
		return fmt.Sprintf("must not start or end with / or have empty levels, got %q", p)
	}
	return ""
}

func (h *HTTP) validate(v *validator) {
	for i, name := range h.AllowedHosts {
		if name == "" || strings.ContainsAny(name, ":/ @*") {
			v.add(fmt.Sprintf("http.allowed_hosts[%d]", i), "must be a host name, or .domain for its subdomains (no scheme, port or *), got %q", name)
		}
	}
	if h.Listen == "" {
		return
	}
	_, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		v.add("http.listen", "must be host:port (e.g. 127.0.0.1:8080) or empty to disable, got %q", h.Listen)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add("http.listen", "port must be a number from 0 to 65535, got %q", port)
	}
}

func (d *LabelDefaults) validate(v *validator) {
	checkThreshold(v, "label_defaults.threshold", d.Threshold)
	checkTiming(v, "label_defaults", d.MinFrames, d.OffFrames, d.OffDelay, d.Cooldown)
}

func checkThreshold(v *validator, path string, t float64) {
	if !(t > 0 && t < 1) {
		v.add(path, "must be between 0 and 1, got %g", t)
	}
}

func checkTiming(v *validator, path string, minFrames, offFrames int, offDelay, cooldown Duration) {
	if minFrames < 1 {
		v.add(path+".min_frames", "must be at least 1, got %d", minFrames)
	}
	if offFrames < 1 {
		v.add(path+".off_frames", "must be at least 1, got %d", offFrames)
	}
	if offDelay < 0 {
		v.add(path+".off_delay", "must not be negative, got %s", offDelay)
	}
	if cooldown < 0 {
		v.add(path+".cooldown", "must not be negative, got %s", cooldown)
	}
}

var cameraNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

func (c *Camera) validate(v *validator, p string) {
	switch {
	case c.Name == "":
		v.add(p+".name", "is required")
	case !cameraNameRe.MatchString(c.Name):
		// The name is a topic level, a metric label and a URL path element.
		v.add(p+".name", "must be 1-63 letters, digits, _ or - (starting with a letter or digit), got %q", c.Name)
	}
	kind, err := kit.ParseSource(c.URL.Reveal())
	if err != nil {
		v.add(p+".url", "%v", err)
	}
	c.validateDevice(v, p, kind == kit.SourceDevice)
	if !(c.FPS > 0 && c.FPS <= 60) {
		v.add(p+".fps", "must be more than 0 and at most 60, got %g", c.FPS)
	}
	if c.ReadTimeout.D() < time.Second {
		v.add(p+".read_timeout", "must be at least 1s, got %s", c.ReadTimeout)
	}
	switch {
	case c.OpenTimeout == 0: // unset: derived from read_timeout in resolve
	case c.OpenTimeout.D() < time.Second:
		v.add(p+".open_timeout", "must be at least 1s, got %s", c.OpenTimeout)
	case c.OpenTimeout < c.ReadTimeout:
		v.add(p+".open_timeout", "must be at least read_timeout (%s), got %s: opening also waits for a frame, and the first needs a keyframe",
			c.ReadTimeout, c.OpenTimeout)
	}
	if !oneOf(c.RTSPTransport, "tcp", "udp") {
		v.add(p+".rtsp_transport", "must be tcp or udp, got %q", c.RTSPTransport)
	}
	c.validateDecode(v, p, kind == kit.SourceDevice)
	if c.Crop != nil {
		c.Crop.validate(v, p+".crop")
	}
	if s := c.SkipUnchanged; s.Enabled {
		if !(s.MinChange > 0 && s.MinChange < 1) {
			v.add(p+".skip_unchanged.min_change", "must be more than 0 and less than 1 (a fraction of the picture), got %g", s.MinChange)
		}
		if s.MaxSkip.D() <= 0 {
			v.add(p+".skip_unchanged.max_skip", "must be more than 0 (every frame is scored at least this often), got %s", s.MaxSkip)
		}
	}
	if len(c.Labels) == 0 {
		v.add(p+".labels", "at least one label is required")
	}
	names := map[string]int{}
	slugs := map[string]int{}
	for i := range c.Labels {
		l := &c.Labels[i]
		lp := fmt.Sprintf("%s.labels[%d]", p, i)
		l.validate(v, lp)
		if l.Name == "" {
			continue
		}
		if j, dup := names[l.Name]; dup {
			v.add(lp+".name", "duplicate label name %q in camera %q (also labels[%d])", l.Name, c.Name, j)
			continue
		}
		names[l.Name] = i
		if j, dup := slugs[kit.Slug(l.Name)]; dup {
			v.add(lp+".name", "label %q and labels[%d] %q share the MQTT topic name %q; rename one", l.Name, j, c.Labels[j].Name, kit.Slug(l.Name))
			continue
		}
		slugs[kit.Slug(l.Name)] = i
	}
}

func (r *Region) validate(v *validator, p string) {
	if !oneOf(r.Units, "", "normalized", "pixels") {
		v.add(p+".units", "must be normalized or pixels, got %q", r.Units)
		return
	}
	if r.Width <= 0 || r.Height <= 0 {
		v.add(p, "width and height must be more than 0, got %gx%g", r.Width, r.Height)
	}
	if r.X < 0 || r.Y < 0 {
		v.add(p, "x and y must not be negative, got (%g, %g)", r.X, r.Y)
	}
	if !r.InPixels() && (r.X+r.Width > 1 || r.Y+r.Height > 1) {
		v.add(p, "normalized region must lie within the frame (x+width <= 1, y+height <= 1), got x=%g y=%g width=%g height=%g", r.X, r.Y, r.Width, r.Height)
	}
	if r.InPixels() && (r.Width != float64(int(r.Width)) || r.Height != float64(int(r.Height)) || r.X != float64(int(r.X)) || r.Y != float64(int(r.Y))) {
		v.add(p, "pixel coordinates must be whole numbers")
	}
}

// haBinarySensorClasses are Home Assistant's binary_sensor device classes.
var haBinarySensorClasses = []string{
	"battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
	"garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving",
	"occupancy", "opening", "plug", "power", "presence", "problem", "running", "safety",
	"smoke", "sound", "tamper", "update", "vibration", "window",
}

// InPixels reports whether the region is in pixels rather than fractions.
func (r *Region) InPixels() bool { return r.Units == "pixels" }

func (l *Label) validate(v *validator, p string) {
	if strings.TrimSpace(l.Name) == "" {
		v.add(p+".name", "is required")
	}
	for i, pr := range l.Prompts {
		if strings.TrimSpace(pr) == "" {
			v.add(fmt.Sprintf("%s.prompts[%d]", p, i), "must not be empty")
		}
	}
	checkThreshold(v, p+".threshold", l.Threshold)
	if l.OffThreshold != nil {
		if off := *l.OffThreshold; off < 0 || off > l.Threshold {
			v.add(p+".off_threshold", "must be between 0 and threshold (%g), got %g", l.Threshold, off)
		}
	}
	checkTiming(v, p, l.MinFrames, l.OffFrames, l.OffDelay, l.Cooldown)
	if l.DeviceClass != "" && !oneOf(l.DeviceClass, haBinarySensorClasses...) {
		v.add(p+".device_class", "is not a Home Assistant binary_sensor device class: %q", l.DeviceClass)
	}
}

func (s *Store) validate(v *validator) {
	if !s.Enabled {
		return
	}
	if s.Every.D() < time.Second {
		v.add("store.every", "must be at least 1s, got %s", s.Every)
	}
	if s.Keep.D() < time.Hour {
		v.add("store.keep", "must be at least 1h, got %s", s.Keep)
	}
	if s.MaxSize < 16<<20 {
		v.add("store.max_size", "must be at least 16MiB, got %s", s.MaxSize)
	}
}

// validateDevice checks the device settings: only for devices, a format
// named or a FourCC, both sides of a size.
// validateDecode checks decode and hwaccel, which choose how a stream or a
// file is decoded: a video device hands OpenCV its frames as they are.
func (c *Camera) validateDecode(v *validator, p string, device bool) {
	switch {
	case !oneOf(c.Decode, "all", "keyframes", "auto"):
		v.add(p+".decode", "must be all, keyframes or auto, got %q", c.Decode)
	case device && c.Decode != "all":
		v.add(p+".decode", "is for streams and files: a video device (url /dev/video…, /dev/v4l/by-id/…) delivers every frame it captures; remove it")
	}
	switch {
	case !oneOf(c.HWAccel, "none", "vaapi", "nvdec", "v4l2m2m"):
		v.add(p+".hwaccel", "must be none, vaapi, nvdec or v4l2m2m, got %q", c.HWAccel)
	case device && c.HWAccel != "none":
		v.add(p+".hwaccel", "is for streams and files, not a video device (url /dev/video…, /dev/v4l/by-id/…); remove it")
	}
}

func (c *Camera) validateDevice(v *validator, p string, device bool) {
	set := map[string]bool{"format": c.Format != "", "width": c.Width != 0, "height": c.Height != 0, "frame_rate": c.FrameRate != 0}
	if !device {
		for _, k := range []string{"format", "width", "height", "frame_rate"} {
			if set[k] {
				v.add(p+"."+k, "is for video devices (url /dev/video…, /dev/v4l/by-id/…), not this url")
			}
		}
		return
	}
	if c.Format != "" {
		if _, ok := kit.FourCC(c.Format); !ok {
			v.add(p+".format", "must be mjpeg, yuyv, h264, nv12 or a four-character code such as MJPG, got %q", c.Format)
		}
	}
	if c.Width < 0 || c.Width > 8192 || c.Height < 0 || c.Height > 8192 || (c.Width == 0) != (c.Height == 0) {
		v.add(p+".width", "width and height go together, each 1 to 8192, got %dx%d", c.Width, c.Height)
	}
	if c.FrameRate < 0 || c.FrameRate > 240 {
		v.add(p+".frame_rate", "must be more than 0 and at most 240, got %g", c.FrameRate)
	}
}
