// Package onnxpb reads and writes the small part of the ONNX protobuf format
// siglipd needs, without generated code or a protobuf runtime:
//
//   - Graph / Model build and serialize a model (infer/convert's graphs and
//     the test models), with ONNX Runtime's contrib-operator domain and, for
//     models over protobuf's 2 GB limit, external data (external.go);
//   - ReadInitializers finds named initializers (logit_scale, logit_bias) in a
//     model file by streaming through it, so an 800 MB model.onnx is never
//     loaded into memory;
//   - ReadGraph reads a model's structure the same way (nodes, the names and
//     places of initializers, inputs, outputs), and GraphFile.Extract writes
//     the part of it that computes some outputs — how siglipd splits a
//     combined SigLIP graph into its towers — copying what it keeps byte for
//     byte.
//
// External data (weights in a file beside the model, as in exports over
// 2 GB) is found relative to the path the model was opened by, and only
// inside its folder: a location with ".." or an absolute path is an error.
//
// Field numbers are those of onnx/onnx.proto (IR version 8).
package onnxpb

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Element types (TensorProto.DataType).
const (
	Float   = 1
	Uint8   = 2
	Int8    = 3
	Int32   = 6
	Int64   = 7
	Float16 = 10
	Double  = 11
)

// Tensor is an initializer: a named constant with its raw little-endian bytes.
type Tensor struct {
	Name     string
	DataType int
	Dims     []int64
	Raw      []byte
	// Load, when Raw is nil, produces the bytes at write time, so a
	// multi-gigabyte model is never held in memory whole (external.go).
	Load func() ([]byte, error)
	// External, when set, says the bytes live in an external data file
	// (written by WriteExternal) and Raw is not serialized.
	External *External
}

// FloatTensor makes a float32 tensor.
func FloatTensor(name string, dims []int64, data []float32) Tensor {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, DataType: Float, Dims: dims, Raw: raw}
}

// Int64Tensor makes an int64 tensor.
func Int64Tensor(name string, dims []int64, data []int64) Tensor {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return Tensor{Name: name, DataType: Int64, Dims: dims, Raw: raw}
}

// Attr is a node attribute: one of Int, Float, Ints, Floats, String or Tensor.
type Attr struct {
	Name   string
	Int    *int64
	Float  *float32
	Ints   []int64
	Floats []float32
	String *string
	Tensor *Tensor
}

// AttrInt, AttrFloat, AttrInts, AttrString and AttrTensor build attributes.
func AttrInt(name string, v int64) Attr         { return Attr{Name: name, Int: &v} }
func AttrFloat(name string, v float32) Attr     { return Attr{Name: name, Float: &v} }
func AttrInts(name string, v ...int64) Attr     { return Attr{Name: name, Ints: v} }
func AttrString(name string, v string) Attr     { return Attr{Name: name, String: &v} }
func AttrTensor(name string, t Tensor) Attr     { return Attr{Name: name, Tensor: &t} }
func AttrFloats(name string, v ...float32) Attr { return Attr{Name: name, Floats: v} }

// Node is one operator. Domain is "" for standard ONNX operators and
// "com.microsoft" for ONNX Runtime's contrib operators.
type Node struct {
	Op      string
	Domain  string
	Name    string
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Dim is a tensor dimension: a fixed size, or a symbolic name ("batch").
type Dim struct {
	Value int64
	Param string
}

// ValueInfo is a graph input or output.
type ValueInfo struct {
	Name     string
	ElemType int
	Shape    []Dim
}

// Graph is an ONNX graph.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// Model is an ONNX model with one graph. Opset is the default domain's
// version; Imports adds other domains a node names (com.microsoft).
type Model struct {
	Opset    int64
	Imports  []OpsetID
	Producer string
	Graph    Graph
}

// OpsetID is an operator set other than the default one.
type OpsetID struct {
	Domain  string
	Version int64
}

// IRVersion 8 goes with opset 17, the opset the generator uses (it has
// LayerNormalization); ONNX Runtime 1.16+ and transformers.js both load it.
const IRVersion = 8

// WriteTo serializes the model. The graph (nearly all of the bytes) is
// written straight from its buffer, not copied into another one.
func (m *Model) WriteTo(w io.Writer) (int64, error) {
	var head []byte
	head = protowire.AppendTag(head, 1, protowire.VarintType)
	head = protowire.AppendVarint(head, IRVersion)
	head = appendString(head, 2, m.Producer)
	var opset []byte
	opset = appendString(opset, 1, "")
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, uint64(m.Opset))
	head = appendMessage(head, 8, opset)
	for _, imp := range m.Imports {
		var o []byte
		o = appendString(o, 1, imp.Domain)
		o = protowire.AppendTag(o, 2, protowire.VarintType)
		o = protowire.AppendVarint(o, uint64(imp.Version))
		head = appendMessage(head, 8, o)
	}
	graph, err := m.Graph.marshal()
	if err != nil {
		return 0, err
	}
	head = protowire.AppendTag(head, 7, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(graph)))
	var total int64
	for _, b := range [][]byte{head, graph} {
		n, err := w.Write(b)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, field protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func (g *Graph) marshal() ([]byte, error) {
	// Weights are nearly all of a graph's bytes: size the buffer for them up
	// front instead of letting append copy hundreds of megabytes as it grows.
	size := 1 << 16
	for i := range g.Initializers {
		size += int(g.Initializers[i].inlineSize()) + 64 + len(g.Initializers[i].Name)
	}
	b := make([]byte, 0, size)
	for i := range g.Nodes {
		b = appendMessage(b, 1, g.Nodes[i].marshal())
	}
	b = appendString(b, 2, g.Name)
	for i := range g.Initializers {
		var err error
		if b, err = g.Initializers[i].appendTo(b); err != nil {
			return nil, err
		}
	}
	for _, in := range g.Inputs {
		b = appendMessage(b, 11, in.marshal())
	}
	for _, out := range g.Outputs {
		b = appendMessage(b, 12, out.marshal())
	}
	return b, nil
}

func (n *Node) marshal() []byte {
	var b []byte
	for _, in := range n.Inputs {
		b = appendString(b, 1, in)
	}
	for _, out := range n.Outputs {
		b = appendString(b, 2, out)
	}
	if n.Name != "" {
		b = appendString(b, 3, n.Name)
	}
	b = appendString(b, 4, n.Op)
	for _, a := range n.Attrs {
		b = appendMessage(b, 5, a.marshal())
	}
	if n.Domain != "" {
		b = appendString(b, 7, n.Domain)
	}
	return b
}

// Attribute types (AttributeProto.AttributeType).
const (
	attrFloat  = 1
	attrInt    = 2
	attrString = 3
	attrTensor = 4
	attrFloats = 6
	attrInts   = 7
)

func (a *Attr) marshal() []byte {
	var b []byte
	b = appendString(b, 1, a.Name)
	var typ uint64
	switch {
	case a.Float != nil:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(*a.Float))
		typ = attrFloat
	case a.Int != nil:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(*a.Int))
		typ = attrInt
	case a.String != nil:
		b = appendString(b, 4, *a.String)
		typ = attrString
	case a.Tensor != nil:
		b = appendMessage(b, 5, a.Tensor.marshal())
		typ = attrTensor
	case a.Floats != nil:
		var packed []byte
		for _, f := range a.Floats {
			packed = protowire.AppendFixed32(packed, math.Float32bits(f))
		}
		b = appendMessage(b, 7, packed)
		typ = attrFloats
	case a.Ints != nil:
		var packed []byte
		for _, v := range a.Ints {
			packed = protowire.AppendVarint(packed, uint64(v))
		}
		b = appendMessage(b, 8, packed)
		typ = attrInts
	default:
		panic(fmt.Sprintf("onnxpb: attribute %q has no value", a.Name))
	}
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	return protowire.AppendVarint(b, typ)
}

// appendTo appends the tensor as GraphProto.initializer (field 5) without
// building it in a separate buffer first.
func (t *Tensor) appendTo(b []byte) ([]byte, error) {
	body := t.header()
	if t.External != nil {
		body = t.External.appendTo(body)
		return appendMessage(b, 5, body), nil
	}
	raw, err := t.bytes()
	if err != nil {
		return nil, err
	}
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(body)+protowire.SizeTag(9)+protowire.SizeBytes(len(raw))))
	b = append(b, body...)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	return protowire.AppendBytes(b, raw), nil
}

func (t *Tensor) marshal() []byte {
	b := t.header()
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	return protowire.AppendBytes(b, t.Raw)
}

// header is a TensorProto's fields before raw_data.
func (t *Tensor) header() []byte {
	var b []byte
	if len(t.Dims) > 0 {
		var packed []byte
		for _, d := range t.Dims {
			packed = protowire.AppendVarint(packed, uint64(d))
		}
		b = appendMessage(b, 1, packed)
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(t.DataType))
	return appendString(b, 8, t.Name)
}

func (v *ValueInfo) marshal() []byte {
	var shape []byte
	for _, d := range v.Shape {
		var dim []byte
		if d.Param != "" {
			dim = appendString(dim, 2, d.Param)
		} else {
			dim = protowire.AppendTag(dim, 1, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d.Value))
		}
		shape = appendMessage(shape, 1, dim)
	}
	var tensorType []byte
	tensorType = protowire.AppendTag(tensorType, 1, protowire.VarintType)
	tensorType = protowire.AppendVarint(tensorType, uint64(v.ElemType))
	tensorType = appendMessage(tensorType, 2, shape)
	var typ []byte
	typ = appendMessage(typ, 1, tensorType)
	var b []byte
	b = appendString(b, 1, v.Name)
	return appendMessage(b, 2, typ)
}
