package daemon

import (
	"strings"
	"testing"

	"github.com/siglipd/siglipd/infer"
)

// TestModelOptions: what the file says under model: and inference:
// reaches infer.Options (a key dropped here would be accepted and then do
// nothing).
func TestModelOptions(t *testing.T) {
	tests := []struct {
		name, lines string // lines go under model:
		inference   string // lines go under inference:
		check       func(infer.Options) bool
	}{
		{"defaults", "", "", func(o infer.Options) bool {
			return o.Lowercase == "auto" && o.Template == "This is a photo of {}." && o.Resize == "exact" && o.Suffix == "" &&
				!o.AllowSpinning && o.Threads == 0 && o.GraphOptimization == "all"
		}},
		{"lowercase true", "  lowercase: true\n", "", func(o infer.Options) bool { return o.Lowercase == "true" }},
		{"lowercase false", "  lowercase: false\n", "", func(o infer.Options) bool { return o.Lowercase == "false" }},
		{"template, resize, variant", "  template: 'a photo of {}'\n  resize: fast\n  variant: fp16\n", "", func(o infer.Options) bool {
			return o.Template == "a photo of {}" && o.Resize == "fast" && o.Suffix == "_fp16"
		}},
		{"threads, graph optimization, spinning", "", "  threads: 2\n  graph_optimization: basic\n  allow_spinning: true\n", func(o infer.Options) bool {
			return o.Threads == 2 && o.GraphOptimization == "basic" && o.AllowSpinning
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			config := strings.Replace(planBase, "  path: /models/siglip\n", "  path: /models/siglip\n"+tt.lines, 1)
			config = strings.Replace(config, "inference:\n", "inference:\n"+tt.inference, 1)
			cfg := parsePlanConfig(t, config)
			opts, err := modelOptions(cfg, "/models/siglip", infer.LibraryChoice{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(opts) {
				t.Errorf("options %+v", opts)
			}
		})
	}
}
