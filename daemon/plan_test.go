package daemon

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/configs"
)

// planBase is the running config of TestDiff; each case edits its text.
const planBase = `state_dir: /var/lib/siglipd
model:
  path: /models/siglip
inference:
  batch_size: 4
sink: mqtt
mqtt:
  broker: tcp://10.0.0.1:1883
http:
  listen: 127.0.0.1:8080
label_defaults:
  cooldown: 10s
cameras:
  - name: door
    url: rtsp://10.0.0.2/live
    fps: 2
    read_timeout: 10s
    open_timeout: 20s
    rtsp_transport: tcp
    labels:
      - name: person
        prompts: [a person at the door]
        threshold: 0.3
        device_class: occupancy
  - name: garage
    url: /videos/garage.mp4
    loop: true
    labels:
      - name: car
        threshold: 0.5
  - name: desk
    url: /dev/v4l/by-id/usb-Cam_1234-video-index0
    labels:
      - name: cup
        threshold: 0.5
`

func parsePlanConfig(t *testing.T, src string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse("cams.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config:\n%s\n%v", src, err)
	}
	return cfg
}

// TestDiff: every key a config file can change — each top-level section,
// each camera key, each label key (TestDiffCoversEveryKey holds the table
// to that) — gives the plan a reload needs: what waits for a restart,
// which cameras stop, start or restart, which labels are embedded again,
// whether the rules change and whether Home Assistant is told again.
func TestDiff(t *testing.T) {
	for _, tt := range planCases {
		t.Run(tt.key, func(t *testing.T) {
			src := planBase
			for i := 0; i+1 < len(tt.edit); i += 2 {
				if !strings.Contains(src, tt.edit[i]) {
					t.Fatalf("edit %q: not in the config", tt.edit[i])
				}
				src = strings.Replace(src, tt.edit[i], tt.edit[i+1], 1)
			}
			old, new := parsePlanConfig(t, planBase), parsePlanConfig(t, src)
			p := diff(old, new)

			if !slices.Equal(p.restartOnly, tt.want.restartOnly) {
				t.Errorf("restartOnly = %q, want %q", p.restartOnly, tt.want.restartOnly)
			}
			for _, c := range []struct {
				what      string
				got, want []string
			}{
				{"stop", p.stop, tt.want.stop}, {"start", names(p.start), tt.want.start},
				{"restart", names(p.restart), tt.want.restart}, {"embed", names(p.embed), tt.want.embed},
				{"gate", names(p.gate), tt.want.gate},
			} {
				if !slices.Equal(c.got, c.want) && len(c.got)+len(c.want) > 0 {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
			if got := p.rules != nil; got != tt.want.rules {
				t.Errorf("rules changed = %v, want %v", got, tt.want.rules)
			}
			if got := p.announce != nil; got != tt.want.announce {
				t.Errorf("announce = %v, want %v", got, tt.want.announce)
			}
			if p.rules != nil && p.quietTimeout != quietTimeout(new) {
				t.Errorf("quiet timeout %s, want %s", p.quietTimeout, quietTimeout(new))
			}

			// The config to run is the new one with restart-only sections
			// as they run; the two inputs are left as they were.
			want := *new
			run := reflect.ValueOf(&want).Elem()
			for _, s := range p.restartOnly {
				f := fieldByTag(t, run, s)
				f.Set(fieldByTag(t, reflect.ValueOf(old).Elem(), s))
			}
			if !reflect.DeepEqual(*p.cfg, want) {
				t.Errorf("config to run:\n%+v\nwant\n%+v", *p.cfg, want)
			}
			if !reflect.DeepEqual(old, parsePlanConfig(t, planBase)) || !reflect.DeepEqual(new, parsePlanConfig(t, src)) {
				t.Error("diff changed its inputs")
			}
			if got := p.empty(); got != (tt.want.stop == nil && tt.want.start == nil && tt.want.restart == nil &&
				tt.want.embed == nil && tt.want.gate == nil && !tt.want.rules && !tt.want.announce) {
				t.Errorf("empty() = %v", got)
			}
		})
	}
}

type planWant struct {
	restartOnly                       []string
	stop, start, restart, embed, gate []string
	rules, announce                   bool
}

// planCases: key is the config key the case changes (as written in the
// file: cameras[].labels[].threshold), edit is pairs of old, new text.
var planCases = []struct {
	key  string
	edit []string
	want planWant
}{
	{key: "nothing", want: planWant{}},
	{key: "state_dir", edit: []string{"/var/lib/siglipd", "/srv/siglipd"}, want: planWant{restartOnly: []string{"state_dir"}}},
	{key: "model", edit: []string{"/models/siglip", "/models/siglip2"}, want: planWant{restartOnly: []string{"model"}}},
	{key: "model.template", edit: []string{"  path: /models/siglip\n", "  path: /models/siglip\n  template: 'a photo of {}'\n"},
		want: planWant{restartOnly: []string{"model"}}},
	// Lower-casing changes every label's embedding: a restart re-embeds them.
	{key: "model.lowercase", edit: []string{"  path: /models/siglip\n", "  path: /models/siglip\n  lowercase: true\n"},
		want: planWant{restartOnly: []string{"model"}}},
	{key: "inference", edit: []string{"batch_size: 4", "batch_size: 8"}, want: planWant{restartOnly: []string{"inference"}}},
	{key: "sink", edit: []string{"sink: mqtt", "sink: stdout"}, want: planWant{restartOnly: []string{"sink"}}},
	{key: "mqtt", edit: []string{"10.0.0.1:1883", "10.0.0.9:1883"}, want: planWant{restartOnly: []string{"mqtt"}}},
	{key: "mqtt.discovery", edit: []string{"  broker: tcp://10.0.0.1:1883\n", "  broker: tcp://10.0.0.1:1883\n  discovery: {enabled: false}\n"},
		want: planWant{restartOnly: []string{"mqtt"}}},
	{key: "http", edit: []string{"127.0.0.1:8080", "0.0.0.0:8080"}, want: planWant{restartOnly: []string{"http"}}},
	// The store is opened with the model, before the pipeline starts.
	{key: "store", edit: []string{"label_defaults:\n", "store: {every: 30s, keep: 48h}\nlabel_defaults:\n"}, want: planWant{restartOnly: []string{"store"}}},
	{key: "several restart-only sections", edit: []string{"/var/lib/siglipd", "/srv/siglipd", "127.0.0.1:8080", "0.0.0.0:8080", "batch_size: 4", "batch_size: 8"},
		want: planWant{restartOnly: []string{"state_dir", "inference", "http"}}},
	// label_defaults reach every label that does not set its own value.
	{key: "label_defaults", edit: []string{"cooldown: 10s", "cooldown: 30s"}, want: planWant{rules: true}},

	{key: "cameras", edit: []string{"cameras:\n", "cameras:\n  - name: porch\n    url: rtsp://10.0.0.3/live\n    labels: [{name: parcel, threshold: 0.4}]\n"},
		want: planWant{start: []string{"porch"}, embed: []string{"porch"}, gate: []string{"porch"}, rules: true, announce: true}},
	{key: "cameras (one removed)", edit: []string{"  - name: garage\n    url: /videos/garage.mp4\n    loop: true\n    labels:\n      - name: car\n        threshold: 0.5\n", ""},
		want: planWant{stop: []string{"garage"}, rules: true, announce: true}},
	{key: "cameras (order)", edit: []string{"  - name: garage\n    url: /videos/garage.mp4\n    loop: true\n    labels:\n      - name: car\n        threshold: 0.5\n", "",
		"cameras:\n", "cameras:\n  - name: garage\n    url: /videos/garage.mp4\n    loop: true\n    labels:\n      - name: car\n        threshold: 0.5\n"},
		want: planWant{rules: true, announce: true}},
	{key: "cameras[].name", edit: []string{"name: garage", "name: carport"},
		want: planWant{stop: []string{"garage"}, start: []string{"carport"}, embed: []string{"carport"}, gate: []string{"carport"}, rules: true, announce: true}},
	{key: "cameras[].url", edit: []string{"rtsp://10.0.0.2/live", "rtsp://10.0.0.2/sub"}, want: planWant{restart: []string{"door"}}},
	{key: "cameras[].fps", edit: []string{"fps: 2", "fps: 5"}, want: planWant{restart: []string{"door"}}},
	// read_timeout and open_timeout also set how long a quiet camera's events last.
	{key: "cameras[].read_timeout", edit: []string{"read_timeout: 10s", "read_timeout: 15s"}, want: planWant{restart: []string{"door"}, rules: true}},
	{key: "cameras[].open_timeout", edit: []string{"open_timeout: 20s", "open_timeout: 40s"}, want: planWant{restart: []string{"door"}, rules: true}},
	{key: "cameras[].rtsp_transport", edit: []string{"rtsp_transport: tcp", "rtsp_transport: udp"}, want: planWant{restart: []string{"door"}}},
	// Key frames only also make a quiet camera's events last longer (a
	// stall is noticed after open_timeout).
	{key: "cameras[].decode", edit: []string{"rtsp_transport: tcp", "rtsp_transport: tcp\n    decode: keyframes"}, want: planWant{restart: []string{"door"}, rules: true}},
	{key: "cameras[].hwaccel", edit: []string{"rtsp_transport: tcp", "rtsp_transport: tcp\n    hwaccel: vaapi"}, want: planWant{restart: []string{"door"}}},
	{key: "cameras[].loop", edit: []string{"loop: true", "loop: false"}, want: planWant{restart: []string{"garage"}}},
	// A device's mode is set when it opens: a change reopens it. (The plan
	// does not look at the URL's kind; validation refuses these keys on
	// streams and files.)
	{key: "cameras[].format", edit: []string{"video-index0\n", "video-index0\n    format: mjpeg\n"}, want: planWant{restart: []string{"desk"}}},
	{key: "cameras[].width", edit: []string{"video-index0\n", "video-index0\n    width: 1280\n    height: 720\n"}, want: planWant{restart: []string{"desk"}}},
	{key: "cameras[].height", edit: []string{"video-index0\n", "video-index0\n    height: 720\n    width: 1280\n"}, want: planWant{restart: []string{"desk"}}},
	{key: "cameras[].frame_rate", edit: []string{"video-index0\n", "video-index0\n    frame_rate: 15\n"}, want: planWant{restart: []string{"desk"}}},
	{key: "cameras[].crop", edit: []string{"    loop: true\n", "    loop: true\n    crop: {x: 0.5, y: 0, width: 0.5, height: 1}\n"},
		want: planWant{restart: []string{"garage"}}},
	// The change gate is the batcher's: the stream goes on.
	{key: "cameras[].skip_unchanged", edit: []string{"    loop: true\n", "    loop: true\n    skip_unchanged: {max_skip: 30s}\n"},
		want: planWant{gate: []string{"garage"}}},
	{key: "cameras[].labels", edit: []string{"      - name: car\n", "      - name: bike\n        threshold: 0.6\n      - name: car\n"},
		want: planWant{embed: []string{"garage"}, rules: true, announce: true}},
	{key: "cameras[].labels[].name", edit: []string{"name: car", "name: van"}, want: planWant{embed: []string{"garage"}, rules: true, announce: true}},
	{key: "cameras[].labels[].prompts", edit: []string{"[a person at the door]", "[a person at the door, someone on the doorstep]"},
		want: planWant{embed: []string{"door"}, rules: true, announce: true}},
	{key: "cameras[].labels[].threshold", edit: []string{"threshold: 0.3", "threshold: 0.35"}, want: planWant{rules: true}},
	{key: "cameras[].labels[].off_threshold", edit: []string{"threshold: 0.3\n", "threshold: 0.3\n        off_threshold: 0.1\n"}, want: planWant{rules: true}},
	{key: "cameras[].labels[].min_frames", edit: []string{"threshold: 0.3\n", "threshold: 0.3\n        min_frames: 3\n"}, want: planWant{rules: true}},
	{key: "cameras[].labels[].off_frames", edit: []string{"threshold: 0.3\n", "threshold: 0.3\n        off_frames: 3\n"}, want: planWant{rules: true}},
	{key: "cameras[].labels[].off_delay", edit: []string{"threshold: 0.3\n", "threshold: 0.3\n        off_delay: 5s\n"}, want: planWant{rules: true}},
	{key: "cameras[].labels[].cooldown", edit: []string{"threshold: 0.3\n", "threshold: 0.3\n        cooldown: 1m\n"}, want: planWant{rules: true}},
	// Without an applied calibration, pinning changes no threshold.
	{key: "cameras[].labels[].pin_threshold", edit: []string{"threshold: 0.3\n", "threshold: 0.3\n        pin_threshold: true\n"}, want: planWant{}},
	{key: "cameras[].labels[].device_class", edit: []string{"device_class: occupancy", "device_class: motion"}, want: planWant{announce: true}},
	{key: "everything at once", edit: []string{"/var/lib/siglipd", "/srv/siglipd", "fps: 2", "fps: 5", "name: car", "name: van", "device_class: occupancy", "device_class: motion"},
		want: planWant{restartOnly: []string{"state_dir"}, restart: []string{"door"}, embed: []string{"garage"}, rules: true, announce: true}},
}

// TestDiffCoversEveryKey: a key added to the config must get a TestDiff
// case, so that what a reload does with it is decided, not an accident.
func TestDiffCoversEveryKey(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range planCases {
		covered[c.key] = true
	}
	var keys []string
	keys = append(keys, yamlKeys(reflect.TypeFor[configs.Config](), "")...)
	keys = append(keys, yamlKeys(reflect.TypeFor[configs.Camera](), "cameras[].")...)
	keys = append(keys, yamlKeys(reflect.TypeFor[configs.Label](), "cameras[].labels[].")...)
	for _, k := range keys {
		if !covered[k] {
			t.Errorf("config key %s has no TestDiff case", k)
		}
	}
	for _, s := range restartOnlySections {
		if !covered[s] {
			t.Errorf("restart-only section %s has no TestDiff case", s)
		}
	}
}

func yamlKeys(typ reflect.Type, prefix string) []string {
	var out []string
	for f := range typ.Fields() {
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			out = append(out, prefix+tag)
		}
	}
	return out
}

// fieldByTag is the field of the struct v whose yaml name is tag.
func fieldByTag(t *testing.T, v reflect.Value, tag string) reflect.Value {
	t.Helper()
	for i := range v.NumField() {
		if name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); name == tag {
			return v.Field(i)
		}
	}
	t.Fatalf("no config field %q", tag)
	return reflect.Value{}
}
