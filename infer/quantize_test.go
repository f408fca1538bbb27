package infer

import (
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/siglipd/siglipd/infer/imageproc"
	"github.com/siglipd/siglipd/internal/testenv"
)

// variantBounds are the documented largest deviations of a variant's
// probabilities from fp32, per test preset (docs/04-models.md, "Variants"): what
// TestVariants enforces. The tiny preset's random weights in a narrow model
// make int8 rounding show far more than the colour preset's.
var variantBounds = map[string]map[string]float64{
	"tiny":   {"_quantized": 0.15, "_fp16": 0.01},
	"colour": {"_quantized": 1e-3, "_fp16": 1e-3},
}

// TestVariants: the quantized and fp16 variants that scripts/quantize.py
// writes (with the settings of the hub's exports) load, and score the same
// images and labels as fp32 within variantBounds; on the colour model,
// whose labels are far apart, every image keeps its label order.
func TestVariants(t *testing.T) {
	testenv.Integration(t)
	python := filepath.Join(testenv.RepoRoot(t), ".deps", "py", "bin", "python")
	_, err := os.Stat(python)
	testenv.Need(t, err == nil, "the Python venv .deps/py with ONNX Runtime's quantizer (scripts/setup.sh)")
	script := filepath.Join(testenv.RepoRoot(t), "scripts", "quantize.py")

	var imgs []Image
	for i := range 6 {
		imgs = append(imgs, imageproc.FromImage(scene(320, 240, uint64(i))))
	}
	for _, c := range []color.RGBA{{230, 20, 20, 255}, {20, 200, 40, 255}, {20, 30, 220, 255}, {128, 128, 128, 255}, {200, 120, 40, 255}} {
		imgs = append(imgs, imageproc.FromImage(solid(320, 240, c)))
	}
	for _, tt := range []struct {
		preset    string
		labels    []string
		keepOrder bool
	}{
		{"tiny", []string{"a cat", "a dog", "a red car", "an empty street", "a person at the door"}, false},
		{"colour", []string{"red", "green", "blue", "yellow", "something grey"}, true},
	} {
		t.Run(tt.preset, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tt.preset)
			if err := os.CopyFS(dir, os.DirFS(testenv.Model(t, tt.preset))); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(python, script, dir, "--modes", "quantized", "fp16").CombinedOutput(); err != nil {
				t.Fatalf("quantize.py: %v\n%s", err, out)
			}
			var ls []Label
			for _, l := range tt.labels {
				ls = append(ls, Label{Name: l, Prompts: []string{l}})
			}
			probs := func(suffix string) [][]float32 {
				m := open(t, dir, func(o *Options) { o.Suffix = suffix })
				set, err := m.EmbedLabels(ls)
				if err != nil {
					t.Fatal(err)
				}
				p, err := m.Classify(imgs, repeat(set, len(imgs)))
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			ref := probs("")
			for _, suffix := range []string{"_quantized", "_fp16"} {
				got := probs(suffix)
				var maxD, sumD float64
				sameOrder := 0
				for i := range ref {
					for j := range ref[i] {
						d := math.Abs(float64(got[i][j] - ref[i][j]))
						maxD, sumD = max(maxD, d), sumD+d
					}
					if slices.Equal(order(ref[i]), order(got[i])) {
						sameOrder++
					}
				}
				mean := sumD / float64(len(ref)*len(ref[0]))
				t.Logf("%s%s: max |Δp| %.2g, mean |Δp| %.2g, label order kept on %d of %d images", tt.preset, suffix, maxD, mean, sameOrder, len(ref))
				if bound := variantBounds[tt.preset][suffix]; maxD > bound {
					t.Errorf("%s: max |Δp| %.3g over the documented %.3g", suffix, maxD, bound)
				}
				if tt.keepOrder && sameOrder != len(ref) {
					t.Errorf("%s: label order changed on %d of %d images", suffix, len(ref)-sameOrder, len(ref))
				}
			}
		})
	}
}

// order is the label indexes by descending probability.
func order(p []float32) []int {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case p[a] > p[b]:
			return -1
		case p[a] < p[b]:
			return 1
		}
		return 0
	})
	return idx
}
