package onnxpb

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// FuzzReadInitializers: any bytes as model.onnx (beside a small external
// data file) give values or an error, never a panic, and never a read of
// more than the files hold: a length field claiming gigabytes must not be
// allocated. Seeds: a real model the writer makes, the test's hand-built
// tensors (raw, float_data, fp16, external data) and truncations.
func FuzzReadInitializers(f *testing.F) {
	m := Model{Opset: 17, Graph: Graph{Name: "g",
		Initializers: []Tensor{FloatTensor("logit_scale", nil, []float32{4.6}), FloatTensor("logit_bias", nil, []float32{-12.5})},
		Outputs:      []ValueInfo{{Name: "logit_scale", ElemType: 1}},
	}}
	var model bytes.Buffer
	if _, err := m.WriteTo(&model); err != nil {
		f.Fatal(err)
	}
	f.Add(model.Bytes())
	f.Add(model.Bytes()[:model.Len()/2])
	graph := func(tensors ...[]byte) []byte {
		var g []byte
		for _, t := range tensors {
			g = appendMessage(g, 5, t)
		}
		return appendMessage(nil, 7, g)
	}
	f.Add(graph(tensorBytes("logit_scale", 1, 9, f32(4.6), nil), tensorBytes("logit_bias", 1, 4, f32(-12.5), nil)))
	f.Add(graph(tensorBytes("logit_scale", 1, 9, nil, map[string]string{"location": "model.onnx_data", "offset": "16", "length": "4"})))
	f.Add(graph(tensorBytes("logit_scale", 10, 9, []byte{0x9a, 0x44}, nil)))
	// A length that claims 1 GiB with nothing behind it.
	f.Add(protowire.AppendVarint(protowire.AppendTag(nil, 7, protowire.BytesType), 1<<30))
	f.Add([]byte{})

	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.onnx_data"), append(make([]byte, 16), f32(-7.5)...), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "model.onnx")
		if err := os.Symlink(filepath.Join(dir, "model.onnx_data"), filepath.Join(filepath.Dir(path), "model.onnx_data")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		vals, err := ReadInitializers(path, "logit_scale", "logit_bias")
		if err != nil {
			return
		}
		for name, v := range vals {
			if name != "logit_scale" && name != "logit_bias" {
				t.Fatalf("returned %q, which was not asked for", name)
			}
			if len(v) > len(data)+20 {
				t.Fatalf("%s: %d values from %d bytes", name, len(v), len(data))
			}
		}
	})
}

// FuzzReadGraph: any bytes as a model file give a graph or an error, never
// a panic, and every graph read extracts each of its outputs or says why
// not. Seeds: the splitter test's two-branch model (an If with subgraphs,
// external data, unknown fields) and its truncations.
func FuzzReadGraph(f *testing.F) {
	model, _ := twoBranchModel()
	f.Add(model)
	for _, n := range []int{len(model) / 3, len(model) / 2, len(model) - 1} {
		f.Add(model[:n])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "model.onnx")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := ReadGraph(path)
		if err != nil {
			return
		}
		for _, loc := range g.ExternalFiles() {
			if !filepath.IsLocal(loc) {
				t.Fatalf("external file %q outside the folder", loc)
			}
		}
		for _, o := range g.Outputs {
			sub, err := g.Extract([]string{o.Name}, map[string]string{"m.data": "x"})
			if err == nil && len(sub.Model) > len(data)+len(o.Name)+64 {
				t.Fatalf("extracted %d bytes from %d", len(sub.Model), len(data))
			}
		}
	})
}
