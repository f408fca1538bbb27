package infer

import (
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/siglipd/siglipd/infer/imageproc"
	"github.com/siglipd/siglipd/internal/testenv"
)

// TestSigLIP2Parity: siglipd on a SigLIP 2 in the onnx-community layout —
// published config (small widths), preprocessor and tokenizer files, random
// weights made and exported by transformers itself — against Python
// transformers' zero-shot pipeline on the same weights (full pipeline:
// Pillow bilinear resizing, GemmaTokenizer padding to 64), and against
// transformers.js's zero-shot pipeline. transformers.js resizes otherwise
// than Pillow, so it is given Pillow's resized pixels (224×224 PNGs the
// Python side writes); siglipd and Python get the original frames, most of
// which need resizing.
func TestSigLIP2Parity(t *testing.T) {
	testenv.Integration(t)
	if testenv.Race {
		// Single-goroutine code checked against Python and Node, which -race
		// only slows: the normal pass of make test runs it.
		t.Skip("a parity test with no concurrency of its own: run without -race")
	}
	model := testenv.SigLIP2(t, fixtureDir)
	tmp := t.TempDir()
	var paths []string
	var imgs []Image
	for i, s := range [][2]int{{224, 224}, {1920, 1080}, {97, 131}, {640, 360}, {300, 200}, {224, 224}} {
		img := scene(s[0], s[1], uint64(60+i))
		paths = append(paths, savePNG(t, tmp, fmt.Sprintf("%d.png", i), img))
		imgs = append(imgs, imageproc.FromImage(img))
	}
	// As users write labels: capitals, punctuation, digits, other scripts.
	labels := []string{"a car", "Person walking a DOG.", "garage door open", "3 packages", "ÜBER café", "汽车", "red", "nothing at all"}
	template := DefaultTemplate

	var py struct {
		Pipeline [][]float64 `json:"pipeline"`
		Model    [][]float64 `json:"model"`
		InputIDs [][]int     `json:"input_ids"`
		Classes  []string    `json:"pipeline_classes"`
		Resized  []string    `json:"resized"`
		Versions map[string]string
	}
	testenv.TorchJSON(t, "siglip2.py", filepath.Join(tmp, "score.json"), map[string]any{"op": "score", "model": model.Torch,
		"images": paths, "labels": labels, "template": "This is a photo of {}.", "resized_out": filepath.Join(tmp, "resized")}, &py)
	t.Logf("Python: %v; pipeline of %v", py.Versions, py.Classes)
	var js zeroShotResponse
	testenv.Reference(t, map[string]any{"op": "zeroshot", "model": model.Dir, "images": py.Resized, "labels": labels,
		"template": template, "max_length": 64}, &js)

	m := open(t, model.Dir, nil)
	if r := m.pre.Config().Resample; r != imageproc.Bilinear {
		t.Errorf("resample %d, want %d (bilinear, from the published preprocessor_config.json)", r, imageproc.Bilinear)
	}
	// siglipd's resize against the Pillow the Python pipeline ran.
	for i, p := range py.Resized {
		ours, pil := make([]float32, m.pre.PlaneSize()), make([]float32, m.pre.PlaneSize())
		if err := m.pre.Process(imgs[i], ours); err != nil {
			t.Fatal(err)
		}
		if err := m.pre.Process(imageproc.FromImage(readPNG(t, p)), pil); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ours, pil) {
			t.Errorf("image %dx%d: pixel_values differ from Pillow's bilinear resize", imgs[i].Width, imgs[i].Height)
		}
	}
	for j, l := range labels {
		if got := int64sToInts(m.TokenIDs(l)); !slices.Equal(got, py.InputIDs[j]) {
			t.Errorf("%q: input ids\n siglipd      %v\n transformers %v", l, got, py.InputIDs[j])
		}
	}
	probs := classifyAll(t, m, labels, imgs)
	var worstPy, worstJS, worstModel float64
	var all []float64
	for i := range imgs {
		for j, l := range labels {
			p := float64(probs[i][j])
			all = append(all, p)
			dPy := math.Abs(p - py.Pipeline[i][j])
			worstPy = math.Max(worstPy, dPy)
			worstModel = math.Max(worstModel, math.Abs(p-py.Model[i][j]))
			if dPy > 1e-4 {
				t.Errorf("image %dx%d label %q: siglipd %.6f, transformers pipeline %.6f", imgs[i].Width, imgs[i].Height, l, p, py.Pipeline[i][j])
			}
		}
		for _, r := range js.Results[i] {
			j := indexOf(labels, r.Label)
			d := math.Abs(float64(probs[i][j]) - r.Score)
			worstJS = math.Max(worstJS, d)
			if d > 1e-4 {
				t.Errorf("image %dx%d label %q: siglipd %.6f, transformers.js (Pillow's pixels) %.6f", imgs[i].Width, imgs[i].Height, r.Label, probs[i][j], r.Score)
			}
		}
	}
	slices.Sort(all)
	lo, mid, hi := all[0], all[len(all)/2], all[len(all)-1]
	t.Logf("%d probabilities (min %.3f, median %.3f, max %.3f): max |p - p_pipeline| %.2g (SiglipModel step by step %.2g), max |p - p_transformers.js| %.2g",
		len(all), lo, mid, hi, worstPy, worstModel, worstJS)
	// The test can only see a wrong token or pixel if the model's answers
	// move with them: probabilities near 0 or 1 everywhere would hide both.
	if lo > 0.2 || hi < 0.8 || mid < 0.05 || mid > 0.95 {
		t.Errorf("probabilities span only %.3f–%.3f (median %.3f): the model is too insensitive to test parity", lo, hi, mid)
	}

	// model.lowercase: true feeds SigLIP 2 lower-cased text, as it was
	// trained, which transformers does not: capitalized labels must score
	// differently (else lower-casing would be a no-op), lower-case ones alike.
	lower := open(t, model.Dir, func(o *Options) { o.Lowercase = "true" })
	lprobs := classifyAll(t, lower, labels, imgs)
	var moved float64
	for j, l := range labels {
		var d float64
		for i := range imgs {
			d = math.Max(d, math.Abs(float64(lprobs[i][j]-probs[i][j])))
		}
		moved = math.Max(moved, d)
		// Every prompt starts "This is", so every label changes.
		if d < 1e-3 {
			t.Errorf("lowercase true: %q scores within %.2g of transformers' (not lower-cased): the switch changed nothing", l, d)
		}
	}
	t.Logf("lowercase true moves probabilities by up to %.2g", moved)
	if got, want := lower.TokenIDs("A CAR"), lower.TokenIDs("a car"); !slices.Equal(got, want) || slices.Equal(got, m.TokenIDs("a car")) {
		t.Errorf("lowercase true: ids of %q are %v, want those of %q %v, which differ from transformers' %v", "A CAR", got, "a car", want, m.TokenIDs("a car"))
	}
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
