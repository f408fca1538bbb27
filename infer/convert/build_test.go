package convert_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siglipd/siglipd/infer/convert"
	"github.com/siglipd/siglipd/infer/testmodel"
)

// tinyCheckpoint is a checkpoint in transformers' layout written by
// testmodel (config.json, preprocessor_config.json, tokenizer.json and
// model.safetensors under SiglipModel's names), without its ONNX files:
// Build's input with no Python needed. TestParity checks the real thing.
func tinyCheckpoint(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := testmodel.Generate(testmodel.Options{Preset: "tiny", OutDir: dir, Safetensors: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "onnx")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBuildReuses checks the stamp: a second Build writes nothing, a
// changed source file or option rebuilds, and the folder is never left
// half-written.
func TestBuildReuses(t *testing.T) {
	src := tinyCheckpoint(t)
	if !convert.IsCheckpoint(src) {
		t.Fatalf("IsCheckpoint(%s) = false for config.json + model.safetensors", src)
	}
	out := filepath.Join(t.TempDir(), "out")
	res, err := convert.Build(src, out, convert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reused {
		t.Fatal("first build says it reused a folder")
	}
	vision := filepath.Join(out, "onnx", "vision_model.onnx")
	st0, err := os.Stat(vision)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name       string
		change     func()
		opts       convert.Options
		wantReused bool
	}{
		{"same checkpoint", func() {}, convert.Options{}, true},
		{"plain graph asked for", func() {}, convert.Options{Plain: true}, false},
		{"plain again", func() {}, convert.Options{Plain: true}, true},
		{"config.json touched", func() {
			future := time.Now().Add(time.Hour)
			if err := os.Chtimes(filepath.Join(src, "config.json"), future, future); err != nil {
				t.Fatal(err)
			}
		}, convert.Options{Plain: true}, false},
		{"weights replaced", func() {
			raw, err := os.ReadFile(filepath.Join(src, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(src, "model.safetensors"), append(raw, 0)) // one byte longer: another size
		}, convert.Options{Plain: true}, false},
	}
	for _, s := range steps {
		s.change()
		res, err := convert.Build(src, out, s.opts)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if res.Reused != s.wantReused {
			t.Errorf("%s: Reused = %v, want %v", s.name, res.Reused, s.wantReused)
		}
		st, err := os.Stat(vision)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.wantReused && !st.ModTime().Equal(st0.ModTime()) {
			t.Errorf("%s: vision_model.onnx was rewritten although the build was reused", s.name)
		}
		st0 = st
	}
	leftovers, _ := filepath.Glob(out + ".*")
	if len(leftovers) > 0 {
		t.Errorf("builds left %v next to the output", leftovers)
	}
}

// editHeader rewrites a safetensors file's header through fn (tensor name →
// entry), keeping the data.
func editHeader(t *testing.T, path string, fn func(map[string]map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	var header map[string]map[string]any
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	fn(header)
	hb, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	for len(hb)%8 != 0 {
		hb = append(hb, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hb)))
	out = append(append(out, hb...), raw[8+n:]...)
	writeFile(t, path, out)
}

func editJSON(t *testing.T, path string, fn func(map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	fn(doc)
	b, _ := json.Marshal(doc)
	writeFile(t, path, b)
}

// TestBuildErrors: every checkpoint siglipd cannot build gives one error
// naming the file, key or tensor at fault, and leaves no output folder.
func TestBuildErrors(t *testing.T) {
	const fc1 = "vision_model.encoder.layers.1.mlp.fc1.weight" // [128, 64] in tiny
	cases := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   []string
	}{
		{"a CLIP", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(d map[string]any) { d["model_type"] = "clip" })
		}, []string{"config.json", `model_type is "clip", not a SigLIP model`}},
		{"NaFlex SigLIP 2", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(d map[string]any) { d["model_type"] = "siglip2" })
		}, []string{"config.json", "NaFlex", "fixed-resolution"}},
		{"another activation", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(d map[string]any) {
				d["text_config"].(map[string]any)["hidden_act"] = "quick_gelu"
			})
		}, []string{"text_config.hidden_act", "quick_gelu"}},
		{"no pooling head", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(d map[string]any) {
				d["vision_config"].(map[string]any)["vision_use_head"] = false
			})
		}, []string{"vision_use_head is false"}},
		{"projection of another size", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(d map[string]any) {
				d["text_config"].(map[string]any)["projection_size"] = 32
			})
		}, []string{"projection_size 32", "hidden_size 64"}},
		{"missing tensor", func(t *testing.T, dir string) {
			editHeader(t, filepath.Join(dir, "model.safetensors"), func(h map[string]map[string]any) { delete(h, "text_model.head.weight") })
		}, []string{`"text_model.head.weight" is missing`}},
		{"mis-shaped tensor", func(t *testing.T, dir string) {
			editHeader(t, filepath.Join(dir, "model.safetensors"), func(h map[string]map[string]any) {
				h[fc1]["shape"] = []int{64, 128} // same bytes, transposed
			})
		}, []string{"model.safetensors", fc1, "shape [64 128]", "implies [128 64]"}},
		{"config and weights disagree", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(d map[string]any) {
				d["vision_config"].(map[string]any)["intermediate_size"] = 96
			})
		}, []string{"vision_model.encoder.layers.0.mlp.fc1.weight", "shape [128 64]", "implies [96 64]"}},
		{"truncated weights", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			st, _ := os.Stat(p)
			if err := os.Truncate(p, st.Size()-4096); err != nil {
				t.Fatal(err)
			}
		}, []string{"model.safetensors", "run past", "truncated"}},
		{"corrupt values", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			raw, _ := os.ReadFile(p)
			n := binary.LittleEndian.Uint64(raw)
			var header map[string]map[string]any
			json.Unmarshal(raw[8:8+n], &header)
			off := header[fc1]["data_offsets"].([]any)[0].(float64)
			binary.LittleEndian.PutUint32(raw[8+n+uint64(off):], math.Float32bits(float32(math.NaN())))
			writeFile(t, p, raw)
		}, []string{fc1, "NaN", "corrupt"}},
		{"unsupported dtype", func(t *testing.T, dir string) {
			editHeader(t, filepath.Join(dir, "model.safetensors"), func(h map[string]map[string]any) {
				h["logit_bias"]["dtype"] = "I32"
			})
		}, []string{"logit_bias", "I32", "F32, F16 and BF16"}},
		{"no preprocessor config", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "preprocessor_config.json"))
		}, []string{"preprocessor_config.json", "missing"}},
		{"only spiece.model", func(t *testing.T, dir string) {
			os.Rename(filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "spiece.model"))
		}, []string{"spiece.model but no tokenizer.json"}},
		{"no weights", func(t *testing.T, dir string) {
			os.Rename(filepath.Join(dir, "model.safetensors"), filepath.Join(dir, "pytorch_model.bin"))
		}, []string{"neither model.safetensors", "pytorch_model.bin"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tinyCheckpoint(t)
			tc.change(t, src)
			out := filepath.Join(t.TempDir(), "out")
			_, err := convert.Build(src, out, convert.Options{})
			if err == nil {
				t.Fatal("Build succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, statErr := os.Stat(out); statErr == nil {
				t.Errorf("a failed build left %s", out)
			}
		})
	}
}

// TestSentencePieceHook: a checkpoint with only spiece.model gets its
// tokenizer.json from Options.SentencePiece.
func TestSentencePieceHook(t *testing.T) {
	src := tinyCheckpoint(t)
	tj, err := os.ReadFile(filepath.Join(src, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Join(src, "tokenizer.json"), filepath.Join(src, "spiece.model"))
	var gotPath string
	out := filepath.Join(t.TempDir(), "out")
	_, err = convert.Build(src, out, convert.Options{SentencePiece: func(p string) ([]byte, error) { gotPath = p; return tj, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != filepath.Join(src, "spiece.model") {
		t.Errorf("hook called with %q", gotPath)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "tokenizer.json")); string(got) != string(tj) {
		t.Error("tokenizer.json is not what the hook returned")
	}
}

func TestOutputDir(t *testing.T) {
	cases := []struct{ src, want string }{
		{"/cache/hub/models--google--siglip-so400m-patch14-384/snapshots/9fdffc58afc957d1a03a25b10dba0329ab15c2a3",
			"/cache/hub/models--google--siglip-so400m-patch14-384/siglipd/9fdffc58afc957d1a03a25b10dba0329ab15c2a3"},
		{"/cache/hub/models--google--siglip-so400m-patch14-384/snapshots/abc/", "/cache/hub/models--google--siglip-so400m-patch14-384/siglipd/abc"},
		{"/models/my-siglip", "/models/my-siglip/.siglipd"},
		{"/models/snapshots/abc", "/models/snapshots/abc/.siglipd"}, // not a hub cache: no models-- folder
	}
	for _, c := range cases {
		if got := convert.OutputDir(c.src); got != c.want {
			t.Errorf("OutputDir(%q) = %q, want %q", c.src, got, c.want)
		}
	}
}

// TestConfigDefaults: a config in Google's style, with only the keys that
// differ from SiglipConfig's defaults, reads as the full shape.
func TestConfigDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	writeFile(t, p, []byte(`{"model_type": "siglip", "architectures": ["SiglipModel"],
		"text_config": {"hidden_size": 1152, "intermediate_size": 4304, "model_type": "siglip_text_model", "num_attention_heads": 16, "num_hidden_layers": 27},
		"vision_config": {"hidden_size": 1152, "image_size": 384, "intermediate_size": 4304, "model_type": "siglip_vision_model",
		  "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14}}`))
	c, err := convert.ReadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	tower := convert.Tower{Hidden: 1152, Layers: 27, Heads: 16, MLP: 4304, LayerNormEps: 1e-6, Act: "gelu_pytorch_tanh"}
	want := convert.Config{ImageHeight: 384, ImageWidth: 384, PatchSize: 14, Vision: tower, Text: tower,
		VocabSize: 32000, MaxPositions: 64, ProjectionSize: 1152}
	if c != want {
		t.Errorf("ReadConfig = %+v\nwant %+v", c, want)
	}
	if c.Patches() != 729 {
		t.Errorf("Patches() = %d, want 729", c.Patches())
	}
}

// TestEnsure: a checkpoint in the Hugging Face cache (files as symlinks
// into blobs/, as huggingface_hub and infer/hub keep them) is built next to
// its snapshot, once; a local folder gets <dir>/.siglipd; a read-only local
// folder falls back to the state folder.
func TestEnsure(t *testing.T) {
	src := tinyCheckpoint(t)
	cache := t.TempDir()
	repo := filepath.Join(cache, "models--google--siglip-tiny")
	snap := filepath.Join(repo, "snapshots", "0123abcd")
	for _, d := range []string{snap, filepath.Join(repo, "blobs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(src)
	for i, e := range entries {
		blob := filepath.Join(repo, "blobs", fmt.Sprintf("blob%d", i))
		if err := os.Rename(filepath.Join(src, e.Name()), blob); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "blobs", filepath.Base(blob)), filepath.Join(snap, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	want := filepath.Join(repo, "siglipd", "0123abcd")
	for i, wantReused := range []bool{false, true} {
		res, err := convert.Ensure(snap, "", convert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Dir != want || res.Reused != wantReused {
			t.Errorf("call %d: Ensure = %s reused %v, want %s reused %v", i+1, res.Dir, res.Reused, want, wantReused)
		}
	}
	if _, err := os.Stat(filepath.Join(want, "onnx", "vision_model.onnx")); err != nil {
		t.Error(err)
	}

	local := tinyCheckpoint(t)
	res, err := convert.Ensure(local, "", convert.Options{})
	if err != nil || res.Dir != filepath.Join(local, ".siglipd") {
		t.Errorf("local checkpoint: Ensure = %s, %v; want %s", res.Dir, err, filepath.Join(local, ".siglipd"))
	}
	if !convert.IsCheckpoint(local) {
		t.Error("the output folder inside the checkpoint hides it from IsCheckpoint")
	}

	t.Run("read-only folder", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("skipping: root writes into read-only folders, so the fallback cannot be provoked")
		}
		ro := tinyCheckpoint(t)
		if err := os.Chmod(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(ro, 0o755) })
		state := t.TempDir()
		res, err := convert.Ensure(ro, state, convert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res.Dir, filepath.Join(state, "converted")+string(filepath.Separator)) {
			t.Errorf("read-only checkpoint built in %s, want under %s/converted", res.Dir, state)
		}
	})
}

// TestBuildConcurrent: builds of one folder at the same time all succeed,
// and one complete copy is left.
func TestBuildConcurrent(t *testing.T) {
	src := tinyCheckpoint(t)
	out := filepath.Join(t.TempDir(), "out")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := convert.Build(src, out, convert.Options{})
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, f := range []string{convert.StampFile, "onnx/vision_model.onnx", "onnx/text_model.onnx", "onnx/model.onnx", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if leftovers, _ := filepath.Glob(out + ".*"); len(leftovers) > 0 {
		t.Errorf("concurrent builds left %v", leftovers)
	}
}
