package testenv

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Reference runs transformers.js (scripts/js/reference.mjs) with the JSON
// request req and decodes its answer into resp. transformers.js is the
// independent SigLIP implementation siglipd checks itself against.
func Reference(t testing.TB, req, resp any) {
	t.Helper()
	node := LookPath(t, "node")
	root := RepoRoot(t)
	_, err := os.Stat(filepath.Join(root, "scripts", "js", "node_modules", "@huggingface", "transformers"))
	Need(t, err == nil, "transformers.js (scripts/setup-node.sh)")
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(root, "scripts", "js", "reference.mjs"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("transformers.js reference: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(out, resp); err != nil {
		t.Fatalf("transformers.js reference: bad answer: %v\n%.500s", err, out)
	}
}

// SigLIPReferenceDir is the folder of the real SigLIP base tokenizer and
// config files (data, not code, never copied into the repository):
// $SIGLIPD_REFERENCE_DIR, else ../shared/reference/siglip-base-patch16-224
// beside the repository. Tests that need it skip with a message when it is
// absent — it is not part of a clone, so CI may not have it.
func SigLIPReferenceDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("SIGLIPD_REFERENCE_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "..", "shared", "reference", "siglip-base-patch16-224")
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Skipf("skipping: the real SigLIP tokenizer is not at %s (set SIGLIPD_REFERENCE_DIR)", dir)
	}
	return dir
}
