package infer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/siglipd/siglipd/infer/hub"
	"github.com/siglipd/siglipd/infer/imageproc"
	"github.com/siglipd/siglipd/infer/onnxpb"
	"github.com/siglipd/siglipd/internal/testenv"
)

// snapshotOf lays the folder dir out as huggingface_hub's cache does —
// each file a blob named by its sha256 under blobs/, linked from
// snapshots/<commit>/<path> by a relative symlink — and returns the
// snapshot folder.
func snapshotOf(t *testing.T, dir string) string {
	t.Helper()
	root := t.TempDir()
	snap := filepath.Join(root, "snapshots", strings.Repeat("c0ffee", 6)+"c0ff")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		blob := filepath.Join(root, "blobs", hex.EncodeToString(sum[:]))
		os.MkdirAll(filepath.Dir(blob), 0o755)
		if err := os.WriteFile(blob, b, 0o644); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		link := filepath.Join(snap, rel)
		os.MkdirAll(filepath.Dir(link), 0o755)
		target, _ := filepath.Rel(filepath.Dir(link), blob)
		return os.Symlink(target, link)
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// wholeGraph runs a combined model.onnx itself in ONNX Runtime on ids
// (nText rows) and pixels (nImage images) and returns its text_embeds,
// image_embeds and logits_per_image.
func wholeGraph(t *testing.T, path string, ids []int64, nText int, pixels []float32, nImage, size int, mask bool) (text, img, logits []float32) {
	t.Helper()
	idT, err := ort.NewTensor(ort.NewShape(int64(nText), int64(len(ids)/nText)), ids)
	if err != nil {
		t.Fatal(err)
	}
	defer idT.Destroy()
	pixT, err := ort.NewTensor(ort.NewShape(int64(nImage), 3, int64(size), int64(size)), pixels)
	if err != nil {
		t.Fatal(err)
	}
	defer pixT.Destroy()
	names, inputs := []string{"input_ids", "pixel_values"}, []ort.Value{idT, pixT}
	if mask {
		ones := make([]int64, len(ids))
		for i := range ones {
			ones[i] = 1
		}
		m, err := ort.NewTensor(idT.GetShape(), ones)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Destroy()
		names, inputs = append(names, "attention_mask"), append(inputs, m)
	}
	s, err := ort.NewDynamicAdvancedSession(path, names, []string{"text_embeds", "image_embeds", "logits_per_image"}, nil)
	if err != nil {
		t.Fatalf("the whole graph: %v", err)
	}
	defer s.Destroy()
	outs := make([]ort.Value, 3)
	if err := s.Run(inputs, outs); err != nil {
		t.Fatal(err)
	}
	var res [3][]float32
	for i, o := range outs {
		res[i] = slices.Clone(o.(*ort.Tensor[float32]).GetData())
		o.Destroy()
	}
	return res[0], res[1], res[2]
}

// pixelsOf is siglipd's pixel_values for images, one batch.
func pixelsOf(t *testing.T, m *Model, imgs []Image) []float32 {
	t.Helper()
	plane := m.pre.PlaneSize()
	out := make([]float32, len(imgs)*plane)
	for i, img := range imgs {
		if err := m.pre.Process(img, out[i*plane:(i+1)*plane]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestCombinedSplit: a model in the combined layout (made and exported by
// transformers, weights in onnx/model.onnx_data, an attention_mask input)
// opens as two towers split out of its graph, from a plain folder and from
// a hub cache snapshot whose files are symlinks into blobs/ (where ONNX
// Runtime's check of external data paths needs the data's real folder).
// The towers' embeddings are the whole graph's text_embeds and
// image_embeds, and the probabilities its sigmoid(logits_per_image) — so
// the logit scale and bias, which the exporter renamed after the nodes
// reading them, were found in the graph.
func TestCombinedSplit(t *testing.T) {
	testenv.Integration(t)
	model, _ := testenv.TinyCombined(t)
	labels := []string{"a car", "a dog", "red", "garage door open", "nothing"}
	for _, tt := range []struct {
		name string
		dir  string
	}{{"plain folder", model}, {"hub cache snapshot", snapshotOf(t, model)}} {
		t.Run(tt.name, func(t *testing.T) {
			m := open(t, tt.dir, func(o *Options) { o.Template = "{}" })
			if m.files.Layout != LayoutCombined || m.files.Vision != "" {
				t.Errorf("layout %q, vision %q: want the combined layout, no tower file", m.files.Layout, m.files.Vision)
			}
			if math.Abs(m.logitScale-math.Exp(3)) > 1e-5 || m.logitBias != -1 {
				t.Errorf("logit scale %g, bias %g: want exp(3), -1 (the export's)", m.logitScale, m.logitBias)
			}
			size := m.pre.Config().Width
			var imgs []Image
			for i := range 4 {
				imgs = append(imgs, imageproc.FromImage(scene(size, size, uint64(60+i))))
			}
			imgs = append(imgs, imageproc.FromImage(solid(size, size, color.RGBA{20, 200, 90, 255})))
			var ids []int64
			for _, l := range labels {
				ids = append(ids, m.TokenIDs(l)...)
			}
			wantText, wantImg, wantLogits := wholeGraph(t, filepath.Join(tt.dir, "onnx", "model.onnx"), ids, len(labels), pixelsOf(t, m, imgs), len(imgs), size, true)

			te, err := m.EmbedTexts(labels)
			if err != nil {
				t.Fatal(err)
			}
			ie, err := m.EmbedImages(imgs)
			if err != nil {
				t.Fatal(err)
			}
			probs := classifyAll(t, m, labels, imgs)
			dim := m.Info().EmbedDim
			var dEmb, dProb, lo, hi float64 = 0, 0, 1, 0
			for i, e := range te {
				dEmb = math.Max(dEmb, maxDiff(e, float64s(wantText[i*dim:(i+1)*dim])))
			}
			for i, e := range ie {
				dEmb = math.Max(dEmb, maxDiff(e, float64s(wantImg[i*dim:(i+1)*dim])))
				for j := range labels {
					p := 1 / (1 + math.Exp(-float64(wantLogits[i*len(labels)+j])))
					dProb = math.Max(dProb, math.Abs(float64(probs[i][j])-p))
					lo, hi = math.Min(lo, p), math.Max(hi, p)
				}
			}
			t.Logf("split towers vs the whole graph: max |Δ embedding| %.3g, max |Δp| %.3g over p in %.3f–%.3f", dEmb, dProb, lo, hi)
			if dEmb > 1e-6 || dProb > 1e-6 {
				t.Errorf("the split towers differ from the whole graph: embeddings by %.3g, probabilities by %.3g", dEmb, dProb)
			}
			if hi-lo < 0.2 {
				t.Errorf("probabilities span only %.3f–%.3f: too insensitive a model to test", lo, hi)
			}
		})
	}
}

func float64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestCombinedErrors: a broken combined model is one error that names the
// file and what to do.
func TestCombinedErrors(t *testing.T) {
	testenv.Integration(t)
	lib := testenv.ORTLib(t)
	good, _ := testenv.TinyCombined(t)
	replace := func(old, new string) func(dir string) error {
		return func(dir string) error {
			p := filepath.Join(dir, "onnx", "model.onnx")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.Contains(b, []byte(old)) {
				return fmt.Errorf("%q is not in the graph", old)
			}
			return os.WriteFile(p, bytes.ReplaceAll(b, []byte(old), []byte(new)), 0o644)
		}
	}
	for _, tt := range []struct {
		name   string
		break_ func(dir string) error
		want   []string
	}{
		{"weights missing", func(dir string) error { return os.Remove(filepath.Join(dir, "onnx", "model.onnx_data")) },
			[]string{"combined model", "model.onnx_data", "download complete"}},
		{"weights truncated", func(dir string) error { return truncate(filepath.Join(dir, "onnx", "model.onnx_data")) },
			[]string{"vision tower", "model.onnx", "ONNX Runtime could not create a session"}},
		{"no image_embeds output", replace("image_embeds", "image_embedz"),
			[]string{"combined model", "model.onnx", "has no image_embeds output (outputs: logits_per_image, logits_per_text, text_embeds, image_embedz)"}},
		{"weights outside the folder", replace("model.onnx_data", "../el.onnx_data"),
			[]string{"model.onnx", `external data location "../el.onnx_data" is not a file inside the model's folder`}},
		{"no tokenizer", func(dir string) error { return os.Remove(filepath.Join(dir, "tokenizer.json")) },
			[]string{"tokenizer", "tokenizer.json", "missing"}},
	} {
		t.Run(tt.name, func(t *testing.T) { checkBroken(t, good, lib, tt.break_, tt.want) })
	}
}

// TestLayouts: FindModelFiles tells each layout from the files a folder
// has, for a variant; a folder in none says what each layout would need,
// and an empty checkpoint is refused by the checkpoint reader, naming the file.
func TestLayouts(t *testing.T) {
	base := []string{"config.json", "preprocessor_config.json", "tokenizer.json"}
	for _, tt := range []struct {
		name   string
		files  []string
		suffix string
		layout Layout
		set    []string // ModelFiles fields that must be set: Vision, Text, Full
		errors []string
	}{
		{"towers", append(base, "onnx/vision_model.onnx", "onnx/text_model.onnx"), "", LayoutTowers, []string{"Vision", "Text"}, nil},
		{"towers and full model", append(base, "onnx/vision_model.onnx", "onnx/text_model.onnx", "onnx/model.onnx"), "", LayoutTowers, []string{"Vision", "Text", "Full"}, nil},
		{"towers of a variant, full model not of it", append(base, "onnx/vision_model_fp16.onnx", "onnx/text_model_fp16.onnx", "onnx/model.onnx"), "_fp16", LayoutTowers, []string{"Vision", "Text"}, nil},
		{"one tower", append(base, "onnx/text_model.onnx", "onnx/model.onnx"), "", "", nil, []string{"vision tower", "vision_model.onnx: missing"}},
		{"combined", append(base, "onnx/model.onnx", "onnx/model.onnx_data"), "", LayoutCombined, []string{"Full"}, nil},
		{"combined, quantized", append(base, "onnx/model.onnx", "onnx/model_quantized.onnx"), "_quantized", LayoutCombined, []string{"Full"}, nil},
		{"combined without tokenizer", []string{"config.json", "preprocessor_config.json", "onnx/model.onnx"}, "", "", nil, []string{"tokenizer", "missing"}},
		{"checkpoint", []string{"config.json", "preprocessor_config.json", "model.safetensors", "spiece.model"}, "", LayoutCheckpoint, nil, nil},
		{"sharded checkpoint", []string{"config.json", "preprocessor_config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors"}, "", LayoutCheckpoint, nil, nil},
		{"checkpoint without preprocessor", []string{"config.json", "model.safetensors"}, "", "", nil, []string{"preprocessor_config.json: missing"}},
		{"ONNX of another variant beside a checkpoint", append(base, "model.safetensors", "onnx/model.onnx"), "_fp16", "",
			nil, []string{"onnx/model_fp16.onnx", "not read as a transformers checkpoint"}},
		{"nothing", base, "", "", nil, []string{"no model: it has neither", "vision_model.onnx and", "text_model.onnx (one file per tower",
			"model.onnx (one graph of both towers", "model.safetensors or", "model.safetensors.index.json (a transformers checkpoint", "siglipd runs these three layouts"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				p := filepath.Join(dir, filepath.FromSlash(f))
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, nil, 0o644)
			}
			f, err := FindModelFiles(dir, tt.suffix)
			if tt.errors != nil {
				if err == nil {
					t.Fatalf("no error; layout %q", f.Layout)
				}
				for _, w := range tt.errors {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Layout != tt.layout {
				t.Errorf("layout %q, want %q", f.Layout, tt.layout)
			}
			got := map[string]string{"Vision": f.Vision, "Text": f.Text, "Full": f.Full}
			for name, v := range got {
				if (v != "") != slices.Contains(tt.set, name) {
					t.Errorf("%s = %q; want it set: %v", name, v, slices.Contains(tt.set, name))
				}
			}
			if f.Layout == LayoutCheckpoint {
				// The layout is told by the file names alone; these are empty,
				// so the checkpoint reader has the first word (its error
				// names the file).
				_, err := Check(Options{Dir: dir})
				if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "config.json")) {
					t.Errorf("Check of an empty checkpoint: %v", err)
				}
			}
		})
	}
}

// TestTracedLogitParams: logit_scale and logit_bias are found in the
// logits head whatever the exporter named them — as constants read through
// Exp, or already exponentiated (folded), the operands in either order,
// the bias a Constant node — and not invented where there is no head.
func TestTracedLogitParams(t *testing.T) {
	scalar := func(name string, v float32) onnxpb.Tensor { return onnxpb.FloatTensor(name, nil, []float32{v}) }
	head := []onnxpb.Node{
		{Op: "Transpose", Inputs: []string{"image_embeds"}, Outputs: []string{"it"}},
		{Op: "MatMul", Inputs: []string{"text_embeds", "it"}, Outputs: []string{"sim"}},
	}
	for _, tt := range []struct {
		name        string
		nodes       []onnxpb.Node
		inits       []onnxpb.Tensor
		scale, bias float64
		found       bool
	}{
		{"renamed, through Exp", append(slices.Clone(head),
			onnxpb.Node{Op: "Exp", Inputs: []string{"onnx::Exp_607"}, Outputs: []string{"e"}},
			onnxpb.Node{Op: "Mul", Inputs: []string{"sim", "e"}, Outputs: []string{"scaled"}},
			onnxpb.Node{Op: "Add", Inputs: []string{"scaled", "onnx::Add_608"}, Outputs: []string{"logits_per_text"}},
			onnxpb.Node{Op: "Transpose", Inputs: []string{"logits_per_text"}, Outputs: []string{"logits_per_image"}}),
			[]onnxpb.Tensor{scalar("onnx::Exp_607", 4.7), scalar("onnx::Add_608", -16.5)}, 4.7, -16.5, true},
		{"folded Exp, operands swapped, bias a Constant node", append(slices.Clone(head),
			onnxpb.Node{Op: "Mul", Inputs: []string{"scale", "sim"}, Outputs: []string{"scaled"}},
			onnxpb.Node{Op: "Constant", Outputs: []string{"b"}, Attrs: []onnxpb.Attr{onnxpb.AttrTensor("value", scalar("b", -12.5))}},
			onnxpb.Node{Op: "Add", Inputs: []string{"b", "scaled"}, Outputs: []string{"l"}},
			onnxpb.Node{Op: "Cast", Inputs: []string{"l"}, Outputs: []string{"logits_per_image"}}),
			[]onnxpb.Tensor{scalar("scale", float32(math.Exp(4.5)))}, 4.5, -12.5, true},
		{"no head", head, nil, 0, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := onnxpb.Model{Opset: 17, Graph: onnxpb.Graph{Name: "g", Nodes: tt.nodes, Initializers: tt.inits,
				Outputs: []onnxpb.ValueInfo{{Name: "logits_per_image", ElemType: onnxpb.Float}}}}
			var buf bytes.Buffer
			m.WriteTo(&buf)
			p := filepath.Join(t.TempDir(), "model.onnx")
			os.WriteFile(p, buf.Bytes(), 0o644)
			scale, bias, err := tracedLogitParams(p)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.found {
				if scale != nil || bias != nil {
					t.Errorf("found %v, %v in a graph without a logits head", scale, bias)
				}
				return
			}
			if scale == nil || bias == nil || math.Abs(*scale-tt.scale) > 1e-6 || math.Abs(*bias-tt.bias) > 1e-6 {
				t.Errorf("scale %v, bias %v; want %g, %g", scale, bias, tt.scale, tt.bias)
			}
		})
	}
}

// noise is an opaque image of uniform random pixels.
func noise(w, h int, seed uint64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(seed, 3))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	return img
}

// TestSo400mCombined is the so400m layout end to end: a random-weight
// SiglipModel of google/siglip-so400m-patch14-384's widths and input size
// (one layer per tower), made and exported by transformers as
// onnx-community/siglip-so400m-patch14-384-ONNX is — one graph, its weights
// in onnx/model.onnx_data — served by a stand-in hub and downloaded into
// the cache (a connection dropped mid-way through the weights resumes),
// then split and run by siglipd from the snapshot. Its probabilities match
// PyTorch's SiglipModel on the same weights, on siglipd's pixel values and
// ids and on the pixel values transformers' Pillow image processor makes
// from the same images (resized ones among them), and transformers.js's
// zero-shot pipeline on the exported folder, on images already 384×384
// (transformers.js resizes differently, see NOTES).
func TestSo400mCombined(t *testing.T) {
	testenv.Integration(t)
	if testenv.Race {
		t.Skip("the race detector's pass skips exporting and running a 340 MB model a second time; the normal pass runs it")
	}
	tokDir := testenv.SigLIPReferenceDir(t)
	model, checkpoint := testenv.ExportCombined(t, t.TempDir(), "so400m", tokDir, false)

	h := testenv.StartHub(t)
	const id = "onnx-community/siglip-so400m-patch14-384-ONNX"
	h.AddRepo(t, id, model, "")
	data, err := os.Stat(filepath.Join(model, "onnx", "model.onnx_data"))
	if err != nil {
		t.Fatal(err)
	}
	h.DropOnce(id, "onnx/model.onnx_data", data.Size()/3)
	snap, err := hub.ModelDir(context.Background(), hub.Client{Endpoint: h.URL, Cache: t.TempDir()},
		hub.Model{ID: id, WithFull: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(h.Requests(), func(r string) bool { return strings.HasPrefix(r, "GET storage") && strings.Contains(r, "bytes=") }) {
		t.Error("the dropped download of model.onnx_data was not resumed with a Range request")
	}
	if fi, err := os.Lstat(filepath.Join(snap, "onnx", "model.onnx_data")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the snapshot's model.onnx_data is not a symlink into blobs/ (%v)", err)
	}

	const template = "this is a photo of {}"
	labels := []string{"a car", "a dog", "red", "nothing", "a person walking", "garage door open", "3 packages"}
	m := open(t, snap, func(o *Options) { o.Template = template })
	info := m.Info()
	if info.ImageWidth != 384 || info.ImageHeight != 384 || info.EmbedDim != 1152 {
		t.Errorf("model info %+v: want 384×384 images, 1152-dimensional embeddings", info)
	}
	// transformers counts 85.5 M parameters; the graph has a few shape constants more.
	if d := info.Description; d.Family != "SigLIP" || d.Size != "so400m" || d.PatchSize != 14 || d.Parameters < 85.4e6 || d.Parameters > 85.7e6 {
		t.Errorf("description %q (%+v): want SigLIP so400m/14 with 85.5 M parameters", d, d)
	}
	t.Logf("model: %s", info.Description)
	tmp := t.TempDir()
	var imgs []Image
	var paths, exact []string // exact: the images already 384×384
	for i, img := range []image.Image{scene(384, 384, 70), scene(384, 384, 71), noise(384, 384, 72),
		solid(384, 384, color.RGBA{30, 200, 90, 255}), scene(640, 360, 73), scene(97, 131, 74)} {
		p := savePNG(t, tmp, fmt.Sprintf("%d.png", i), img)
		paths = append(paths, p)
		if img.Bounds().Dx() == 384 && img.Bounds().Dy() == 384 {
			exact = append(exact, p)
		}
		imgs = append(imgs, imageproc.FromImage(img))
	}
	probs := classifyAll(t, m, labels, imgs)

	t.Run("PyTorch", func(t *testing.T) {
		pixels := pixelsOf(t, m, imgs)
		raw := make([]byte, 4*len(pixels))
		for i, v := range pixels {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
		pixPath := filepath.Join(tmp, "pixel_values.f32")
		os.WriteFile(pixPath, raw, 0o644)
		var ids [][]int64
		var texts []string
		for _, l := range labels {
			ids = append(ids, m.TokenIDs(l))
			texts = append(texts, m.PromptText(l))
		}
		req, _ := json.Marshal(map[string]any{"pixel_values": pixPath, "n": len(imgs), "input_ids": ids, "images": paths,
			"tokenizer": filepath.Join(tokDir, "tokenizer.json"), "texts": texts})
		reqPath := filepath.Join(tmp, "request.json")
		os.WriteFile(reqPath, req, 0o644)
		var py struct {
			Probs          [][]float64 `json:"probs"`
			ProbsProcessor [][]float64 `json:"probs_processor"`
			IDs            [][]int64   `json:"ids"`
		}
		if err := json.Unmarshal(testenv.TorchScript(t, "export_combined.py", "score", checkpoint, reqPath), &py); err != nil {
			t.Fatal(err)
		}
		for i := range labels {
			if !slices.Equal(ids[i], py.IDs[i]) {
				t.Errorf("%q: siglipd's ids %v, HF tokenizers' %v", texts[i], ids[i], py.IDs[i])
			}
		}
		var same, proc, lo, hi float64 = 0, 0, 1, 0
		for i := range imgs {
			for j := range labels {
				d := math.Abs(float64(probs[i][j]) - py.Probs[i][j])
				same = math.Max(same, d)
				proc = math.Max(proc, math.Abs(float64(probs[i][j])-py.ProbsProcessor[i][j]))
				lo, hi = math.Min(lo, py.Probs[i][j]), math.Max(hi, py.Probs[i][j])
				if d > 1e-4 {
					t.Errorf("image %d (%dx%d) label %q: siglipd %.6f, PyTorch %.6f", i, imgs[i].Width, imgs[i].Height, labels[j], probs[i][j], py.Probs[i][j])
				}
			}
		}
		t.Logf("max |p - p_PyTorch| = %.3g on the same pixel values and ids; %.3g on transformers' Pillow processor's pixel values; "+
			"%d probabilities spanning %.3f–%.3f", same, proc, len(imgs)*len(labels), lo, hi)
		if proc > 1e-4 {
			t.Errorf("with transformers' own preprocessing PyTorch differs by %.3g", proc)
		}
		if hi-lo < 0.2 {
			t.Errorf("probabilities span only %.3f–%.3f: too insensitive a model to test parity", lo, hi)
		}
	})

	t.Run("transformers.js", func(t *testing.T) {
		var ref zeroShotResponse
		testenv.Reference(t, map[string]any{"op": "zeroshot", "model": model, "images": exact, "labels": labels, "template": template}, &ref)
		var worst float64
		for i := range exact {
			for _, r := range ref.Results[i] {
				j := indexOf(labels, r.Label)
				d := math.Abs(float64(probs[i][j]) - r.Score)
				worst = math.Max(worst, d)
				if d > 1e-4 {
					t.Errorf("image %d label %q: siglipd %.6f, transformers.js %.6f", i, r.Label, probs[i][j], r.Score)
				}
			}
		}
		t.Logf("max |p - p_js| = %.3g over %d probabilities (transformers.js's zero-shot pipeline on the combined model.onnx)", worst, len(exact)*len(labels))
	})
}
