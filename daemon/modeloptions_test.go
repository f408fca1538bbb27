package daemon

import (
	"strings"
	"testing"

	"github.com/siglipd/siglipd/infer"
)

// TestModelOptions: what the file says under model: reaches infer.Options
// (a key dropped here would be accepted and then do nothing).
func TestModelOptions(t *testing.T) {
	tests := []struct {
		name, lines string // lines go under model:
		check       func(infer.Options) bool
	}{
		{"defaults", "", func(o infer.Options) bool {
			return o.Lowercase == "auto" && o.Template == "This is a photo of {}." && o.Resize == "exact" && o.Suffix == ""
		}},
		{"lowercase true", "  lowercase: true\n", func(o infer.Options) bool { return o.Lowercase == "true" }},
		{"lowercase false", "  lowercase: false\n", func(o infer.Options) bool { return o.Lowercase == "false" }},
		{"template, resize, variant", "  template: 'a photo of {}'\n  resize: fast\n  variant: fp16\n", func(o infer.Options) bool {
			return o.Template == "a photo of {}" && o.Resize == "fast" && o.Suffix == "_fp16"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parsePlanConfig(t, strings.Replace(planBase, "  path: /models/siglip\n", "  path: /models/siglip\n"+tt.lines, 1))
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
