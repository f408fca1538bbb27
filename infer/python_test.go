package infer

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/infer/imageproc"
	"github.com/siglipd/siglipd/infer/testmodel"
	"github.com/siglipd/siglipd/internal/testenv"
)

type pythonResponse struct {
	Versions               map[string]string `json:"versions"`
	PipelinePath           string            `json:"pipeline_path"`
	PipelineError          string            `json:"pipeline_error"`
	PipelineTokenizerClass string            `json:"pipeline_tokenizer_class"`
	Pipeline               [][]struct {
		Label string  `json:"label"`
		Score float64 `json:"score"`
	} `json:"pipeline"`
	TokenizerClass string  `json:"tokenizer_class"`
	PaddedIDs      [][]int `json:"padded_ids"`
	RawIDs         [][]int `json:"raw_ids"`
}

// TestPythonPipelineParity runs the seed article's call — Python
// transformers' pipeline("zero-shot-image-classification") with its default
// template, PIL resizing and its SiglipTokenizer — on a tiny model whose
// weights it loads from model.safetensors, and compares with siglipd on
// frames that need resizing and labels with capitals and punctuation. It
// needs Python transformers and torch, which cannot be installed where
// siglipd is developed (no PyPI); the GPU machines have them
// (scripts/gpu-check.sh), elsewhere the test skips.
func TestPythonPipelineParity(t *testing.T) {
	testenv.Integration(t)
	python, err := exec.LookPath("python3")
	if err != nil || exec.Command(python, "-c", "import transformers, torch, tokenizers, PIL").Run() != nil {
		t.Skip("skipping: Python transformers/torch are not installed (no PyPI here); scripts/gpu-check.sh runs this where they are")
	}
	script := filepath.Join(testenv.RepoRoot(t), "scripts", "python_reference.py")
	variants := []struct{ name, tokenizer string }{{"generated tokenizer", ""}}
	if dir := os.Getenv("SIGLIPD_REFERENCE_DIR"); dir != "" || fileExists(filepath.Join(testenv.RepoRoot(t), "..", "shared", "reference", "siglip-base-patch16-224", "tokenizer.json")) {
		variants = append(variants, struct{ name, tokenizer string }{"real SigLIP tokenizer", testenv.SigLIPReferenceDir(t)})
	}
	labels := []string{"A car", "a DOG!", "garage door open", "red", "nothing at all", "3 packages", "Person walking (left)"}
	texts := []string{"This is a photo of A car.", "A Photo of a CAT!!", "it's   raining; (heavily)", "ÜBER café", "ＦＵＬＬ width", "straße İstanbul",
		strings.Repeat("a very long description of a busy street ", 12)}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tiny")
			opts := testmodel.Options{Preset: "tiny", OutDir: dir, Safetensors: true}
			if v.tokenizer != "" {
				opts.Tokenizer = filepath.Join(v.tokenizer, "tokenizer.json")
			}
			if err := testmodel.Generate(opts); err != nil {
				t.Fatal(err)
			}
			m := open(t, dir, nil) // default template, as the pipeline's
			tmp := t.TempDir()
			var paths []string
			var imgs []Image
			for i, s := range [][2]int{{64, 64}, {1920, 1080}, {97, 131}, {640, 360}, {300, 200}} {
				img := scene(s[0], s[1], uint64(40+i))
				paths = append(paths, savePNG(t, tmp, fmt.Sprintf("%d.png", i), img))
				imgs = append(imgs, imageproc.FromImage(img))
			}
			var raw []string
			for _, s := range texts {
				raw = append(raw, m.tok.Prepare(s))
			}
			req := map[string]any{"model": dir, "images": paths, "labels": labels, "template": DefaultTemplate,
				"texts": texts, "raw_texts": raw, "tokenizer_json": filepath.Join(dir, "tokenizer.json")}
			reqPath := filepath.Join(tmp, "req.json")
			b, _ := json.Marshal(req)
			os.WriteFile(reqPath, b, 0o644)
			out, err := exec.Command(python, script, reqPath).Output()
			if err != nil {
				msg := ""
				if ee, ok := err.(*exec.ExitError); ok {
					msg = string(ee.Stderr)
				}
				t.Fatalf("python_reference.py: %v\n%s", err, msg)
			}
			var py pythonResponse
			if err := json.Unmarshal(out, &py); err != nil {
				t.Fatal(err)
			}
			t.Logf("Python: %v via %s, tokenizer %s", py.Versions, py.PipelinePath, py.TokenizerClass)
			if py.PipelineError != "" {
				t.Logf("pipeline(model=dir) failed first:\n%s", py.PipelineError)
			}

			var ls []Label
			for _, l := range labels {
				ls = append(ls, Label{Name: l, Prompts: []string{l}})
			}
			set, err := m.EmbedLabels(ls)
			if err != nil {
				t.Fatal(err)
			}
			probs, err := m.Classify(imgs, repeat(set, len(imgs)))
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for i := range imgs {
				for _, r := range py.Pipeline[i] {
					j := indexOf(labels, r.Label)
					d := math.Abs(float64(probs[i][j]) - r.Score)
					worst = math.Max(worst, d)
					if d > 1e-4 {
						t.Errorf("image %dx%d label %q: siglipd %.6f, Python pipeline %.6f", imgs[i].Width, imgs[i].Height, r.Label, probs[i][j], r.Score)
					}
				}
			}
			t.Logf("max |p - p_python| = %.3g over %d probabilities (frames resized from up to 1920x1080)", worst, len(imgs)*len(labels))

			for i, s := range texts {
				if got := int64sToInts(m.tok.EncodePadded(s)); !slices.Equal(got, py.PaddedIDs[i]) {
					t.Errorf("%q: padded ids\n siglipd %v\n python  %v", s, got, py.PaddedIDs[i])
				}
				if got := m.tok.Encode(raw[i], true); !slices.Equal(got, py.RawIDs[i]) {
					t.Errorf("%q: tokenizers ids\n siglipd %v\n rust    %v", raw[i], got, py.RawIDs[i])
				}
			}
		})
	}
}

func int64sToInts(ids []int64) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}
