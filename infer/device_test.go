package infer

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/infer/imageproc"
)

// TestDevice runs the tiny model on the execution provider named by
// SIGLIPD_TEST_DEVICE (cuda, cuda:N, tensorrt, openvino) and on the CPU of
// the same ONNX Runtime library, and compares the probabilities. It needs a
// GPU and a GPU build of ONNX Runtime (scripts/gpu-check.sh); without
// SIGLIPD_TEST_DEVICE it skips.
func TestDevice(t *testing.T) {
	device := os.Getenv("SIGLIPD_TEST_DEVICE")
	if device == "" {
		t.Skip("skipping: set SIGLIPD_TEST_DEVICE=cuda (and a GPU build of ONNX Runtime) to test a GPU provider")
	}
	dir := fixture(t, "tiny", "")
	gpu := open(t, dir, func(o *Options) { o.Device = device })
	cpu := open(t, dir, nil)
	if got := gpu.Info().Device; !strings.HasPrefix(got, strings.SplitN(device, ":", 2)[0]) {
		t.Fatalf("device = %q, want %s", got, device)
	}
	labels := []Label{{"car", []string{"a car"}}, {"dog", []string{"a dog"}}, {"open", []string{"garage door open"}}}
	sg, err := gpu.EmbedLabels(labels)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := cpu.EmbedLabels(labels)
	var imgs []Image
	for i := 0; i < 8; i++ {
		imgs = append(imgs, imageproc.FromImage(scene(640, 360, uint64(60+i))))
	}
	pg, err := gpu.Classify(imgs, repeat(sg, len(imgs)))
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := cpu.Classify(imgs, repeat(sc, len(imgs)))
	var worst float64
	for i := range pg {
		for j := range pg[i] {
			worst = math.Max(worst, math.Abs(float64(pg[i][j]-pc[i][j])))
		}
	}
	t.Logf("%s vs cpu: max |Δp| = %.3g over %d probabilities", device, worst, len(imgs)*len(labels))
	// GPU kernels (TF32 matrix products on recent cards) round differently.
	if worst > 2e-3 {
		t.Errorf("%s and cpu probabilities differ by %.3g", device, worst)
	}
}
