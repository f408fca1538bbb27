package hub_test

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/siglipd/siglipd/infer/hub"
	"github.com/siglipd/siglipd/internal/testenv"
)

// folder writes files (path → content) into a new folder.
func folder(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// repoFiles lists a folder's files as slash paths.
func repoFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestModelDirLayouts: ModelDir finds each layout by asking for files in
// turn and fetches exactly what it needs — the Xenova towers and full
// model; a combined graph and the external data file its initializers
// name; a checkpoint, whole or sharded (the shards its index names), with
// tokenizer.json or spiece.model — every file intact. A second run
// downloads nothing, and offline the cache alone gives the same folder.
// A repository in none of the layouts, or a checkpoint without a
// tokenizer, is one error saying what is missing.
func TestModelDirLayouts(t *testing.T) {
	testenv.Integration(t)
	combined, checkpoint := testenv.TinyCombined(t)
	common := map[string]string{"config.json": `{"model_type": "siglip"}`, "preprocessor_config.json": `{"size": {"height": 56, "width": 56}}`}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tt := range []struct {
		name   string
		repo   string // the served folder
		model  hub.Model
		fetch  []string // files the snapshot must hold: all the repository's when nil
		errors []string
	}{
		{name: "towers", repo: testenv.Model(t, "tiny"), model: hub.Model{WithFull: true}},
		{name: "towers, logit parameters in the config", repo: testenv.Model(t, "tiny"),
			fetch: []string{"config.json", "onnx/text_model.onnx", "onnx/vision_model.onnx", "preprocessor_config.json",
				"special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"}},
		{name: "combined", repo: combined},
		{name: "checkpoint", repo: checkpoint},
		{name: "sharded checkpoint with spiece.model", repo: folder(t, with(map[string]string{
			"model.safetensors.index.json":     `{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}`,
			"model-00001-of-00002.safetensors": "shard one", "model-00002-of-00002.safetensors": "shard two",
			"spiece.model": "sentencepiece", "tokenizer_config.json": "{}", "special_tokens_map.json": "{}",
			"README.md": "not fetched"}))},
		{name: "checkpoint without a tokenizer", repo: folder(t, with(map[string]string{"model.safetensors": "weights"})),
			errors: []string{"neither tokenizer.json nor spiece.model"}},
		{name: "index naming a file outside", repo: folder(t, with(map[string]string{"model.safetensors.index.json": `{"weight_map": {"a": "../x.safetensors"}}`, "tokenizer.json": "{}"})),
			errors: []string{"model.safetensors.index.json", `weight_map names "../x.safetensors"`}},
		{name: "no model", repo: folder(t, with(map[string]string{"tokenizer.json": "{}"})), model: hub.Model{Suffix: "_q4", Variant: "q4"},
			errors: []string{"siglipd-test/model@main: onnx/vision_model_q4.onnx: no such file in the repository", "onnx/model_q4.onnx", "model.safetensors", "variant q4"}},
		{name: "ONNX export without tokenizer.json", repo: folder(t, with(map[string]string{"onnx/model.onnx": "x"})),
			errors: []string{"tokenizer.json: no such file in the repository"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := testenv.StartHub(t)
			const id = "siglipd-test/model"
			h.AddRepo(t, id, tt.repo, "")
			c := hub.Client{Endpoint: h.URL, Cache: t.TempDir()}
			m := tt.model
			m.ID = id
			dir, err := hub.ModelDir(context.Background(), c, m, slog.New(slog.DiscardHandler))
			if tt.errors != nil {
				if err == nil {
					t.Fatalf("no error; fetched %v", repoFiles(t, dir))
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
			want := tt.fetch
			if want == nil {
				for _, f := range repoFiles(t, tt.repo) {
					if f != "README.md" {
						want = append(want, f)
					}
				}
			}
			got := repoFiles(t, dir)
			if !slices.Equal(got, want) {
				t.Errorf("fetched %q\nwant    %q", got, want)
			}
			for _, f := range got {
				a, _ := os.ReadFile(filepath.Join(dir, f))
				b, _ := os.ReadFile(filepath.Join(tt.repo, f))
				if !bytes.Equal(a, b) {
					t.Errorf("%s differs from the repository's", f)
				}
			}
			h.Requests()
			again, err := hub.ModelDir(context.Background(), c, m, slog.New(slog.DiscardHandler))
			if err != nil || again != dir {
				t.Errorf("second run: %s, %v", again, err)
			}
			for _, r := range h.Requests() {
				if strings.HasPrefix(r, "GET") {
					t.Errorf("second run downloaded: %s", r)
				}
			}
			c.Offline = true
			offline, err := hub.ModelDir(context.Background(), c, m, slog.New(slog.DiscardHandler))
			if err != nil || offline != dir {
				t.Errorf("offline: %s, %v", offline, err)
			}
			if reqs := h.Requests(); len(reqs) > 0 {
				t.Errorf("offline run asked the hub: %q", reqs)
			}
		})
	}
}

// TestExternalDataResumes: a combined graph's external data file is
// downloaded through the cache like any LFS file: a connection dropped in
// the middle resumes with a Range request, a corrupted transfer fails its
// sha256 check and is fetched again, and the snapshot's copy is the
// repository's, byte for byte.
func TestExternalDataResumes(t *testing.T) {
	testenv.Integration(t)
	combined, _ := testenv.TinyCombined(t)
	const file = "onnx/model.onnx_data"
	content, err := os.ReadFile(filepath.Join(combined, file))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		prepare   func(h *testenv.Hub, id string)
		wantRange bool
		wantGets  int
	}{
		{"dropped connection", func(h *testenv.Hub, id string) { h.DropOnce(id, file, int64(len(content)/3)) }, true, 2},
		{"corrupted in transit", func(h *testenv.Hub, id string) { h.CorruptOnce(id, file) }, false, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := testenv.StartHub(t)
			const id = "onnx-community/siglip-test-ONNX"
			h.AddRepo(t, id, combined, "")
			tt.prepare(h, id)
			dir, err := hub.ModelDir(context.Background(), hub.Client{Endpoint: h.URL, Cache: t.TempDir()}, hub.Model{ID: id}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(filepath.Join(dir, file)); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("%s differs from the repository's (%v)", file, err)
			}
			var gets []string
			for _, r := range h.Requests() {
				if strings.HasPrefix(r, "GET storage") && strings.Contains(r, sha256hex(content)) {
					gets = append(gets, r)
				}
			}
			ranged := slices.ContainsFunc(gets, func(s string) bool { return strings.Contains(s, "bytes=") })
			if ranged != tt.wantRange || len(gets) != tt.wantGets {
				t.Errorf("downloads of %s: %q; want %d, a Range request: %v", file, gets, tt.wantGets, tt.wantRange)
			}
		})
	}
}
