package onnxpb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadInitializersExternal: external data is read relative to the
// path the model was opened by — in a Hugging Face cache snapshot, where
// the model and its data are both symlinks into blobs/, that is the
// snapshot's folder, not the blob's — at its offset (0 when absent), and a
// location outside the folder, a missing file or a range past its end is
// an error that says which.
func TestReadInitializersExternal(t *testing.T) {
	data := append(make([]byte, 8), f32(-7.5)...)
	model := func(entries map[string]string) []byte {
		return appendMessage(nil, 7, appendMessage(nil, 5, tensorBytes("logit_bias", Float, 0, nil, entries)))
	}
	plain := func(t *testing.T, m []byte) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "model.onnx_data"), data, 0o644)
		p := filepath.Join(dir, "model.onnx")
		os.WriteFile(p, m, 0o644)
		return p
	}
	// snapshot lays the files out as huggingface_hub's cache does.
	snapshot := func(t *testing.T, m []byte) string {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "blobs"), 0o755)
		snap := filepath.Join(root, "snapshots", "0123abcd", "onnx")
		os.MkdirAll(snap, 0o755)
		for name, b := range map[string][]byte{"model.onnx": m, "model.onnx_data": data} {
			blob := "blob-of-" + name
			os.WriteFile(filepath.Join(root, "blobs", blob), b, 0o644)
			if err := os.Symlink(filepath.Join("..", "..", "..", "blobs", blob), filepath.Join(snap, name)); err != nil {
				t.Fatal(err)
			}
		}
		return filepath.Join(snap, "model.onnx")
	}
	for _, tt := range []struct {
		name    string
		layout  func(*testing.T, []byte) string
		entries map[string]string
		want    string // an error, or "" for -7.5
	}{
		{"beside the model", plain, map[string]string{"location": "model.onnx_data", "offset": "8", "length": "4"}, ""},
		{"hub cache snapshot", snapshot, map[string]string{"location": "model.onnx_data", "offset": "8", "length": "4"}, ""},
		{"no offset", plain, map[string]string{"location": "model.onnx_data", "length": "4"}, "value 0"},
		{"past the end", snapshot, map[string]string{"location": "model.onnx_data", "offset": "10", "length": "4"},
			"holds 12 bytes, but bytes 10 to 14 are wanted"},
		{"a huge length", plain, map[string]string{"location": "model.onnx_data", "length": "999999999999"}, "holds 12 bytes"},
		{"outside the folder", plain, map[string]string{"location": "../model.onnx_data", "length": "4"}, "not a file inside the model's folder"},
		{"missing file", plain, map[string]string{"location": "model.onnx_data_1", "length": "4"}, "download complete"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadInitializers(tt.layout(t, model(tt.entries)), "logit_bias")
			switch {
			case tt.want == "value 0":
				if err != nil || len(got["logit_bias"]) != 1 || got["logit_bias"][0] != 0 {
					t.Errorf("got %v, %v; want the 4 zero bytes at offset 0", got, err)
				}
			case tt.want == "":
				if err != nil || len(got["logit_bias"]) != 1 || got["logit_bias"][0] != -7.5 {
					t.Errorf("got %v, %v; want -7.5", got, err)
				}
			case err == nil || !strings.Contains(err.Error(), tt.want):
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
