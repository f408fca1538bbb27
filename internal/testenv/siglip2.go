package testenv

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// SigLIP2ReferenceDir is the folder of google/siglip2-base-patch16-224's
// published config, preprocessor and tokenizer files (byte-identical to the
// hub's, see PROVENANCE.md there) and token_ids_check.json:
// $SIGLIPD_SIGLIP2_REFERENCE_DIR, else
// ../shared/reference/siglip2-base-patch16-224 beside the repository. It is
// data, never copied into the repository; without it the test skips, or
// fails under SIGLIPD_REQUIRE_ALL=1.
func SigLIP2ReferenceDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("SIGLIPD_SIGLIP2_REFERENCE_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "..", "shared", "reference", "siglip2-base-patch16-224")
	}
	_, err := os.Stat(filepath.Join(dir, "tokenizer.json"))
	Need(t, err == nil, "SigLIP 2's published files at "+dir+" (set SIGLIPD_SIGLIP2_REFERENCE_DIR)")
	return dir
}

// SigLIP2Model is a random-weight SigLIP 2 that transformers itself made
// from the published config (small widths, the real 256,000-token
// vocabulary) and exported (scripts/torch/siglip2.py make): Dir in the
// onnx-community layout with the published preprocessor and tokenizer
// files, Torch the same weights as transformers saved them.
type SigLIP2Model struct {
	Dir, Torch string
	Parameters int
}

var siglip2 struct {
	sync.Mutex
	model *SigLIP2Model
}

// SigLIP2 returns the SigLIP 2 test model, made in a new folder under
// parent the first time a test binary asks (about ten seconds of Python;
// the folders take about 100 MB, so parent should be one the test binary
// removes when it ends). Tests must not change it.
func SigLIP2(t testing.TB, parent string) SigLIP2Model {
	t.Helper()
	ref := SigLIP2ReferenceDir(t)
	siglip2.Lock()
	defer siglip2.Unlock()
	if siglip2.model != nil {
		return *siglip2.model
	}
	root, err := os.MkdirTemp(parent, "siglip2")
	if err != nil {
		t.Fatal(err)
	}
	m := SigLIP2Model{Dir: filepath.Join(root, "siglip2-onnx"), Torch: filepath.Join(root, "siglip2-torch")}
	// exp(logit_scale) = 10, no bias: with the script's centred towers the
	// probabilities spread over most of (0, 1).
	req := map[string]any{"op": "make", "reference": ref, "out": m.Dir, "torch_out": m.Torch, "seed": 1,
		"logit_scale": math.Log(10), "logit_bias": 0}
	var resp struct {
		Parameters int `json:"parameters"`
	}
	TorchJSON(t, "siglip2.py", filepath.Join(root, "make.json"), req, &resp)
	m.Parameters = resp.Parameters
	siglip2.model = &m
	return m
}

// TorchJSON runs scripts/torch/NAME with a request written as JSON to
// reqPath, and decodes the JSON it prints into resp.
func TorchJSON(t testing.TB, name, reqPath string, req, resp any) {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(reqPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := TorchScript(t, name, reqPath)
	if err := json.Unmarshal(out, resp); err != nil {
		t.Fatalf("scripts/torch/%s: bad answer: %v\n%.500s", name, err, out)
	}
}
