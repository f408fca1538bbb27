package configs

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParse: any file gives a config that validates or a list of errors,
// each naming the file, never a panic; the cost is bounded (1 MiB,
// MaxDepth levels, maxNodes values, maxVisits with aliases expanded;
// FuzzParseCost measures it). Seeds: the shipped examples, the
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

// FuzzParseCost: no small file costs Parse much. A file without aliases
// may cost a fixed amount and a little per byte (parseCostBase,
// parseCostPerByte); one with aliases may expand to maxVisits values, so
// it has the bound of a file at the read limit (TestParseCost's). A cost
// that grows faster than the file, as goccy/go-yaml's did with nesting (a
// 200 KB file took it 15 GB), fails here on inputs of a few KB.
func FuzzParseCost(f *testing.F) {
	for _, seed := range []string{
		string(Example), base,
		base + "deep: " + strings.Repeat("[", 60) + strings.Repeat("]", 60) + "\n",
		base + "deep:\n" + strings.Repeat("- ", 60) + "x\n\tbad\n",
		"a: !t\nb: !t\nc: !t\n\tx\n",
		"a0: &a0 {fps: 1}\na1: &a1 {<<: [*a0, *a0, *a0]}\ncameras: [{<<: *a1, name: a, url: /v.mp4, labels: [{name: x}]}]\n",
		"cameras: [" + strings.Repeat("{}, ", 100) + "]\n",
		base + "x: " + strings.Repeat("a", 2000) + ": b\n",
		// Cost bombs of the past: 20,000 levels of 40 KB cost Parse 646 MB
		// and 1.4 s; 5,000 lines ending in a tag (60 KB) 216 MB in goccy.
		base + "deep: " + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + "\n",
		base + func() (s string) {
			for i := range 5000 {
				s += "deep" + strings.Repeat("x", i%7) + ": !t\n"
			}
			return s
		}() + "x: [\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		took, alloc, _ := parseCost(data)
		maxAlloc := parseCostBase + parseCostPerByte*uint64(len(data))
		if bytes.ContainsAny(data, "*") { // aliases
			maxAlloc = maxParseAlloc
		}
		if alloc > maxAlloc {
			t.Errorf("%d bytes cost Parse %d KB, more than %d KB", len(data), alloc>>10, maxAlloc>>10)
		}
		if maxTime := 250*time.Millisecond + time.Duration(len(data))*10*time.Microsecond; took > maxTime {
			t.Errorf("%d bytes took Parse %s, more than %s", len(data), took, maxTime)
		}
	})
}

// What a file without aliases may cost Parse to allocate: a fixed amount
// (defaults, maps, the YAML libraries' setup) and a little per byte (a
// yaml.v3 node is about 200 bytes, goccy's tokens more).
const (
	parseCostBase    = 1 << 20
	parseCostPerByte = 1 << 10
)
