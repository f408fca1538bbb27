package oip

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// msg builds a message from (field number, value) pairs: string and
// []byte values are length-delimited, bool and int64 varints, []int64
// packed varints, []float32 packed fixed32, msgs nested messages.
type kv struct {
	num protowire.Number
	v   any
}

func msg(fields ...kv) []byte {
	var b []byte
	for _, f := range fields {
		switch v := f.v.(type) {
		case string:
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendString(b, v)
		case []byte:
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendBytes(b, v)
		case bool:
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, protowire.EncodeBool(v))
		case int64:
			b = protowire.AppendTag(b, f.num, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		case []int64:
			var p []byte
			for _, x := range v {
				p = protowire.AppendVarint(p, uint64(x))
			}
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendBytes(b, p)
		case []float32:
			var p []byte
			for _, x := range v {
				p = protowire.AppendFixed32(p, math.Float32bits(x))
			}
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			b = protowire.AppendBytes(b, p)
		case float32: // unpacked
			b = protowire.AppendTag(b, f.num, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(v))
		}
	}
	return b
}

func f32bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// TestInferRequestEncoding: the request carries grpc_predict_v2.proto's
// field numbers — model_name 1, model_version 2, inputs 5 (name 1,
// datatype 2, shape 3), outputs 6 (name 1), raw_input_contents 7 — which
// a decoder that knows nothing of this package reads back.
func TestInferRequestEncoding(t *testing.T) {
	raw := f32bytes(1, 2, 3, 4, 5, 6)
	got := encodeInferRequest("siglip_vision", "2",
		[]Tensor{{Name: "pixel_values", Datatype: "FP32", Shape: []int64{1, 3, 2, 1}, Raw: raw}}, []string{"pooler_output"})
	want := msg(
		kv{1, "siglip_vision"}, kv{2, "2"},
		kv{5, msg(kv{1, "pixel_values"}, kv{2, "FP32"}, kv{3, []int64{1, 3, 2, 1}})},
		kv{6, msg(kv{1, "pooler_output"})},
		kv{7, raw},
	)
	if !bytes.Equal(got, want) {
		t.Errorf("request\n got %x\nwant %x", got, want)
	}
	if got := encodeNameVersion("siglip_text", ""); !bytes.Equal(got, msg(kv{1, "siglip_text"})) {
		t.Errorf("name/version request %x", got)
	}
}

func TestInferResponseDecoding(t *testing.T) {
	out := func(contents ...kv) []byte {
		return msg(append([]kv{{1, "pooler_output"}, {2, "FP32"}, {3, []int64{2, 2}}}, contents...)...)
	}
	tests := []struct {
		name    string
		resp    []byte
		want    []float32
		wantErr string
	}{
		{"raw contents (MLServer and KServe when asked raw, Triton always)",
			msg(kv{1, "m"}, kv{5, out()}, kv{6, f32bytes(1, 2, 3, 4)}), []float32{1, 2, 3, 4}, ""},
		{"typed fp32 contents, packed",
			msg(kv{5, out(kv{5, msg(kv{6, []float32{1, 2, 3, 4}})})}), []float32{1, 2, 3, 4}, ""},
		{"typed fp32 contents, unpacked",
			msg(kv{5, out(kv{5, msg(kv{6, float32(1)}, kv{6, float32(2)}, kv{6, float32(3)}, kv{6, float32(4)})})}), []float32{1, 2, 3, 4}, ""},
		{"an unknown field is skipped",
			msg(kv{99, "future"}, kv{5, out()}, kv{6, f32bytes(1, 2, 3, 4)}), []float32{1, 2, 3, 4}, ""},
		{"too few bytes for the shape",
			msg(kv{5, out()}, kv{6, f32bytes(1, 2, 3)}), nil, "has 12 bytes, want 16"},
		{"raw contents for fewer outputs",
			msg(kv{5, out()}, kv{5, out()}, kv{6, f32bytes(1, 2, 3, 4)}), nil, "2 outputs but 1 raw output contents"},
		{"truncated message", msg(kv{5, out()})[:5], nil, "unexpected EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outs, err := decodeInferResponse(tc.resp)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) != 1 || outs[0].Name != "pooler_output" || outs[0].Datatype != "FP32" || !reflect.DeepEqual(outs[0].Shape, []int64{2, 2}) {
				t.Fatalf("outputs %+v", outs)
			}
			got, err := Float32s(outs[0].Raw)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("values %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

func TestMetadataDecoding(t *testing.T) {
	tensor := func(name, dt string, shape []int64) []byte {
		return msg(kv{1, name}, kv{2, dt}, kv{3, shape})
	}
	b := msg(kv{1, "siglip_vision"}, kv{2, "1"}, kv{2, "2"}, kv{3, "onnxruntime_onnx"},
		kv{4, tensor("pixel_values", "FP16", []int64{-1, 3, 224, 224})},
		kv{5, tensor("last_hidden_state", "FP16", []int64{-1, 196, 768})},
		kv{5, tensor("pooler_output", "FP16", []int64{-1, 768})})
	got, err := decodeMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Metadata{Name: "siglip_vision", Versions: []string{"1", "2"}, Platform: "onnxruntime_onnx",
		Inputs:  []TensorMetadata{{"pixel_values", "FP16", []int64{-1, 3, 224, 224}}},
		Outputs: []TensorMetadata{{"last_hidden_state", "FP16", []int64{-1, 196, 768}}, {"pooler_output", "FP16", []int64{-1, 768}}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("metadata\n got %+v\nwant %+v", got, want)
	}
	for _, tc := range []struct {
		b    []byte
		want bool
	}{{msg(kv{1, true}), true}, {msg(kv{1, false}), false}, {nil, false}} {
		if got, err := decodeReady(tc.b); err != nil || got != tc.want {
			t.Errorf("ready %x: %v %v, want %v", tc.b, got, err, tc.want)
		}
	}
}

// FuzzDecodeInferResponse: no input makes the decoder panic, and what it
// accepts has as many bytes as its shape and datatype say.
func FuzzDecodeInferResponse(f *testing.F) {
	f.Add(msg(kv{5, msg(kv{1, "o"}, kv{2, "FP32"}, kv{3, []int64{1, 1}})}, kv{6, f32bytes(1)}))
	f.Add(msg(kv{5, msg(kv{1, "o"}, kv{2, "FP32"}, kv{3, []int64{2}}, kv{5, msg(kv{6, []float32{1, 2}})})}))
	f.Fuzz(func(t *testing.T, b []byte) {
		outs, err := decodeInferResponse(b)
		if err != nil {
			return
		}
		for _, o := range outs {
			if es := ElementSize(o.Datatype); es > 0 {
				n := int64(es)
				for _, d := range o.Shape {
					n *= d
				}
				if n != int64(len(o.Raw)) {
					t.Fatalf("accepted %s %v with %d bytes", o.Datatype, o.Shape, len(o.Raw))
				}
			}
		}
	})
}
