package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TorchPython is the Python of the venv .deps/torch that scripts/setup.sh
// installs from scripts/requirements-torch.txt: PyTorch, transformers,
// tokenizers, sentencepiece, onnx and ONNX Runtime's Python tools, the
// independent references of the model tests. Without it the test skips
// (fails under SIGLIPD_REQUIRE_ALL=1).
func TorchPython(t testing.TB) string {
	t.Helper()
	python := filepath.Join(RepoRoot(t), ".deps", "torch", "bin", "python")
	_, err := os.Stat(python)
	Need(t, err == nil, "the Python venv .deps/torch with PyTorch transformers (scripts/requirements-torch.txt)")
	return python
}

// TorchScript runs scripts/torch/NAME with the venv's Python and args, and
// returns its standard output; a failure fails the test with its stderr.
// The scripts keep PyTorch to one thread per core the machine has left.
func TorchScript(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	python := TorchPython(t)
	cmd := exec.Command(python, append([]string{filepath.Join(RepoRoot(t), "scripts", "torch", name)}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONHASHSEED=0", "TOKENIZERS_PARALLELISM=false", "HF_HUB_OFFLINE=1", "TRANSFORMERS_VERBOSITY=error")
	var stderr SyncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/torch/%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return out
}
