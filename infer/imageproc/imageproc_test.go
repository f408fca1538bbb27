package imageproc

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/siglipd/siglipd/internal/testenv"
)

// testImage draws something that stresses resampling: sharp edges, fine
// stripes (aliasing shows without antialiasing), gradients and noise.
func testImage(w, h int, seed uint64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(seed, 1))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var c color.RGBA
			switch {
			case x < w/3: // 1-pixel stripes
				v := uint8(255 * ((x + y/2) % 2))
				c = color.RGBA{v, 255 - v, uint8(x * 255 / w), 255}
			case y < h/2: // gradients
				c = color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) % 256), 255}
			default: // noise
				c = color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestPILParity compares Process with Python transformers' preprocessing
// (scripts/pil_reference.py: Pillow resize, numpy rescale/normalize) on
// images that shrink, grow and keep their size.
func TestPILParity(t *testing.T) {
	testenv.Integration(t)
	python := "/usr/bin/python3"
	_, err := os.Stat(python)
	testenv.Need(t, err == nil, python+" (Debian package python3)")
	testenv.Need(t, exec.Command(python, "-c", "import PIL, numpy").Run() == nil, "Pillow and numpy for "+python+" (Debian packages python3-pil and python3-numpy)")
	script := filepath.Join(testenv.RepoRoot(t), "scripts", "pil_reference.py")

	sizes := []struct{ w, h int }{
		{1920, 1080}, // a 1080p frame shrunk ~8.6×: antialiasing matters most
		{97, 131},    // upscaled, odd size
		{640, 360},   // a camera substream
		{37, 500},    // extreme aspect ratio: one axis grows, one shrinks
		{224, 224},   // the model size: no resampling at all
		{300, 224},   // only the width changes: one pass
		{1280, 720},
	}
	for _, resample := range []int{Bicubic, Bilinear} {
		t.Run(map[int]string{Bicubic: "bicubic", Bilinear: "bilinear"}[resample], func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Width: 224, Height: 224, Resample: resample, DoResize: true, DoRescale: true,
				RescaleFactor: 1.0 / 255, DoNormalize: true, Mean: [3]float64{0.5, 0.5, 0.5}, Std: [3]float64{0.5, 0.5, 0.5}}
			var paths []string
			var imgs []image.Image
			for i, s := range sizes {
				img := testImage(s.w, s.h, uint64(i))
				p := filepath.Join(dir, fmt.Sprintf("img%d.png", i))
				writePNG(t, p, img)
				paths, imgs = append(paths, p), append(imgs, img)
			}
			req, _ := json.Marshal(map[string]any{"images": paths, "width": cfg.Width, "height": cfg.Height,
				"resample": resample, "rescale_factor": cfg.RescaleFactor, "mean": cfg.Mean, "std": cfg.Std, "out": dir})
			reqPath := filepath.Join(dir, "req.json")
			os.WriteFile(reqPath, req, 0o644)
			if out, err := exec.Command(python, script, reqPath).CombinedOutput(); err != nil {
				t.Fatalf("pil_reference.py: %v\n%s", err, out)
			}
			proc, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range sizes {
				want := readFloats(t, filepath.Join(dir, fmt.Sprintf("%d.f32", i)))
				got := make([]float32, proc.PlaneSize())
				if err := proc.Process(FromImage(imgs[i]), got); err != nil {
					t.Fatal(err)
				}
				var sum, worst float64
				for j := range got {
					d := math.Abs(float64(got[j]) - float64(want[j]))
					sum += d
					worst = math.Max(worst, d)
				}
				// Differences in pixel_values units; one 8-bit step is 2/255
				// after normalizing with std 0.5, so /2 gives 1/255 units.
				meanDiff, maxDiff := sum/float64(len(got))/2, worst/2
				t.Logf("%dx%d → 224x224: mean |diff| %.3g/255, max %.3g/255", s.w, s.h, meanDiff*255, maxDiff*255)
				if meanDiff > 0.5/255 || maxDiff > 3.0/255 {
					t.Errorf("%dx%d: mean |diff| %.3g/255 (limit 0.5), max %.3g/255 (limit 3)", s.w, s.h, meanDiff*255, maxDiff*255)
				}
			}
		})
	}
}

func readFloats(t *testing.T, path string) []float32 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// TestSubImage: a crop is read in place through the parent's stride and
// gives the same pixels as a copied crop.
func TestSubImage(t *testing.T) {
	full := FromImage(testImage(320, 240, 7))
	r := image.Rect(50, 30, 250, 200)
	copied := FromImage(testImage(320, 240, 7).SubImage(r))
	proc, _ := New(Config{Width: 64, Height: 64, Resample: Bicubic, DoResize: true, DoRescale: true, RescaleFactor: 1.0 / 255})
	a, b := make([]float32, proc.PlaneSize()), make([]float32, proc.PlaneSize())
	if err := proc.Process(full.Sub(r), a); err != nil {
		t.Fatal(err)
	}
	if err := proc.Process(copied, b); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("pixel %d: in-place crop %v, copied crop %v", i, a[i], b[i])
		}
	}
}

// TestChannelOrder: BGR input becomes RGB planes.
func TestChannelOrder(t *testing.T) {
	img := Image{Width: 1, Height: 1, Stride: 3, Pix: []byte{10, 20, 30}} // B, G, R
	proc, _ := New(Config{Width: 1, Height: 1, Resample: Bicubic, DoResize: true})
	out := make([]float32, 3)
	if err := proc.Process(img, out); err != nil {
		t.Fatal(err)
	}
	if out[0] != 30 || out[1] != 20 || out[2] != 10 {
		t.Fatalf("planes = %v, want R=30 G=20 B=10", out)
	}
}

func TestErrors(t *testing.T) {
	proc, _ := New(Config{Width: 8, Height: 8, Resample: Bicubic, DoResize: true})
	tests := []struct {
		name string
		img  Image
		dst  int
	}{
		{"short destination", Image{Width: 8, Height: 8, Stride: 24, Pix: make([]byte, 192)}, 10},
		{"empty image", Image{}, 192},
		{"pixels shorter than the size", Image{Width: 8, Height: 8, Stride: 24, Pix: make([]byte, 100)}, 192},
	}
	for _, tt := range tests {
		if err := proc.Process(tt.img, make([]float32, tt.dst)); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	if _, err := New(Config{Width: 8, Height: 8, Resample: 0, DoResize: true}); err == nil {
		t.Error("resample 0 (nearest) accepted")
	}
}

func BenchmarkProcess1080p(b *testing.B) {
	img := FromImage(testImage(1920, 1080, 1))
	for _, r := range []struct {
		name string
		f    int
	}{{"exact-bicubic", Bicubic}, {"fast-box", Box}} {
		b.Run(r.name, func(b *testing.B) {
			proc, _ := New(Config{Width: 224, Height: 224, Resample: r.f, DoResize: true, DoRescale: true, RescaleFactor: 1.0 / 255, DoNormalize: true, Mean: [3]float64{.5, .5, .5}, Std: [3]float64{.5, .5, .5}})
			dst := make([]float32, proc.PlaneSize())
			for b.Loop() {
				proc.Process(img, dst)
			}
		})
	}
}
