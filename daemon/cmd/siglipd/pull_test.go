package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/internal/testenv"
)

// TestPull: `siglipd pull` fetches a model from the hub (a local stand-in)
// into huggingface_hub's cache and prints the folder, which then passes
// --check as model.path; a second pull downloads nothing; offline it
// answers from the cache; a variant the repository lacks and a bad id are
// one clear line each.
func TestPull(t *testing.T) {
	h := testenv.StartHub(t)
	commit := h.AddRepo(t, "siglipd-test/tiny", testenv.Model(t, "tiny"), "")
	cache := t.TempDir()
	env := []string{"HF_ENDPOINT=" + h.URL, "HF_HUB_CACHE=" + cache, "HF_TOKEN=", "HF_HUB_OFFLINE="}

	idConfig := writeConfig(t, "model:\n  id: siglipd-test/tiny\ncameras:\n  - {name: door, url: /dev/video0, labels: [{name: person, threshold: 0.3}]}\n")
	checkEnv := append(env, "SIGLIPD_ORT_LIB="+testenv.ORTLib(t))
	if _, errOut, code := run(t, checkEnv, "--config", idConfig, "--check"); code != exitOK ||
		!strings.Contains(errOut, "note: model.id siglipd-test/tiny is not in the model cache") {
		t.Errorf("--check before the pull: exit %d, want 0 and a note that the model will be downloaded:\n%s", code, errOut)
	}
	if reqs := h.Requests(); len(reqs) > 0 {
		t.Errorf("--check asked the hub: %q", reqs)
	}

	out, errOut, code := run(t, env, "pull", "siglipd-test/tiny")
	want := filepath.Join(cache, "models--siglipd-test--tiny", "snapshots", commit)
	if code != exitOK || strings.TrimSpace(out) != want {
		t.Fatalf("pull: exit %d, stdout %q, want %q\n%s", code, out, want, errOut)
	}
	if !strings.Contains(errOut, "onnx/vision_model.onnx") {
		t.Errorf("no progress for the vision tower on stderr:\n%s", errOut)
	}
	cfg := writeConfig(t, "model:\n  path: "+want+"\ncameras:\n  - {name: door, url: /dev/video0, labels: [{name: person, threshold: 0.3}]}\n")
	if _, errOut, code := run(t, []string{"SIGLIPD_ORT_LIB=" + testenv.ORTLib(t)}, "--config", cfg, "--check"); code != exitOK {
		t.Errorf("--check of the pulled folder: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := run(t, checkEnv, "--config", idConfig, "--check"); code != exitOK || strings.Contains(errOut, "not in the model cache") ||
		!strings.Contains(errOut, "note: model: SigLIP") {
		t.Errorf("--check after the pull: exit %d, want 0, no download note, and what the model is:\n%s", code, errOut)
	}
	h.Requests()

	if out2, _, code := run(t, env, "pull", "siglipd-test/tiny"); code != exitOK || out2 != out {
		t.Errorf("second pull: exit %d, %q", code, out2)
	}
	for _, r := range h.Requests() {
		if strings.HasPrefix(r, "GET") {
			t.Errorf("second pull downloaded: %s", r)
		}
	}
	if out3, errOut, code := run(t, append(env, "HF_HUB_OFFLINE=1"), "pull", "siglipd-test/tiny"); code != exitOK || out3 != out {
		t.Errorf("offline pull: exit %d, %q\n%s", code, out3, errOut)
	}

	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing variant", []string{"pull", "siglipd-test/tiny", "--variant", "q4"}, exitFailure, "siglipd-test/tiny@main: onnx/vision_model_q4.onnx: no such file"},
		{"bad id", []string{"pull", "not a model"}, exitUsage, `"not a model" is not a Hugging Face model id`},
		{"bad variant", []string{"pull", "siglipd-test/tiny", "--variant", "fp64"}, exitUsage, `--variant "fp64"`},
		{"no id", []string{"pull"}, exitUsage, "give one model id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := run(t, env, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, want %d; stderr lacks %q:\n%s", code, tt.code, tt.want, errOut)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(cache, ".locks")); err != nil {
		t.Errorf("no .locks folder in the cache: %v", err)
	}
}

// TestPullCheckpoint: pulling a repository in Google's layout downloads
// the checkpoint and builds its towers; --check then describes the model
// from the built towers, and a second pull builds nothing.
func TestPullCheckpoint(t *testing.T) {
	testenv.Integration(t)
	h := testenv.StartHub(t)
	commit := h.AddRepo(t, "google/siglip-small-test", testenv.GoogleCheckpoint(t, t.TempDir(), "small"), "")
	cache := t.TempDir()
	env := []string{"HF_ENDPOINT=" + h.URL, "HF_HUB_CACHE=" + cache, "HF_TOKEN=", "HF_HUB_OFFLINE=", "SIGLIPD_ORT_LIB=" + testenv.ORTLib(t)}
	out, errOut, code := run(t, env, "pull", "google/siglip-small-test")
	snapshot := filepath.Join(cache, "models--google--siglip-small-test", "snapshots", commit)
	built := filepath.Join(cache, "models--google--siglip-small-test", "siglipd", commit)
	if code != exitOK || strings.TrimSpace(out) != snapshot || !strings.Contains(errOut, "its ONNX towers are in "+built) {
		t.Fatalf("pull: exit %d, stdout %q, want %q; stderr:\n%s", code, out, snapshot, errOut)
	}
	if _, err := os.Stat(filepath.Join(built, "onnx", "vision_model.onnx")); err != nil {
		t.Errorf("no vision tower built: %v", err)
	}
	cfg := writeConfig(t, "model:\n  id: google/siglip-small-test\ncameras:\n  - {name: door, url: /dev/video0, labels: [{name: person, threshold: 0.3}]}\n")
	if _, errOut, code := run(t, env, "--config", cfg, "--check"); code != exitOK || !strings.Contains(errOut, "note: model: SigLIP, patch 16, 224x224 input") {
		t.Errorf("--check after the pull: exit %d, want 0 and what the model is:\n%s", code, errOut)
	}
	if _, errOut, code := run(t, env, "pull", "google/siglip-small-test"); code != exitOK || strings.Contains(errOut, "built ONNX towers") {
		t.Errorf("second pull: exit %d, built again:\n%s", code, errOut)
	}
}

// TestPullNotSigLIP: a repository that is not a model siglipd runs is
// refused in one sentence once its config.json is read, before any
// weights are downloaded.
func TestPullNotSigLIP(t *testing.T) {
	h := testenv.StartHub(t)
	tests := []struct {
		id, config, want string
	}{
		{"openai/clip-vit-base-patch32", `{"model_type": "clip", "architectures": ["CLIPModel"]}`, "a CLIP model"},
		{"google/siglip2-base-patch16-naflex", `{"model_type": "siglip2"}`, "NaFlex"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range map[string]string{"config.json": tt.config, "preprocessor_config.json": `{}`, "model.safetensors": "weights"} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			h.AddRepo(t, tt.id, dir, "")
			env := []string{"HF_ENDPOINT=" + h.URL, "HF_HUB_CACHE=" + t.TempDir(), "HF_TOKEN=", "HF_HUB_OFFLINE="}
			_, errOut, code := run(t, env, "pull", tt.id)
			if code != exitFailure || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "siglipd runs SigLIP") {
				t.Errorf("exit %d, stderr %q: want exit 1 and one sentence saying what it is (%q) and what siglipd runs", code, errOut, tt.want)
			}
			for _, r := range h.Requests() {
				if strings.Contains(r, "model.safetensors") {
					t.Errorf("asked for the weights: %s", r)
				}
			}
		})
	}
}
