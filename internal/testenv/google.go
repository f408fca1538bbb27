package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// GoogleCheckpoint writes a random-weight SigLIP checkpoint in the layout of
// Google's own repositories (google/siglip-so400m-patch14-384, ...), made
// and saved by transformers itself: config.json with only the keys that
// differ from SiglipConfig's defaults, model.safetensors (float32 shards
// with their index for the so400m shape), preprocessor_config.json, and a
// SentencePiece spiece.model (trained here, the SigLIP settings) with
// tokenizer_config.json and special_tokens_map.json — no tokenizer.json.
// shape is one of scripts/torch/checkpoint.py's (small, so400m, ...); the
// vocabulary is the trained one (about 1000 pieces), not Google's 32000.
// It returns the folder.
func GoogleCheckpoint(t testing.TB, parent, shape string) string {
	t.Helper()
	root, err := os.MkdirTemp(parent, "google-"+shape)
	if err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(root, "tokenizer")
	TorchScript(t, "spm.py", "train", tok, "siglip")
	TorchScript(t, "checkpoint.py", "make", filepath.Join(root, "ckpt"), "--shape", shape, "--reference", tok, "--dtypes", "fp32")
	return filepath.Join(root, "ckpt", "fp32")
}
