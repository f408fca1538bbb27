package configs

import (
	"errors"
	"testing"
)

// FuzzParse: any file gives a config that validates or a list of errors,
// each naming the file, never a panic; the cost is bounded (1 MiB, a
// million nodes with aliases expanded). Seeds: the shipped examples, the
// test's minimal file, and hostile shapes (aliases, merges, a second
// document, tabs, an unclosed bracket, ${VAR} forms).
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		string(Example), string(Demo), base,
		base + "---\nsink: stdout\n",
		"a: &a [x, x]\nb: &b [*a, *a]\ncameras: *b\n",
		"model: {path: /m}\ncameras:\n  - &c {name: a, url: /v.mp4, labels: [{name: x}]}\n  - <<: *c\n    name: b\n",
		"model:\n\tpath: /m\n",
		"cameras: [{name: a, labels: [{name: x}\n",
		"mqtt: {password: ${MQTT_PASSWORD}, username: ${U:-u}, broker: \"tcp://u:$${x}@h:1\"}\n",
		"cameras: [{name: a, url: \"http://h/v?pwd=${P}\", fps: \"2\", read_timeout: 1s, open_timeout: 500ms}]\n",
	} {
		f.Add([]byte(seed))
	}
	lookup := env(map[string]string{"MQTT_PASSWORD": "s3cret", "P": "pw", "DRIVEWAY_PASSWORD": "hunter2"})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data, lookup)
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %v is not a list of problems", err)
			}
			for _, e := range errs {
				if e.File != "f.yaml" || e.Msg == "" {
					t.Fatalf("problem %+v does not name the file or say what is wrong", e)
				}
			}
			return
		}
		if problems := cfg.Validate(); len(problems) > 0 {
			t.Fatalf("Parse accepted a config that does not validate: %v", problems)
		}
	})
}
