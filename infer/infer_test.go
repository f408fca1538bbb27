package infer

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/siglipd/siglipd/infer/imageproc"
	"github.com/siglipd/siglipd/infer/testmodel"
	"github.com/siglipd/siglipd/internal/testenv"
)

var (
	fixtureDir  string
	fixtureMu   sync.Mutex
	fixtureDirs = map[string]string{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "siglipd-infer-test")
	if err != nil {
		panic(err)
	}
	fixtureDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixture generates a test model once per test binary. tokenizerDir, when
// set, builds the model around that folder's tokenizer.json.
func fixture(t testing.TB, preset, tokenizerDir string) string {
	t.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	key := preset + "|" + tokenizerDir
	if dir, ok := fixtureDirs[key]; ok {
		return dir
	}
	dir := filepath.Join(fixtureDir, fmt.Sprintf("%s-%d", preset, len(fixtureDirs)))
	opts := testmodel.Options{Preset: preset, OutDir: dir, FP16: preset == "tiny"}
	if tokenizerDir != "" {
		opts.Tokenizer = filepath.Join(tokenizerDir, "tokenizer.json")
	}
	if err := testmodel.Generate(opts); err != nil {
		t.Fatal(err)
	}
	fixtureDirs[key] = dir
	return dir
}

func open(t testing.TB, dir string, mod func(*Options)) *Model {
	t.Helper()
	opts := Options{Dir: dir, Library: LibraryChoice{Env: testenv.ORTLib(t)}}
	if mod != nil {
		mod(&opts)
	}
	m, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func solid(w, h int, c color.RGBA) *image.RGBA { return testenv.Solid(w, h, c) }

// scene is a deterministic image with structure and noise.
func scene(w, h int, seed uint64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(seed, 2))
	cx, cy, rad := r.IntN(w), r.IntN(h), 5+r.IntN(max(w, h)/2)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8(r.IntN(64)), 255}
			if (x-cx)*(x-cx)+(y-cy)*(y-cy) < rad*rad {
				c = color.RGBA{uint8(200 + r.IntN(55)), uint8(seed * 40 % 256), uint8(r.IntN(256)), 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

func savePNG(t testing.TB, dir, name string, img image.Image) string {
	return testenv.WritePNG(t, dir, name, img)
}

type zeroShotResponse struct {
	Results [][]struct {
		Label string  `json:"label"`
		Score float64 `json:"score"`
	} `json:"results"`
}

// TestProbabilityParity: our probabilities against transformers.js's
// zero-shot-image-classification pipeline on images already at the model's
// input size (so neither side resizes), for the tiny model with its
// generated tokenizer and with the real SigLIP tokenizer.
func TestProbabilityParity(t *testing.T) {
	testenv.Integration(t)
	// transformers.js applies no SiglipTokenizer clean-up, so labels and the
	// template are written already lower case, without punctuation.
	const template = "this is a photo of {}"
	labels := []string{"a car", "a dog", "red", "nothing", "a person walking", "garage door open", "3 packages"}
	variants := []struct{ name, tokenizerDir string }{{"generated tokenizer", ""}, {"real SigLIP tokenizer", ""}}
	for i := range variants {
		if i == 1 {
			variants[i].tokenizerDir = testenv.SigLIPReferenceDir(t)
		}
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			dir := fixture(t, "tiny", v.tokenizerDir)
			tmp := t.TempDir()
			var paths []string
			var imgs []Image
			for i := 0; i < 6; i++ {
				img := scene(64, 64, uint64(i))
				if i == 5 {
					img = solid(64, 64, color.RGBA{30, 200, 90, 255})
				}
				paths = append(paths, savePNG(t, tmp, fmt.Sprintf("%d.png", i), img))
				imgs = append(imgs, imageproc.FromImage(img))
			}
			var ref zeroShotResponse
			testenv.Reference(t, map[string]any{"op": "zeroshot", "model": dir, "images": paths, "labels": labels, "template": template}, &ref)

			m := open(t, dir, func(o *Options) { o.Template = template })
			ls := namedLabels(labels...)
			set, err := m.EmbedLabels(ls)
			if err != nil {
				t.Fatal(err)
			}
			probs, err := m.Classify(imgs, repeat(set, len(imgs)))
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			var lo, hi float64 = 1, 0
			for i := range imgs {
				for _, r := range ref.Results[i] {
					j := indexOf(labels, r.Label)
					d := math.Abs(float64(probs[i][j]) - r.Score)
					worst = math.Max(worst, d)
					lo, hi = math.Min(lo, r.Score), math.Max(hi, r.Score)
					if d > 1e-4 {
						t.Errorf("image %d label %q: ours %.7f, transformers.js %.7f", i, r.Label, probs[i][j], r.Score)
					}
				}
			}
			t.Logf("max |p - p_js| = %.3g over %d probabilities spanning %.3f–%.3f", worst, len(imgs)*len(labels), lo, hi)
			if hi-lo < 0.2 {
				t.Errorf("probabilities span only %.3f–%.3f: the fixture is too insensitive to test parity", lo, hi)
			}
		})
	}
}

// namedLabels makes one label per name, each prompted by its own name.
func namedLabels(names ...string) []Label {
	out := make([]Label, len(names))
	for i, n := range names {
		out[i] = Label{Name: n, Prompts: []string{n}}
	}
	return out
}

func repeat(s *LabelSet, n int) []*LabelSet {
	out := make([]*LabelSet, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	panic("missing " + s)
}

// TestColourModel is the semantic end-to-end check: real preprocessing and
// real ONNX Runtime on the colour fixture, frames larger than the model's
// input (so the resize runs), the default Python template.
func TestColourModel(t *testing.T) {
	m := open(t, fixture(t, "colour", ""), nil)
	names := []string{"red", "green", "blue", "white", "black"}
	ls := namedLabels(names...)
	set, err := m.EmbedLabels(ls)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rgb  color.RGBA
		high string // the one label above 0.9; all others below 0.1
	}{
		{"red", color.RGBA{255, 0, 0, 255}, "red"},
		{"dark red", color.RGBA{120, 10, 5, 255}, "red"},
		{"green", color.RGBA{0, 200, 0, 255}, "green"},
		{"blue", color.RGBA{0, 0, 255, 255}, "blue"},
		{"white", color.RGBA{255, 255, 255, 255}, "white"},
		{"grey", color.RGBA{128, 128, 128, 255}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs, err := m.Classify([]Image{imageproc.FromImage(solid(320, 240, tt.rgb))}, []*LabelSet{set})
			if err != nil {
				t.Fatal(err)
			}
			for j, n := range names {
				p := probs[0][j]
				if n == tt.high && p <= 0.9 {
					t.Errorf("%s scores %.4g, want > 0.9", n, p)
				}
				if n != tt.high && p >= 0.1 {
					t.Errorf("%s scores %.4g, want < 0.1", n, p)
				}
			}
			t.Logf("%v", probs[0])
		})
	}

	// The fixture would catch a BGR/RGB mix-up: a red frame whose bytes are
	// in RGB order (what a missing conversion hands the model) reads blue.
	t.Run("BGR swap is detected", func(t *testing.T) {
		swapped := imageproc.FromImage(solid(320, 240, color.RGBA{255, 0, 0, 255}))
		for i := 0; i+2 < len(swapped.Pix); i += 3 {
			swapped.Pix[i], swapped.Pix[i+2] = swapped.Pix[i+2], swapped.Pix[i]
		}
		probs, _ := m.Classify([]Image{swapped}, []*LabelSet{set})
		if probs[0][0] >= 0.1 || probs[0][2] <= 0.9 {
			t.Errorf("channel-swapped red frame scored red %.3g, blue %.3g: the colour test would not catch a BGR/RGB swap", probs[0][0], probs[0][2])
		}
	})
	// ...and a normalization bug: without the 1/255 rescale, or with mean 0,
	// a grey frame reads white.
	for _, bug := range []struct {
		name string
		mod  func(*imageproc.Config)
	}{
		{"missing rescale is detected", func(c *imageproc.Config) { c.DoRescale = false }},
		{"wrong mean is detected", func(c *imageproc.Config) { c.Mean = [3]float64{} }},
	} {
		t.Run(bug.name, func(t *testing.T) {
			cfg := m.pre.Config()
			bug.mod(&cfg)
			broken, err := imageproc.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			good := m.pre
			m.pre = broken
			defer func() { m.pre = good }()
			probs, _ := m.Classify([]Image{imageproc.FromImage(solid(320, 240, color.RGBA{128, 128, 128, 255}))}, []*LabelSet{set})
			if probs[0][3] <= 0.9 {
				t.Errorf("with the bug a grey frame scores white %.3g: the grey test would not catch it", probs[0][3])
			}
		})
	}
}

// TestBatchMatchesSingle: a batch of n frames of mixed sizes gives each
// frame the probabilities it gets alone, for n = 1..8.
func TestBatchMatchesSingle(t *testing.T) {
	m := open(t, fixture(t, "tiny", ""), nil)
	set, err := m.EmbedLabels([]Label{{"car", []string{"a car", "a parked car"}}, {"person", []string{"a person"}}, {"open", []string{"garage door open"}}})
	if err != nil {
		t.Fatal(err)
	}
	sizes := [][2]int{{64, 64}, {97, 131}, {1920, 1080}, {300, 200}, {37, 500}, {224, 224}, {640, 360}, {100, 100}}
	var imgs []Image
	var single [][]float32
	for i, s := range sizes {
		imgs = append(imgs, imageproc.FromImage(scene(s[0], s[1], uint64(i))))
		p, err := m.Classify(imgs[i:i+1], []*LabelSet{set})
		if err != nil {
			t.Fatal(err)
		}
		single = append(single, p[0])
	}
	var worst float64
	for n := 1; n <= len(imgs); n++ {
		batch, err := m.Classify(imgs[:n], repeat(set, n))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			for j := range batch[i] {
				d := math.Abs(float64(batch[i][j] - single[i][j]))
				worst = math.Max(worst, d)
				if d > 1e-5 {
					t.Errorf("batch %d, image %d, label %d: %.7f batched vs %.7f alone", n, i, j, batch[i][j], single[i][j])
				}
			}
		}
	}
	t.Logf("max |batched - alone| = %.3g", worst)
}

// TestPromptEnsemble: a label's prompts are averaged after normalizing;
// a label with one prompt scores exactly like that prompt.
func TestPromptEnsemble(t *testing.T) {
	m := open(t, fixture(t, "tiny", ""), nil)
	set, err := m.EmbedLabels([]Label{{"a", []string{"a car"}}, {"b", []string{"a dog"}}, {"both", []string{"a car", "a dog"}}})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := m.EmbedTexts([]string{"a car", "a dog"})
	if err != nil {
		t.Fatal(err)
	}
	for k := range emb[0] {
		mean := (emb[0][k] + emb[1][k]) / 2
		if d := math.Abs(float64(set.emb[0][k] - emb[0][k])); d > 1e-6 {
			t.Fatalf("single-prompt label differs from its prompt by %g", d)
		}
		_ = mean
	}
	want := normalize(func() []float32 {
		v := make([]float32, len(emb[0]))
		for k := range v {
			v[k] = emb[0][k] + emb[1][k]
		}
		return v
	}())
	for k := range want {
		if d := math.Abs(float64(set.emb[2][k] - want[k])); d > 1e-6 {
			t.Fatalf("ensemble component %d = %g, want %g", k, set.emb[2][k], want[k])
		}
	}
}

// TestBadModelFolders: each broken folder gives one error naming the file.
func TestBadModelFolders(t *testing.T) {
	lib := testenv.ORTLib(t)
	good := fixture(t, "tiny", "")
	tests := []struct {
		name   string
		break_ func(dir string) error
		want   []string // substrings of the error
	}{
		{"missing folder", func(dir string) error { return os.RemoveAll(dir) }, []string{"model folder", "does not exist"}},
		{"missing tokenizer", func(dir string) error { return os.Remove(filepath.Join(dir, "tokenizer.json")) },
			[]string{"tokenizer", "tokenizer.json", "missing"}},
		{"text tower only", func(dir string) error { return os.Remove(filepath.Join(dir, "onnx", "vision_model.onnx")) },
			[]string{"vision tower", "vision_model.onnx", "missing"}},
		{"truncated vision tower", func(dir string) error { return truncate(filepath.Join(dir, "onnx", "vision_model.onnx")) },
			[]string{"vision tower", "vision_model.onnx", "cannot load"}},
		{"wrong output names", func(dir string) error {
			// Rename the output in place; the same length keeps the
			// protobuf valid.
			p := filepath.Join(dir, "onnx", "text_model.onnx")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, bytes.ReplaceAll(b, []byte("pooler_output"), []byte("pooler_outpux")), 0o644)
		}, []string{"text tower", "text_model.onnx", "no pooler_output output (outputs: last_hidden_state, pooler_outpux)"}},
		{"full model in place of a tower", func(dir string) error {
			return copyFile(filepath.Join(dir, "onnx", "model.onnx"), filepath.Join(dir, "onnx", "text_model.onnx"))
		}, []string{"text tower", "text_model.onnx", "unexpected input \"pixel_values\""}},
		{"towers swapped", func(dir string) error {
			return copyFile(filepath.Join(dir, "onnx", "text_model.onnx"), filepath.Join(dir, "onnx", "vision_model.onnx"))
		}, []string{"vision tower", "vision_model.onnx", "no pixel_values input"}},
		{"not a SigLIP config", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "clip"}`), 0o644)
		}, []string{"config.json", `model_type is "clip"`}},
		{"NaFlex SigLIP 2", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "siglip2"}`), 0o644)
		}, []string{"config.json", "NaFlex", "siglip2-base-patch16-224-ONNX"}},
		{"image size mismatch", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "preprocessor_config.json"), []byte(`{"size": {"height": 224, "width": 224}, "resample": 3}`), 0o644)
		}, []string{"vision_model.onnx", "takes 64x64", "preprocessor_config.json", "224x224"}},
		{"no logit_scale anywhere", func(dir string) error { return os.Remove(filepath.Join(dir, "onnx", "model.onnx")) },
			[]string{"logit_scale", "no onnx/model.onnx", "model.logit_scale"}},
		{"truncated full model", func(dir string) error { return truncate(filepath.Join(dir, "onnx", "model.onnx")) },
			[]string{"model.onnx", "truncated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkBroken(t, good, lib, tt.break_, tt.want) })
	}
	// Overrides in the config make a folder without model.onnx usable.
	dir := filepath.Join(t.TempDir(), "model")
	os.CopyFS(dir, os.DirFS(good))
	os.Remove(filepath.Join(dir, "onnx", "model.onnx"))
	scale, bias := 3.0, -1.0
	m, err := Open(Options{Dir: dir, Library: LibraryChoice{Env: lib}, LogitScale: &scale, LogitBias: &bias})
	if err != nil {
		t.Fatalf("with logit overrides: %v", err)
	}
	m.Close()
}

func truncate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.Truncate(path, st.Size()/2)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// TestMissingExecutionProvider: asking for a GPU provider the CPU library
// lacks fails at start, naming the provider and the library.
func TestMissingExecutionProvider(t *testing.T) {
	lib := testenv.ORTLib(t)
	dir := fixture(t, "tiny", "")
	for _, device := range []string{"cuda", "cuda:1", "tensorrt", "openvino"} {
		t.Run(device, func(t *testing.T) {
			m, err := Open(Options{Dir: dir, Device: device, Library: LibraryChoice{Env: lib}})
			if err == nil {
				// A GPU build of ONNX Runtime may really have the provider.
				m.Close()
				t.Skipf("the library at %s has %s", lib, device)
			}
			for _, w := range []string{"device " + device, lib, "execution provider"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("auto falls back to cpu", func(t *testing.T) {
		m := open(t, dir, func(o *Options) { o.Device = "auto" })
		if d := m.Info().Device; d != "cpu" && !strings.HasPrefix(d, "cuda") {
			t.Errorf("device = %q", d)
		}
	})
}

type towersResponse struct {
	PixelValues tensorJSON `json:"pixel_values"`
	ImagePooler tensorJSON `json:"image_pooler"`
	TextPooler  tensorJSON `json:"text_pooler"`
}

type tensorJSON struct {
	Dims []int     `json:"dims"`
	Data []float64 `json:"data"`
}

// TestTransformersJSLoadsPresets: transformers.js loads each generated
// folder with AutoTokenizer, AutoProcessor, SiglipVisionModel,
// SiglipTextModel and SiglipModel, and its tower outputs and pixel_values
// equal ours.
func TestTransformersJSLoadsPresets(t *testing.T) {
	testenv.Integration(t)
	for _, preset := range []string{"tiny", "colour"} {
		t.Run(preset, func(t *testing.T) {
			dir := fixture(t, preset, "")
			img := scene(64, 64, 9)
			path := savePNG(t, t.TempDir(), "x.png", img)
			texts := []string{"this is a photo of a red car", "garage door open"}
			var ref towersResponse
			testenv.Reference(t, map[string]any{"op": "towers", "model": dir, "images": []string{path}, "texts": texts}, &ref)
			m := open(t, dir, func(o *Options) { o.Template = "{}" })
			pix := make([]float32, m.pre.PlaneSize())
			if err := m.pre.Process(imageproc.FromImage(img), pix); err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(pix, ref.PixelValues.Data); d != 0 {
				t.Errorf("pixel_values differ by up to %g", d)
			}
			ie, err := m.EmbedImages([]Image{imageproc.FromImage(img)})
			if err != nil {
				t.Fatal(err)
			}
			te, err := m.EmbedTexts(texts)
			if err != nil {
				t.Fatal(err)
			}
			// transformers.js returns the raw pooled outputs; ours are unit length.
			if d := maxDiff(ie[0], unit(ref.ImagePooler.Data)); d > 1e-5 {
				t.Errorf("image embedding differs by %g", d)
			}
			for i := range texts {
				dim := ref.TextPooler.Dims[1]
				if d := maxDiff(te[i], unit(ref.TextPooler.Data[i*dim:(i+1)*dim])); d > 1e-5 {
					t.Errorf("text %d embedding differs by %g", i, d)
				}
			}
		})
	}
}

func unit(v []float64) []float64 {
	var ss float64
	for _, x := range v {
		ss += x * x
	}
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x / math.Sqrt(ss)
	}
	return out
}

func maxDiff(a []float32, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-b[i]))
	}
	return d
}

// TestFastResizeDeviation measures how far resize: fast (a box filter)
// moves probabilities from resize: exact (Pillow bicubic) on camera-sized
// frames. The numbers go in docs/04-models.md; the test fails only if "fast"
// stops being an approximation worth its name (identical output would mean
// it is not used; a large deviation on the colour model would mean it
// changes answers).
func TestFastResizeDeviation(t *testing.T) {
	for _, preset := range []string{"tiny", "colour"} {
		exact := open(t, fixture(t, preset, ""), nil)
		fast := open(t, fixture(t, preset, ""), func(o *Options) { o.Resize = "fast" })
		labels := []Label{{"red", []string{"red"}}, {"car", []string{"a car"}}, {"person", []string{"a person walking"}}, {"blue", []string{"blue"}}}
		se, _ := exact.EmbedLabels(labels)
		sf, _ := fast.EmbedLabels(labels)
		var worst, sum float64
		n := 0
		for i, size := range [][2]int{{1920, 1080}, {1280, 720}, {640, 360}, {704, 576}, {2560, 1440}} {
			img := []Image{imageproc.FromImage(scene(size[0], size[1], uint64(10+i)))}
			pe, _ := exact.Classify(img, []*LabelSet{se})
			pf, _ := fast.Classify(img, []*LabelSet{sf})
			for j := range pe[0] {
				d := math.Abs(float64(pe[0][j] - pf[0][j]))
				worst, sum, n = math.Max(worst, d), sum+d, n+1
			}
		}
		t.Logf("%s model: fast vs exact resize: mean |Δp| %.3g, max %.3g over %d probabilities", preset, sum/float64(n), worst, n)
		if preset == "tiny" && worst == 0 {
			t.Error("fast and exact resize gave identical probabilities: fast mode is not in effect")
		}
		if preset == "colour" && worst > 0.01 {
			t.Errorf("fast resize moves the colour model's probabilities by %.3g", worst)
		}
	}
}

// TestFloat16Variant: the _fp16 towers (float16 pixel_values and
// pooler_output) give the fp32 probabilities within float16 rounding.
func TestFloat16Variant(t *testing.T) {
	dir := fixture(t, "tiny", "")
	f32 := open(t, dir, nil)
	f16 := open(t, dir, func(o *Options) { o.Suffix = "_fp16" })
	labels := []Label{{"car", []string{"a car"}}, {"dog", []string{"a dog"}}, {"open", []string{"garage door open"}}}
	s32, err := f32.EmbedLabels(labels)
	if err != nil {
		t.Fatal(err)
	}
	s16, err := f16.EmbedLabels(labels)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for n := 1; n <= 3; n++ { // several batch sizes: each has its own preallocated fp16 output
		var imgs []Image
		for i := 0; i < n; i++ {
			imgs = append(imgs, imageproc.FromImage(scene(320, 240, uint64(20+i))))
		}
		p32, err := f32.Classify(imgs, repeat(s32, n))
		if err != nil {
			t.Fatal(err)
		}
		p16, err := f16.Classify(imgs, repeat(s16, n))
		if err != nil {
			t.Fatal(err)
		}
		for i := range p32 {
			for j := range p32[i] {
				worst = math.Max(worst, math.Abs(float64(p32[i][j]-p16[i][j])))
			}
		}
	}
	t.Logf("max |p_fp16 - p_fp32| = %.3g", worst)
	if worst > 5e-3 || worst == 0 {
		t.Errorf("fp16 deviates by %.3g from fp32 (want small but nonzero: float16 rounds)", worst)
	}
}

// checkBroken copies the model folder good, breaks the copy with break_,
// and checks that Open refuses it in one line mentioning every want.
func checkBroken(t *testing.T, good, lib string, break_ func(dir string) error, want []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	if err := os.CopyFS(dir, os.DirFS(good)); err != nil {
		t.Fatal(err)
	}
	if err := break_(dir); err != nil {
		t.Fatal(err)
	}
	m, err := Open(Options{Dir: dir, Library: LibraryChoice{Env: lib}})
	if err == nil {
		m.Close()
		t.Fatal("Open succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
}

// classifyAll embeds labels (one prompt each) and scores every image
// against all of them: probs[image][label].
func classifyAll(t *testing.T, m *Model, labels []string, imgs []Image) [][]float32 {
	t.Helper()
	set, err := m.EmbedLabels(namedLabels(labels...))
	if err != nil {
		t.Fatal(err)
	}
	probs, err := m.Classify(imgs, repeat(set, len(imgs)))
	if err != nil {
		t.Fatal(err)
	}
	return probs
}
