package infer

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/internal/testenv"
)

// TestDescribe: what --check and /api/status say a model folder is. The
// parameter count is checked against the onnx Python library's own sum
// over the towers' initializers.
func TestDescribe(t *testing.T) {
	testenv.Integration(t)
	python := filepath.Join(testenv.RepoRoot(t), ".deps", "py", "bin", "python")
	_, err := exec.LookPath(python)
	testenv.Need(t, err == nil, "the Python venv .deps/py with onnx (scripts/setup.sh)")
	tests := []struct {
		preset string
		want   string // Description.String() without the parameter count
	}{
		{"tiny", "SigLIP, patch 16, 64x64 input"},
		{"colour", "SigLIP, patch 16, 64x64 input"},
	}
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			dir := testenv.Model(t, tt.preset)
			desc, err := Check(Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(python, "-c", `
import sys, onnx, math
print(sum(math.prod(t.dims) for p in sys.argv[1:] for t in onnx.load(p, load_external_data=False).graph.initializer))`,
				filepath.Join(dir, "onnx", "vision_model.onnx"), filepath.Join(dir, "onnx", "text_model.onnx")).Output()
			if err != nil {
				t.Fatalf("onnx: %v", err)
			}
			want, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
			if desc.Parameters != want || want == 0 {
				t.Errorf("Parameters = %d, onnx counts %d", desc.Parameters, want)
			}
			if got := desc.String(); !strings.HasPrefix(got, tt.want+", ") {
				t.Errorf("String() = %q, want it to start with %q", got, tt.want)
			}
			t.Logf("%s: %s", tt.preset, desc)
		})
	}
}

func TestDescriptionString(t *testing.T) {
	tests := []struct {
		d    Description
		want string
	}{
		{Description{Family: "SigLIP 2", Size: "so400m", PatchSize: 14, ImageWidth: 384, ImageHeight: 384, Parameters: 1_136_000_000},
			"SigLIP 2 so400m/14, 384x384 input, 1.14 B parameters"},
		{Description{Family: "SigLIP", Size: "base", PatchSize: 16, ImageWidth: 224, ImageHeight: 224, Parameters: 203_200_000},
			"SigLIP base/16, 224x224 input, 203.2 M parameters"},
		{Description{Family: "SigLIP", PatchSize: 16, ImageWidth: 64, ImageHeight: 64, Parameters: 240_836}, "SigLIP, patch 16, 64x64 input, 240836 parameters"},
		{Description{Family: "SigLIP", Size: "base", PatchSize: 16, ImageWidth: 224, ImageHeight: 224}, "SigLIP base/16, 224x224 input"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
