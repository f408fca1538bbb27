package infer

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/siglipd/siglipd/infer/imageproc"
	"github.com/siglipd/siglipd/internal/testenv"
)

// benchModel is the base preset (SigLIP base dimensions, random weights):
// $SIGLIPD_BENCH_MODEL, else .deps/models/base, which `make bench` writes.
func benchModel(b *testing.B) string {
	dir := os.Getenv("SIGLIPD_BENCH_MODEL")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(b), ".deps", "models", "base")
	}
	if _, err := os.Stat(filepath.Join(dir, "onnx", "vision_model.onnx")); err != nil {
		b.Skipf("no base model at %s: run make bench (or go run ./infer/cmd/mkmodel --preset base --out %s)", dir, dir)
	}
	return dir
}

// benchDevice runs benchmarks on $SIGLIPD_BENCH_DEVICE (default cpu).
func benchDevice(o *Options) {
	if d := os.Getenv("SIGLIPD_BENCH_DEVICE"); d != "" {
		o.Device = d
	}
}

// BenchmarkVisionTower measures images/s of the vision tower on the base
// preset at several batch sizes, fp32 and int8 (the quantized variant, when
// scripts/quantize.py has written it). Frames are already 224×224, so this
// is the tower itself (plus the trivial copy into the input tensor).
func BenchmarkVisionTower(b *testing.B) {
	dir := benchModel(b)
	for _, v := range []struct{ name, suffix string }{{"fp32", ""}, {"int8", "_quantized"}} {
		if _, err := os.Stat(filepath.Join(dir, "onnx", "vision_model"+v.suffix+".onnx")); err != nil {
			continue
		}
		m := open(b, dir, func(o *Options) { benchDevice(o); o.Suffix = v.suffix })
		benchVision(b, m, v.name)
	}
}

func benchVision(b *testing.B, m *Model, variant string) {
	for _, n := range []int{1, 4, 8} {
		imgs := make([]Image, n)
		for i := range imgs {
			imgs[i] = imageproc.FromImage(scene(224, 224, uint64(i)))
		}
		b.Run(fmt.Sprintf("%s/batch=%d", variant, n), func(b *testing.B) {
			if _, err := m.EmbedImages(imgs); err != nil { // warm-up: first run allocates
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := m.EmbedImages(imgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkFrame1080p is the whole per-frame cost for a 1080p camera frame:
// Pillow-exact resize to 224×224, normalization and the vision tower, at
// batch 1 and 8.
func BenchmarkFrame1080p(b *testing.B) {
	m := open(b, benchModel(b), benchDevice)
	frame := imageproc.FromImage(scene(1920, 1080, 1))
	for _, n := range []int{1, 8} {
		imgs := make([]Image, n)
		for i := range imgs {
			imgs[i] = frame
		}
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			m.EmbedImages(imgs)
			b.ResetTimer()
			for b.Loop() {
				if _, err := m.EmbedImages(imgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
