package convert_test

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/siglipd/siglipd/infer"
	"github.com/siglipd/siglipd/infer/convert"
	"github.com/siglipd/siglipd/infer/imageproc"
	"github.com/siglipd/siglipd/internal/testenv"
)

// scratch is where this test binary keeps the checkpoints it generates
// (hundreds of megabytes for so400m): made once, removed by TestMain.
var scratch struct {
	sync.Mutex
	root  string
	made  map[string]string
	built map[string]string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if scratch.root != "" {
		os.RemoveAll(scratch.root)
	}
	os.Exit(code)
}

func scratchDir(t testing.TB) string {
	t.Helper()
	if scratch.root == "" {
		root, err := os.MkdirTemp("", "siglipd-convert-test")
		if err != nil {
			t.Fatal(err)
		}
		scratch.root, scratch.made, scratch.built = root, map[string]string{}, map[string]string{}
	}
	return scratch.root
}

// torchCheckpoint returns the folder holding <dtype>/ checkpoints of a
// shape of scripts/torch/checkpoint.py, saved by transformers, generating
// them the first time this test binary asks.
func torchCheckpoint(t *testing.T, shape string) string {
	t.Helper()
	scratch.Lock()
	defer scratch.Unlock()
	if dir, ok := scratch.made[shape]; ok {
		return dir
	}
	ref := testenv.SigLIPReferenceDir(t)
	if shape == "siglip2" {
		ref = filepath.Join(filepath.Dir(ref), "siglip2-base-patch16-224")
		if _, err := os.Stat(filepath.Join(ref, "tokenizer.json")); err != nil {
			t.Skipf("skipping: the published SigLIP 2 files are not at %s", ref)
		}
	}
	dir := filepath.Join(scratchDir(t), "ckpt-"+shape)
	args := []string{"make", dir, "--shape", shape, "--reference", ref}
	if shape == "small-gelu" {
		args = append(args, "--dtypes", "fp32")
	}
	testenv.TorchScript(t, "checkpoint.py", args...)
	scratch.made[shape] = dir
	return dir
}

// scene is a structured test image: gradients with a disc whose place,
// size and colour depend on seed.
func scene(w, h int, seed uint64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(seed, 7))
	cx, cy, rad := r.IntN(w), r.IntN(h), w/8+r.IntN(w/2)
	disc := color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) * int(seed+1) % 256), 255}
			if (x-cx)*(x-cx)+(y-cy)*(y-cy) < rad*rad {
				c = disc
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

var prompts = []string{"a photo of a cat", "a red car parked on the street", "two dogs", "an empty room", "a person walking",
	"snow on a mountain"}

// TestParity builds checkpoints that transformers itself saved — base-like
// small, so400m-shaped (the real widths, patch 14, 384 px, Google's sparse
// config.json) and SigLIP 2 (its published config, tokenizer and
// preprocessor, small widths) — in float32, float16 and bfloat16, opens
// the output with infer.Open and compares its probabilities with PyTorch
// transformers' SiglipModel loaded from the same files in float32. Both
// sides get the same pixels (images at the model's input size, so neither
// resizes: the image processor's rescale and normalisation only) and the
// same token ids (siglipd's tokenizer; Python gets the ids), so the
// comparison is of the graphs. small-gelu checks the erf GELU some
// configs name instead of SigLIP's tanh one.
func TestParity(t *testing.T) {
	testenv.Integration(t)
	if testenv.Race {
		// Build is sequential Go (no goroutines to race) around ONNX
		// Runtime and Python; under -race its float loops would only cost
		// minutes. The normal pass runs it.
		t.Skip("skipped under -race: nothing concurrent to check; the normal pass runs it")
	}
	testenv.ORTLib(t)
	testenv.TorchPython(t)
	type build struct {
		dtype string
		opts  convert.Options
		name  string
	}
	// Every dtype with the fused graph on the small shapes; on so400m, where
	// each build costs seconds, each dtype once, one of them in the plain
	// graph and one with external data.
	all := []build{
		{"fp32", convert.Options{}, "fp32"},
		{"fp16", convert.Options{}, "fp16"},
		{"bf16", convert.Options{}, "bf16"},
		{"fp32", convert.Options{Plain: true}, "fp32 plain"},
	}
	table := []struct {
		shape  string
		builds []build
	}{
		{"small", all},
		{"so400m", []build{
			{"fp32", convert.Options{}, "fp32"},
			{"fp16", convert.Options{ExternalDataOver: 1}, "fp16 external data"},
			{"bf16", convert.Options{Plain: true}, "bf16 plain"},
		}},
		{"siglip2", all},
		{"small-gelu", []build{{"fp32", convert.Options{}, "fp32 BiasGelu"}, {"fp32", convert.Options{Plain: true}, "fp32 plain Erf"}}},
	}
	for _, tc := range table {
		shape := tc.shape
		t.Run(shape, func(t *testing.T) {
			ck := torchCheckpoint(t, shape)
			extra := tc.builds
			var imgsRGB []*image.RGBA
			var ids [][]int64
			got := map[string][][]float32{}
			var srcs []string
			for _, b := range extra {
				src := filepath.Join(ck, b.dtype)
				out := filepath.Join(scratchDir(t), fmt.Sprintf("out-%s-%s", shape, b.name))
				res, err := convert.Build(src, out, b.opts)
				if err != nil {
					t.Fatalf("%s: %v", b.name, err)
				}
				if b.opts.ExternalDataOver == 1 {
					checkExternal(t, out)
				}
				if shape == "siglip2" {
					useSigLIP1Tokenizer(t, out)
				}
				m, err := infer.Open(infer.Options{Dir: out, Library: infer.LibraryChoice{Env: testenv.ORTLib(t)}})
				if err != nil {
					t.Fatalf("%s: infer.Open on the built folder: %v", b.name, err)
				}
				info := m.Info()
				if imgsRGB == nil {
					for i := range 4 {
						imgsRGB = append(imgsRGB, scene(info.ImageWidth, info.ImageHeight, uint64(i)))
					}
					for _, p := range prompts {
						ids = append(ids, m.TokenIDs(p))
					}
				}
				probs := score(t, m, imgsRGB)
				m.Close()
				got[src+"|"+b.name] = probs
				srcs = appendOnce(srcs, src)
				t.Logf("%s: %d parameters, %dx%d input, graph %s", b.name, res.Params, info.ImageWidth, info.ImageHeight, map[bool]string{false: "fused", true: "plain"}[b.opts.Plain])
			}
			want := torchScore(t, imgsRGB, ids, srcs)
			for _, b := range extra {
				src := filepath.Join(ck, b.dtype)
				g, w := got[src+"|"+b.name], want[src]
				maxDiff, lo, hi := 0.0, 1.0, 0.0
				for i := range w {
					for j := range w[i] {
						maxDiff = math.Max(maxDiff, math.Abs(float64(g[i][j])-w[i][j]))
						lo, hi = math.Min(lo, w[i][j]), math.Max(hi, w[i][j])
					}
				}
				t.Logf("%s: max |p - p_torch| = %.2g over %d×%d probabilities spanning %.3f–%.3f", b.name, maxDiff, len(w), len(w[0]), lo, hi)
				if maxDiff > 1e-4 {
					t.Errorf("%s: max |p - p_torch| = %.3g, want ≤ 1e-4\nsiglipd %v\ntorch   %v", b.name, maxDiff, g, w)
				}
				if hi-lo < 0.3 {
					t.Errorf("%s: PyTorch's probabilities span only %.3f–%.3f: the random model is too insensitive for this test to mean much", b.name, lo, hi)
				}
			}
		})
	}
}

// useSigLIP1Tokenizer puts SigLIP 1's tokenizer into a built SigLIP 2
// folder. siglipd's tokenizer does not read Gemma's tokenizer.json yet
// (that work is on its way in infer/tokenizer); the towers take ids
// either way, PyTorch gets the same ids, and ids under 32000 are valid in
// SigLIP 2's 256000-token vocabulary, so the graphs are still compared
// whole. TODO: drop this once infer/tokenizer reads the SigLIP 2 file.
func useSigLIP1Tokenizer(t *testing.T, out string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.SigLIPReferenceDir(t), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(out, "tokenizer.json"), raw)
	os.Remove(filepath.Join(out, "tokenizer_config.json"))
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// score is siglipd's probabilities: images × prompts.
func score(t *testing.T, m *infer.Model, imgs []*image.RGBA) [][]float32 {
	t.Helper()
	var labels []infer.Label
	for _, p := range prompts {
		labels = append(labels, infer.Label{Name: p, Prompts: []string{p}})
	}
	set, err := m.EmbedLabels(labels)
	if err != nil {
		t.Fatal(err)
	}
	var batch []infer.Image
	for _, img := range imgs {
		batch = append(batch, imageproc.FromImage(img))
	}
	sets := make([]*infer.LabelSet, len(batch))
	for i := range sets {
		sets[i] = set
	}
	probs, err := m.Classify(batch, sets)
	if err != nil {
		t.Fatal(err)
	}
	return probs
}

// torchScore runs scripts/torch/checkpoint.py score on the checkpoints.
func torchScore(t *testing.T, imgs []*image.RGBA, ids [][]int64, ckpts []string) map[string][][]float64 {
	t.Helper()
	dir := t.TempDir()
	b := imgs[0].Bounds()
	var raw []byte
	for _, img := range imgs {
		for i := 0; i < len(img.Pix); i += 4 {
			raw = append(raw, img.Pix[i], img.Pix[i+1], img.Pix[i+2])
		}
	}
	imgPath := filepath.Join(dir, "images.rgb")
	writeFile(t, imgPath, raw)
	meta, _ := json.Marshal(map[string]int{"n": len(imgs), "height": b.Dy(), "width": b.Dx()})
	writeFile(t, imgPath+".json", meta)
	idsJSON, _ := json.Marshal(ids)
	idsPath := filepath.Join(dir, "ids.json")
	writeFile(t, idsPath, idsJSON)
	out := testenv.TorchScript(t, "checkpoint.py", append([]string{"score", "--images", imgPath, "--ids", idsPath}, ckpts...)...)
	var resp struct {
		Versions map[string]string      `json:"versions"`
		Probs    map[string][][]float64 `json:"probs"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("checkpoint.py score: %v\n%s", err, out)
	}
	t.Logf("reference: %v", resp.Versions)
	return resp.Probs
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkExternal checks that a build forced to external data wrote it: the
// graphs small, the weights in <tower>.onnx_data.
func checkExternal(t *testing.T, out string) {
	t.Helper()
	for _, tower := range []string{"vision_model", "text_model"} {
		g, err := os.Stat(filepath.Join(out, "onnx", tower+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		d, err := os.Stat(filepath.Join(out, "onnx", tower+".onnx_data"))
		if err != nil {
			t.Fatalf("external data: %v", err)
		}
		if g.Size() > 1<<20 || d.Size() < 100<<20 {
			t.Errorf("%s: graph %d bytes, external data %d bytes: the weights are not in the data file", tower, g.Size(), d.Size())
		}
	}
}
