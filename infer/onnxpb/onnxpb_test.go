package onnxpb

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// tensorBytes builds a TensorProto the way various exporters write one.
func tensorBytes(name string, dataType int, field protowire.Number, payload []byte, external map[string]string) []byte {
	var b []byte
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(dataType))
	if payload != nil && field == 4 { // float_data written before the name, as protobuf field order has it
		b = appendMessage(b, 4, payload)
	}
	b = appendString(b, 8, name)
	if payload != nil && field != 4 {
		b = appendMessage(b, field, payload)
	}
	for k, v := range external {
		var e []byte
		e = appendString(e, 1, k)
		e = appendString(e, 2, v)
		b = appendMessage(b, 13, e)
	}
	if external != nil {
		b = protowire.AppendTag(b, 14, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b
}

func f32(vals ...float32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func TestReadInitializers(t *testing.T) {
	dir := t.TempDir()
	// External data file: 16 bytes of padding, then one float32.
	ext := append(make([]byte, 16), f32(-7.5)...)
	if err := os.WriteFile(filepath.Join(dir, "model.onnx_data"), ext, 0o644); err != nil {
		t.Fatal(err)
	}
	half := make([]byte, 2)
	binary.LittleEndian.PutUint16(half, FloatToHalf(4.75))
	f64 := make([]byte, 8)
	binary.LittleEndian.PutUint64(f64, math.Float64bits(-12.25))
	big := make([]float32, 1<<20) // 4 MiB the reader must skip, not read

	var graph []byte
	for _, node := range []Node{{Op: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}} {
		graph = appendMessage(graph, 1, node.marshal())
	}
	bigT := FloatTensor("big", []int64{1 << 20}, big)
	for _, tensor := range [][]byte{
		bigT.marshal(),
		tensorBytes("raw", Float, 9, f32(2.5), nil),
		tensorBytes("floats", Float, 4, func() []byte { // packed fixed32
			return f32(1, 2, 3)
		}(), nil),
		tensorBytes("half", Float16, 9, half, nil),
		tensorBytes("double", Double, 10, f64, nil),
		tensorBytes("external", Float, 0, nil, map[string]string{"location": "model.onnx_data", "offset": "16", "length": "4"}),
	} {
		graph = appendMessage(graph, 5, tensor)
	}
	var model []byte
	model = protowire.AppendTag(model, 1, protowire.VarintType)
	model = protowire.AppendVarint(model, IRVersion)
	model = appendMessage(model, 7, graph)
	path := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(path, model, 0o644); err != nil {
		t.Fatal(err)
	}

	got, err := ReadInitializers(path, "raw", "floats", "half", "double", "external", "absent")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float64{"raw": {2.5}, "floats": {1, 2, 3}, "half": {4.75}, "double": {-12.25}, "external": {-7.5}}
	for name, w := range want {
		g := got[name]
		if len(g) != len(w) {
			t.Errorf("%s = %v, want %v", name, g, w)
			continue
		}
		for i := range w {
			if g[i] != w[i] {
				t.Errorf("%s = %v, want %v", name, g, w)
			}
		}
	}
	if _, ok := got["absent"]; ok {
		t.Error("absent initializer reported")
	}

	// A truncated file is an error, not a silent "not found".
	if err := os.WriteFile(path, model[:len(model)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInitializers(path, "raw"); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated file: err = %v, want a truncation error", err)
	}
	if _, err := ReadInitializers(filepath.Join(dir, "missing.onnx"), "raw"); err == nil {
		t.Error("missing file: no error")
	}
}

// TestWriteReadRoundTrip: what Model.WriteTo writes, ReadInitializers reads.
func TestWriteReadRoundTrip(t *testing.T) {
	m := &Model{Opset: 17, Graph: Graph{Name: "g", Initializers: []Tensor{
		FloatTensor("logit_scale", []int64{1}, []float32{4.7654}),
		FloatTensor("logit_bias", []int64{1}, []float32{-12.93}),
	}}}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.onnx")
	os.WriteFile(path, buf.Bytes(), 0o644)
	got, err := ReadInitializers(path, "logit_scale", "logit_bias")
	if err != nil {
		t.Fatal(err)
	}
	if float32(got["logit_scale"][0]) != 4.7654 || float32(got["logit_bias"][0]) != -12.93 {
		t.Errorf("got %v", got)
	}
}

func TestHalf(t *testing.T) {
	for _, f := range []float32{0, 1, -2.5, 65504, 6.1035156e-05, 5.9604645e-08, 0.333251953125} {
		if got := HalfToFloat(FloatToHalf(f)); got != f {
			t.Errorf("round trip of %v gave %v", f, got)
		}
	}
	if got := HalfToFloat(FloatToHalf(1e6)); !math.IsInf(float64(got), 1) {
		t.Errorf("1e6 → %v, want +Inf", got)
	}
	// 1 + 2⁻¹¹ lies halfway between two halves: round to even (1.0).
	if got := HalfToFloat(FloatToHalf(1 + 1.0/2048)); got != 1 {
		t.Errorf("tie rounded to %v, want 1", got)
	}
}

// TestParameterCount counts initializer values from the tensors' headers:
// dims written packed (as this package and most exporters do) or one by
// one, data inline or external (never read: the external file is absent).
func TestParameterCount(t *testing.T) {
	unpacked := func(name string, dims ...int64) []byte {
		var b []byte
		for _, d := range dims {
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(d))
		}
		return append(b, tensorBytes(name, 1, 9, f32(make([]float32, 6)...), nil)...)
	}
	external := func(name string, dims ...int64) []byte {
		var packed []byte
		for _, d := range dims {
			packed = protowire.AppendVarint(packed, uint64(d))
		}
		b := appendMessage(nil, 1, packed)
		return append(b, tensorBytes(name, 1, 0, nil, map[string]string{"location": "absent.onnx_data", "offset": "0", "length": "4000"})...)
	}
	graph := func(tensors ...[]byte) []byte {
		var g []byte
		for _, tb := range tensors {
			g = appendMessage(g, 5, tb)
		}
		return appendMessage(nil, 7, g)
	}
	written := func() []byte {
		m := &Model{Opset: 17, Graph: Graph{Name: "g", Initializers: []Tensor{
			FloatTensor("w", []int64{3, 4}, make([]float32, 12)),
			FloatTensor("scalar", nil, []float32{1}),
			Int64Tensor("shape", []int64{2}, []int64{0, 0}),
		}}}
		var buf bytes.Buffer
		if _, err := m.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	tests := []struct {
		name string
		file []byte
		want int64
	}{
		{"written by this package", written(), 12 + 1 + 2},
		{"dims one by one", graph(unpacked("a", 2, 3), unpacked("b", 6)), 12},
		{"external data", graph(external("big", 1000, 1000, 4), unpacked("b", 6)), 4_000_006},
		{"no initializers", graph(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.onnx")
			if err := os.WriteFile(path, tt.file, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ParameterCount(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParameterCount = %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "m.onnx")
		b := written()
		os.WriteFile(path, b[:len(b)-3], 0o644)
		if _, err := ParameterCount(path); err == nil || !strings.Contains(err.Error(), "not a valid ONNX file") {
			t.Errorf("truncated file: err = %v", err)
		}
	})
}

// TestWriteFileExternal: a model over the threshold keeps its big
// initializers in <file>_data, page-aligned, and a reader (ours here, ONNX
// Runtime in infer/convert's tests) finds them through the location
// entries; small ones stay inline; Load runs at write time.
func TestWriteFileExternal(t *testing.T) {
	big := make([]float32, 3000)
	for i := range big {
		big[i] = float32(i) / 7
	}
	loads := 0
	m := &Model{Opset: 17, Imports: []OpsetID{{Domain: "com.microsoft", Version: 1}}, Graph: Graph{
		Name:  "g",
		Nodes: []Node{{Op: "FastGelu", Domain: "com.microsoft", Inputs: []string{"x", "big"}, Outputs: []string{"y"}}},
		Initializers: []Tensor{
			{Name: "big", DataType: Float, Dims: []int64{3000}, Load: func() ([]byte, error) { loads++; return f32(big...), nil }},
			FloatTensor("logit_scale", []int64{1}, []float32{4.5}),
			{Name: "big2", DataType: Float, Dims: []int64{3000}, Load: func() ([]byte, error) { loads++; return f32(big...), nil }},
		},
	}}
	for _, tc := range []struct {
		name     string
		over     int64
		external bool
	}{{"inline", -1, false}, {"external", 1000, true}} {
		t.Run(tc.name, func(t *testing.T) {
			loads = 0
			for i := range m.Graph.Initializers {
				m.Graph.Initializers[i].External = nil
			}
			path := filepath.Join(t.TempDir(), "m.onnx")
			written, err := m.WriteFile(path, tc.over)
			if err != nil {
				t.Fatal(err)
			}
			if loads != 2 {
				t.Errorf("Load ran %d times, want once per lazy tensor", loads)
			}
			data, statErr := os.Stat(path + "_data")
			if tc.external != (statErr == nil) || len(written) != map[bool]int{false: 1, true: 2}[tc.external] {
				t.Fatalf("external data file: %v, written %v", statErr, written)
			}
			if tc.external && data.Size() != 3*4096+12000 {
				t.Errorf("data file is %d bytes, want two 12000-byte tensors, the second at the next page, 12288", data.Size())
			}
			vals, err := ReadInitializers(path, "big", "big2", "logit_scale")
			if err != nil {
				t.Fatal(err)
			}
			if len(vals["big2"]) != 3000 || vals["big2"][2999] != float64(big[2999]) || vals["logit_scale"][0] != 4.5 {
				t.Errorf("read back: big2 %d values, logit_scale %v", len(vals["big2"]), vals["logit_scale"])
			}
			raw, _ := os.ReadFile(path)
			if !bytes.Contains(raw, []byte("com.microsoft")) {
				t.Error("the contrib domain is not in the file")
			}
		})
	}
}
