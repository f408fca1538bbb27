package oip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// rawMessage is an encoded protobuf message. rawCodec hands it to gRPC as
// it is, so the encoding below is the only one.
type rawMessage []byte

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(rawMessage)
	if !ok {
		return nil, fmt.Errorf("oip: cannot marshal %T", v)
	}
	return m, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*rawMessage)
	if !ok {
		return fmt.Errorf("oip: cannot unmarshal into %T", v)
	}
	*m = append((*m)[:0], data...)
	return nil
}

// Field numbers of grpc_predict_v2.proto (package inference).
const (
	// ServerReadyResponse, ModelReadyResponse
	fReady = 1
	// ModelReadyRequest, ModelMetadataRequest
	fReqName, fReqVersion = 1, 2
	// ModelMetadataResponse
	fMetaName, fMetaVersions, fMetaPlatform, fMetaInputs, fMetaOutputs = 1, 2, 3, 4, 5
	// ModelMetadataResponse.TensorMetadata, InferInputTensor, InferOutputTensor
	fTensorName, fTensorDatatype, fTensorShape, fTensorContents = 1, 2, 3, 5
	// ModelInferRequest
	fInferModel, fInferVersion, fInferID, fInferInputs, fInferOutputs, fInferRawInputs = 1, 2, 3, 5, 6, 7
	// InferRequestedOutputTensor
	fOutputName = 1
	// ModelInferResponse
	fRespOutputs, fRespRawOutputs = 5, 6
	// InferTensorContents
	fContentsInt, fContentsInt64, fContentsFP32 = 2, 3, 6
)

func encodeNameVersion(name, version string) []byte {
	var b []byte
	b = appendString(b, fReqName, name)
	b = appendString(b, fReqVersion, version)
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendShape(b []byte, shape []int64) []byte {
	var packed []byte
	for _, d := range shape {
		packed = protowire.AppendVarint(packed, uint64(d))
	}
	return appendBytes(b, fTensorShape, packed)
}

func encodeInferRequest(model, version string, inputs []Tensor, outputs []string) []byte {
	size := 64
	for _, in := range inputs {
		size += len(in.Raw) + 64
	}
	b := make([]byte, 0, size)
	b = appendString(b, fInferModel, model)
	b = appendString(b, fInferVersion, version)
	for _, in := range inputs {
		var t []byte
		t = appendString(t, fTensorName, in.Name)
		t = appendString(t, fTensorDatatype, in.Datatype)
		t = appendShape(t, in.Shape)
		b = appendBytes(b, fInferInputs, t)
	}
	for _, name := range outputs {
		b = appendBytes(b, fInferOutputs, appendString(nil, fOutputName, name))
	}
	for _, in := range inputs {
		b = appendBytes(b, fInferRawInputs, in.Raw)
	}
	return b
}

// field is one field of a message, its value unparsed.
type field struct {
	num  protowire.Number
	typ  protowire.Type
	v    uint64 // varint and fixed values
	data []byte // length-delimited values
}

// fields splits a message into its fields.
func fields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.data, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		out = append(out, f)
	}
	return out, nil
}

func decodeReady(b []byte) (bool, error) {
	fs, err := fields(b)
	if err != nil {
		return false, err
	}
	for _, f := range fs {
		if f.num == fReady && f.typ == protowire.VarintType {
			return f.v != 0, nil
		}
	}
	return false, nil
}

func decodeMetadata(b []byte) (Metadata, error) {
	var m Metadata
	fs, err := fields(b)
	if err != nil {
		return m, err
	}
	for _, f := range fs {
		switch {
		case f.num == fMetaName && f.typ == protowire.BytesType:
			m.Name = string(f.data)
		case f.num == fMetaVersions && f.typ == protowire.BytesType:
			m.Versions = append(m.Versions, string(f.data))
		case f.num == fMetaPlatform && f.typ == protowire.BytesType:
			m.Platform = string(f.data)
		case (f.num == fMetaInputs || f.num == fMetaOutputs) && f.typ == protowire.BytesType:
			t, err := decodeTensorHeader(f.data)
			if err != nil {
				return m, err
			}
			tm := TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
			if f.num == fMetaInputs {
				m.Inputs = append(m.Inputs, tm)
			} else {
				m.Outputs = append(m.Outputs, tm)
			}
		}
	}
	return m, nil
}

// decodeTensorHeader reads name, datatype and shape of a tensor message,
// and its typed contents into Raw (little-endian) for the types siglipd
// may be answered with when a server does not use raw contents.
func decodeTensorHeader(b []byte) (Tensor, error) {
	var t Tensor
	fs, err := fields(b)
	if err != nil {
		return t, err
	}
	for _, f := range fs {
		switch {
		case f.num == fTensorName && f.typ == protowire.BytesType:
			t.Name = string(f.data)
		case f.num == fTensorDatatype && f.typ == protowire.BytesType:
			t.Datatype = string(f.data)
		case f.num == fTensorShape && f.typ == protowire.BytesType: // packed
			for p := f.data; len(p) > 0; {
				v, n := protowire.ConsumeVarint(p)
				if n < 0 {
					return t, protowire.ParseError(n)
				}
				t.Shape, p = append(t.Shape, int64(v)), p[n:]
			}
		case f.num == fTensorShape && f.typ == protowire.VarintType: // unpacked
			t.Shape = append(t.Shape, int64(f.v))
		case f.num == fTensorContents && f.typ == protowire.BytesType:
			if t.Raw, err = decodeContents(f.data); err != nil {
				return t, err
			}
		}
	}
	return t, nil
}

// decodeContents turns InferTensorContents' fp32, int32 or int64 values
// into little-endian bytes.
func decodeContents(b []byte) ([]byte, error) {
	fs, err := fields(b)
	if err != nil {
		return nil, err
	}
	var raw []byte
	for _, f := range fs {
		switch {
		case f.num == fContentsFP32 && f.typ == protowire.BytesType: // packed floats
			raw = append(raw, f.data...)
		case f.num == fContentsFP32 && f.typ == protowire.Fixed32Type:
			raw = binary.LittleEndian.AppendUint32(raw, uint32(f.v))
		case (f.num == fContentsInt || f.num == fContentsInt64) && f.typ == protowire.BytesType:
			for p := f.data; len(p) > 0; {
				v, n := protowire.ConsumeVarint(p)
				if n < 0 {
					return nil, protowire.ParseError(n)
				}
				raw, p = appendInt(raw, f.num, v), p[n:]
			}
		case (f.num == fContentsInt || f.num == fContentsInt64) && f.typ == protowire.VarintType:
			raw = appendInt(raw, f.num, f.v)
		}
	}
	return raw, nil
}

func appendInt(raw []byte, num protowire.Number, v uint64) []byte {
	if num == fContentsInt {
		return binary.LittleEndian.AppendUint32(raw, uint32(v))
	}
	return binary.LittleEndian.AppendUint64(raw, v)
}

func decodeInferResponse(b []byte) ([]Tensor, error) {
	fs, err := fields(b)
	if err != nil {
		return nil, err
	}
	var outs []Tensor
	var raws [][]byte
	for _, f := range fs {
		switch {
		case f.num == fRespOutputs && f.typ == protowire.BytesType:
			t, err := decodeTensorHeader(f.data)
			if err != nil {
				return nil, err
			}
			outs = append(outs, t)
		case f.num == fRespRawOutputs && f.typ == protowire.BytesType:
			raws = append(raws, f.data)
		}
	}
	if len(raws) > 0 {
		// Raw contents replace typed ones, in the order of the outputs.
		if len(raws) != len(outs) {
			return nil, fmt.Errorf("%d outputs but %d raw output contents", len(outs), len(raws))
		}
		for i := range outs {
			outs[i].Raw = raws[i]
		}
	}
	for _, t := range outs {
		n := int64(1)
		for _, d := range t.Shape {
			if d < 0 || (d > 0 && n > math.MaxInt64/8/d) {
				return nil, fmt.Errorf("output %s has shape %v", t.Name, t.Shape)
			}
			n *= d
		}
		if es := ElementSize(t.Datatype); es > 0 && int64(len(t.Raw)) != n*int64(es) {
			return nil, fmt.Errorf("output %s (%s %v) has %d bytes, want %d", t.Name, t.Datatype, t.Shape, len(t.Raw), n*int64(es))
		}
	}
	return outs, nil
}

// Float32s reads FP32 raw contents.
func Float32s(raw []byte) ([]float32, error) {
	if len(raw)%4 != 0 {
		return nil, errors.New("FP32 contents are not a multiple of 4 bytes")
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out, nil
}
