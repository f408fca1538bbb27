package testenv

import (
	"path/filepath"
	"sync"
	"testing"
)

// ExportCombined writes a random-weight SigLIP model made by transformers
// itself (scripts/torch/export_combined.py) under out, and returns its two
// folders: model, in onnx-community's combined layout (one graph,
// onnx/model.onnx, with its weights in onnx/model.onnx_data), and
// checkpoint, the same weights as transformers saves them, for PyTorch to
// score. shape is "so400m" (google/siglip-so400m-patch14-384's widths and
// input size, one layer per tower: about 340 MB) or "tiny"; the vocabulary
// is tokenizerDir's tokenizer.json; mask gives the graph an attention_mask
// input, as some exports have.
func ExportCombined(t testing.TB, out, shape, tokenizerDir string, mask bool) (model, checkpoint string) {
	t.Helper()
	args := []string{"make", out, "--shape", shape, "--tokenizer-dir", tokenizerDir}
	if mask {
		args = append(args, "--mask")
	}
	TorchScript(t, "export_combined.py", args...)
	return filepath.Join(out, "model"), filepath.Join(out, "checkpoint")
}

var tinyCombined struct {
	sync.Mutex
	model, checkpoint string
}

// TinyCombined is a tiny model in the combined layout (ExportCombined's
// "tiny" shape, with an attention_mask input, around the tiny preset's
// tokenizer), exported once per test binary. Tests must not change it.
func TinyCombined(t testing.TB) (model, checkpoint string) {
	t.Helper()
	tinyCombined.Lock()
	defer tinyCombined.Unlock()
	if tinyCombined.model == "" {
		tok := Model(t, "tiny")
		models.Lock()
		root := models.root
		models.Unlock()
		tinyCombined.model, tinyCombined.checkpoint = ExportCombined(t, filepath.Join(root, "combined-tiny"), "tiny", tok, true)
	}
	return tinyCombined.model, tinyCombined.checkpoint
}
