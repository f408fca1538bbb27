package onnxpb

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// GraphFile is the structure of an ONNX model file — its nodes, the names
// and places of its initializers, its inputs, outputs and value infos —
// read without its weights: ReadGraph streams through the file and seeks
// past tensor data, so a combined graph whose weights are inline costs
// only its nodes in memory. Extract writes the part of it that computes
// some of its outputs.
type GraphFile struct {
	Path    string
	Inputs  []ValueInfo
	Outputs []ValueInfo
	Nodes   []NodeInfo

	model []field        // ModelProto's fields, graph (7) among them
	graph []field        // GraphProto's fields
	inits map[string]int // initializer name → index in graph
	// producer is the node that computes each value.
	producer map[string]int
	values   map[string]ValueInfo // value_info, inputs and outputs by name
}

// NodeInfo is one node of the graph.
type NodeInfo struct {
	Op, Domain, Name string
	Inputs, Outputs  []string
	// Captured are the names the node's subgraphs (If, Loop, Scan) read:
	// a subgraph may use any value of the enclosing graph, so for what a
	// node needs they count as its inputs. Names the subgraph defines
	// itself are among them too, which can only keep more, never less.
	Captured []string
	attrs    map[string]attrValue
	field    int // index in GraphFile.graph
}

type attrValue struct {
	t *tensorRef
	f *float32
	i *int64
}

// field is one protobuf field of a message in the file: [start, end) is
// the whole field, tag included, copied as is when kept.
type field struct {
	num        protowire.Number
	start, end int64
	name       string     // the value's name, for nodes, initializers, value infos, annotations
	tensor     *tensorRef // an initializer's tensor
	raw        []byte     // the payload, for fields read into memory (value infos)
}

// maxSmallMessage bounds a value info or annotation read into memory: they
// are names and shapes; more is not an ONNX file siglipd can use.
const maxSmallMessage = 1 << 20

// ReadGraph reads the structure of the model file at path. Initializers
// stored as external data must name a file inside the model's folder (a
// relative path without ".."): anything else is an error naming the
// initializer, so no caller ever opens or downloads a file outside it.
func ReadGraph(path string) (*GraphFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	r := &reader{f: f, br: bufio.NewReaderSize(f, 64<<10), dir: filepath.Dir(path)}
	g := &GraphFile{Path: path, inits: map[string]int{}, producer: map[string]int{}, values: map[string]ValueInfo{}}
	sawGraph := false
	err = r.walk(st.Size(), func(fl field, typ protowire.Type, payload int64) (bool, error) {
		g.model = append(g.model, fl)
		if fl.num != 7 || typ != protowire.BytesType {
			return false, nil
		}
		if sawGraph {
			return false, errors.New("more than one graph")
		}
		sawGraph = true
		return true, g.readGraph(r, fl.end)
	})
	if err == nil && !sawGraph {
		err = errors.New("no graph")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid ONNX file: %w", path, err)
	}
	return g, nil
}

func (g *GraphFile) readGraph(r *reader, end int64) error {
	return r.walk(end, func(fl field, typ protowire.Type, payload int64) (bool, error) {
		if typ != protowire.BytesType {
			g.graph = append(g.graph, fl)
			return false, nil
		}
		switch fl.num {
		case 1: // node
			n, err := r.node(fl.end)
			if err != nil {
				return true, fmt.Errorf("node %d: %w", len(g.Nodes), err)
			}
			n.field = len(g.graph)
			for _, o := range n.Outputs {
				if o != "" {
					g.producer[o] = len(g.Nodes)
				}
			}
			g.Nodes = append(g.Nodes, n)
		case 5: // initializer
			t, err := r.tensor(fl.end)
			if err != nil {
				return true, fmt.Errorf("initializer %d: %w", len(g.inits), err)
			}
			if t.externalData {
				if loc := t.external["location"]; !filepath.IsLocal(loc) {
					return true, fmt.Errorf("initializer %q: external data location %q is not a file inside the model's folder", t.name, loc)
				}
			}
			fl.name, fl.tensor = t.name, &t
			g.inits[t.name] = len(g.graph)
		case 15: // sparse_initializer: SparseTensorProto, its values (1) carry the name
			err := r.walk(fl.end, func(sub field, typ protowire.Type, _ int64) (bool, error) {
				if sub.num != 1 || typ != protowire.BytesType {
					return false, nil
				}
				t, err := r.tensor(sub.end)
				fl.name = t.name
				return true, err
			})
			if err != nil {
				return true, fmt.Errorf("sparse initializer: %w", err)
			}
			g.inits[fl.name] = len(g.graph)
		case 11, 12, 13, 14: // input, output, value_info, quantization_annotation
			if payload > maxSmallMessage {
				return false, fmt.Errorf("field %d of %d bytes: too big for a value info", fl.num, payload)
			}
			b, err := r.read(payload)
			if err != nil {
				return true, err
			}
			fl.raw = b
			if fl.num == 14 {
				fl.name = firstString(b, 1) // TensorAnnotation.tensor_name
				break
			}
			vi, err := parseValueInfo(b)
			if err != nil {
				return true, err
			}
			fl.name = vi.Name
			switch fl.num {
			case 11:
				g.Inputs = append(g.Inputs, vi)
			case 12:
				g.Outputs = append(g.Outputs, vi)
			}
			if _, ok := g.values[vi.Name]; !ok || fl.num == 12 {
				g.values[vi.Name] = vi
			}
		default:
			g.graph = append(g.graph, fl)
			return false, nil
		}
		g.graph = append(g.graph, fl)
		return true, nil
	})
}

// walk calls fn for each field until end, with the field's span and, for
// a length-delimited field, the payload's length with the reader at its
// start; fn reports whether it consumed the payload (else walk skips it).
// Unlike fields, it reports every wire type, so a message can be copied
// field by field.
func (r *reader) walk(end int64, fn func(fl field, typ protowire.Type, payload int64) (bool, error)) error {
	for r.pos < end {
		start := r.pos
		key, err := r.varint()
		if err != nil {
			return unexpectedEOF(err)
		}
		num, typ := protowire.Number(key>>3), protowire.Type(key&7)
		if num <= 0 {
			return fmt.Errorf("bad field number %d", num)
		}
		var payload int64
		switch typ {
		case protowire.VarintType:
			v, err := r.varint()
			if err != nil {
				return unexpectedEOF(err)
			}
			payload = int64(v)
		case protowire.Fixed32Type, protowire.Fixed64Type:
			n := int64(4)
			if typ == protowire.Fixed64Type {
				n = 8
			}
			b, err := r.read(n)
			if err != nil {
				return unexpectedEOF(err)
			}
			if n == 4 {
				payload = int64(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
			}
		case protowire.BytesType:
			n, err := r.varint()
			if err != nil {
				return unexpectedEOF(err)
			}
			payload = int64(n)
			if payload < 0 || r.pos+payload > end {
				return fmt.Errorf("field %d of %d bytes runs past its message (truncated file?)", num, payload)
			}
		default:
			return fmt.Errorf("unsupported protobuf wire type %d", typ)
		}
		fl := field{num: num, start: start, end: r.pos}
		if typ == protowire.BytesType {
			fl.end = r.pos + payload
		}
		body := r.pos
		consumed, err := fn(fl, typ, payload)
		if err != nil {
			return err
		}
		if typ == protowire.BytesType && (!consumed || r.pos != body+payload) {
			if err := r.seek(body + payload); err != nil {
				return err
			}
		}
	}
	if r.pos != end {
		return fmt.Errorf("message ends at byte %d, expected %d", r.pos, end)
	}
	return nil
}

// node reads a NodeProto, its attributes' tensors by reference only.
func (r *reader) node(end int64) (NodeInfo, error) {
	var n NodeInfo
	err := r.walk(end, func(fl field, typ protowire.Type, payload int64) (bool, error) {
		if typ != protowire.BytesType {
			return false, nil
		}
		var dst *string
		switch fl.num {
		case 1, 2: // input, output
			b, err := r.read(payload)
			if fl.num == 1 {
				n.Inputs = append(n.Inputs, string(b))
			} else {
				n.Outputs = append(n.Outputs, string(b))
			}
			return true, err
		case 3:
			dst = &n.Name
		case 4:
			dst = &n.Op
		case 7:
			dst = &n.Domain
		case 5:
			return true, r.attribute(fl.end, &n)
		default:
			return false, nil
		}
		b, err := r.read(payload)
		*dst = string(b)
		return true, err
	})
	return n, err
}

// attribute reads an AttributeProto: the scalar and tensor values a
// Constant node may hold, and the names its subgraphs read.
func (r *reader) attribute(end int64, n *NodeInfo) error {
	var name string
	var v attrValue
	err := r.walk(end, func(fl field, typ protowire.Type, payload int64) (bool, error) {
		switch {
		case fl.num == 1 && typ == protowire.BytesType:
			b, err := r.read(payload)
			name = string(b)
			return true, err
		case fl.num == 2 && typ == protowire.Fixed32Type:
			f := math.Float32frombits(uint32(payload))
			v.f = &f
		case fl.num == 3 && typ == protowire.VarintType:
			i := payload
			v.i = &i
		case fl.num == 5 && typ == protowire.BytesType:
			t, err := r.tensor(fl.end)
			v.t = &t
			return true, err
		case (fl.num == 6 || fl.num == 11) && typ == protowire.BytesType: // g, graphs
			return true, r.captured(fl.end, n)
		}
		return false, nil
	})
	if err == nil && name != "" && (v.t != nil || v.f != nil || v.i != nil) {
		if n.attrs == nil {
			n.attrs = map[string]attrValue{}
		}
		n.attrs[name] = v
	}
	return err
}

// captured adds every input of every node of a subgraph (and of theirs)
// to n.Captured.
func (r *reader) captured(end int64, n *NodeInfo) error {
	return r.walk(end, func(fl field, typ protowire.Type, _ int64) (bool, error) {
		if fl.num != 1 || typ != protowire.BytesType {
			return false, nil
		}
		inner, err := r.node(fl.end)
		if err != nil {
			return true, err
		}
		for _, in := range append(inner.Inputs, inner.Captured...) {
			if in != "" {
				n.Captured = append(n.Captured, in)
			}
		}
		return true, nil
	})
}

// parseValueInfo reads a ValueInfoProto's name and, for a tensor, its
// element type and shape.
func parseValueInfo(b []byte) (ValueInfo, error) {
	var vi ValueInfo
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case 1:
			vi.Name = string(v)
		case 2: // TypeProto
			return eachField(v, func(num protowire.Number, v []byte) error {
				if num != 1 { // tensor_type
					return nil
				}
				return eachField(v, func(num protowire.Number, v []byte) error {
					if num != 2 { // shape
						return nil
					}
					vi.Shape = []Dim{}
					return eachField(v, func(num protowire.Number, v []byte) error {
						if num != 1 {
							return nil
						}
						var d Dim
						err := eachField(v, func(num protowire.Number, v []byte) error {
							if num == 2 {
								d.Param = string(v)
							}
							return nil
						}, func(num protowire.Number, x uint64) {
							if num == 1 {
								d.Value = int64(x)
							}
						})
						vi.Shape = append(vi.Shape, d)
						return err
					}, nil)
				}, func(num protowire.Number, x uint64) {
					if num == 1 {
						vi.ElemType = int(x)
					}
				})
			}, nil)
		}
		return nil
	}, nil)
	return vi, err
}

// eachField calls bytesFn for each length-delimited field of msg and
// varintFn (when set) for each varint.
func eachField(msg []byte, bytesFn func(protowire.Number, []byte) error, varintFn func(protowire.Number, uint64)) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(msg)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if err := bytesFn(num, v); err != nil {
				return err
			}
			n = m
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(msg)
			if m < 0 {
				return protowire.ParseError(m)
			}
			if varintFn != nil {
				varintFn(num, v)
			}
			n = m
		default:
			n = protowire.ConsumeFieldValue(num, typ, msg)
			if n < 0 {
				return protowire.ParseError(n)
			}
		}
		msg = msg[n:]
	}
	return nil
}

func firstString(msg []byte, num protowire.Number) string {
	var s string
	eachField(msg, func(n protowire.Number, v []byte) error {
		if n == num && s == "" {
			s = string(v)
		}
		return nil
	}, nil)
	return s
}

// ExternalFiles are the files, relative to the model's folder, that hold
// the external data of the named initializers (of all, with no names), each
// once, in the order the graph first names them.
func (g *GraphFile) ExternalFiles(names ...string) []string {
	var out []string
	for _, fl := range g.graph {
		t := fl.tensor
		if t == nil || !t.externalData || len(names) > 0 && !slices.Contains(names, t.name) {
			continue
		}
		if loc := t.external["location"]; !slices.Contains(out, loc) {
			out = append(out, loc)
		}
	}
	return out
}

// Producer is the node that computes the value name, if a node does.
func (g *GraphFile) Producer(name string) (NodeInfo, bool) {
	i, ok := g.producer[name]
	if !ok {
		return NodeInfo{}, false
	}
	return g.Nodes[i], true
}

// Constant returns the value of name when it is a constant: an
// initializer, or the output of a Constant node (value, value_float or
// value_int), as float64s. ok is false for anything else.
func (g *GraphFile) Constant(name string) (vals []float64, ok bool, err error) {
	var t *tensorRef
	if i, found := g.inits[name]; found && g.graph[i].tensor != nil {
		t = g.graph[i].tensor
	} else if n, found := g.Producer(name); found && n.Op == "Constant" && n.Domain == "" {
		a := n.attrs
		switch {
		case a["value"].t != nil:
			t = a["value"].t
		case a["value_float"].f != nil:
			return []float64{float64(*a["value_float"].f)}, true, nil
		case a["value_int"].i != nil:
			return []float64{float64(*a["value_int"].i)}, true, nil
		}
	}
	if t == nil {
		return nil, false, nil
	}
	f, err := os.Open(g.Path)
	if err != nil {
		return nil, true, err
	}
	defer f.Close()
	r := &reader{f: f, br: bufio.NewReaderSize(f, 4096), dir: filepath.Dir(g.Path)}
	vals, err = r.values(*t)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %q: %w", g.Path, name, err)
	}
	return vals, true, nil
}

// Subgraph is a model Extract wrote: the serialized ModelProto and its
// graph's inputs and outputs.
type Subgraph struct {
	Model   []byte
	Inputs  []ValueInfo
	Outputs []ValueInfo
}

// Extract writes a model that computes only the named outputs: the nodes
// they need (following node inputs and the names subgraphs capture back
// from the outputs), the initializers, inputs, value infos and quantization
// annotations those nodes use, and the outputs in the order given. Every
// other field — of the model (opsets, functions, metadata, fields this
// package does not know) and of the graph — and every kept field is copied
// byte for byte, external-data references included, except that an
// initializer's external data location found in relocate is replaced by
// its value.
func (g *GraphFile) Extract(outputs []string, relocate map[string]string) (*Subgraph, error) {
	keep := make([]bool, len(g.Nodes))
	used := map[string]bool{}
	todo := slices.Clone(outputs)
	for len(todo) > 0 {
		name := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if used[name] || name == "" {
			continue
		}
		used[name] = true
		if i, ok := g.producer[name]; ok && !keep[i] {
			keep[i] = true
			todo = append(todo, g.Nodes[i].Inputs...)
			todo = append(todo, g.Nodes[i].Captured...)
		}
	}
	inputs := map[string]bool{}
	for _, in := range g.Inputs {
		inputs[in.Name] = true
	}
	// Every value a kept node reads directly must come from somewhere.
	for i, n := range g.Nodes {
		if !keep[i] {
			continue
		}
		for _, in := range n.Inputs {
			_, produced := g.producer[in]
			_, init := g.inits[in]
			if in != "" && !produced && !init && !inputs[in] {
				return nil, fmt.Errorf("%s: node %q (%s) reads %q, which no node, initializer or input of the graph provides", g.Path, n.Name, n.Op, in)
			}
		}
	}
	sub := &Subgraph{}
	for _, o := range outputs {
		_, produced := g.producer[o]
		_, init := g.inits[o]
		if !produced && !init && !inputs[o] {
			return nil, fmt.Errorf("%s: the graph computes no %q (outputs: %s)", g.Path, o, names(g.Outputs))
		}
		vi, ok := g.values[o]
		if !ok {
			vi = ValueInfo{Name: o}
		}
		sub.Outputs = append(sub.Outputs, vi)
	}
	for _, in := range g.Inputs {
		if used[in.Name] {
			if _, init := g.inits[in.Name]; !init {
				sub.Inputs = append(sub.Inputs, in)
			}
		}
	}

	f, err := os.Open(g.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	span := func(fl field) ([]byte, error) {
		b := make([]byte, fl.end-fl.start)
		if _, err := f.ReadAt(b, fl.start); err != nil {
			return nil, fmt.Errorf("%s: %w", g.Path, err)
		}
		return b, nil
	}
	var graph []byte
	wroteOutputs := false
	for i, fl := range g.graph {
		var b []byte
		switch fl.num {
		case 1:
			if !keep[g.nodeAt(i)] {
				continue
			}
		case 5, 15, 11, 13, 14:
			if !used[fl.name] && !(fl.num != 5 && fl.num != 15 && g.keptProducer(fl.name, keep)) {
				continue
			}
			if fl.tensor != nil && fl.tensor.externalData {
				if to, ok := relocate[fl.tensor.external["location"]]; ok {
					raw, err := span(fl)
					if err != nil {
						return nil, err
					}
					if b, err = relocated(raw, to); err != nil {
						return nil, fmt.Errorf("%s: initializer %q: %w", g.Path, fl.name, err)
					}
				}
			}
		case 12:
			if wroteOutputs {
				continue
			}
			wroteOutputs = true
			for _, o := range outputs {
				graph = appendMessage(graph, 12, g.valueInfoBytes(o))
			}
			continue
		}
		if b == nil {
			if b, err = span(fl); err != nil {
				return nil, err
			}
		}
		graph = append(graph, b...)
	}
	if !wroteOutputs {
		for _, o := range outputs {
			graph = appendMessage(graph, 12, g.valueInfoBytes(o))
		}
	}
	for _, fl := range g.model {
		if fl.num == 7 {
			sub.Model = appendMessage(sub.Model, 7, graph)
			continue
		}
		b, err := span(fl)
		if err != nil {
			return nil, err
		}
		sub.Model = append(sub.Model, b...)
	}
	return sub, nil
}

// nodeAt is the index in Nodes of the node stored in graph field i.
func (g *GraphFile) nodeAt(i int) int {
	j, _ := slices.BinarySearchFunc(g.Nodes, i, func(n NodeInfo, i int) int { return n.field - i })
	return j
}

func (g *GraphFile) keptProducer(name string, keep []bool) bool {
	i, ok := g.producer[name]
	return ok && keep[i]
}

// valueInfoBytes is the ValueInfoProto of name: the graph output's, else
// its value_info, else one with only the name (ONNX Runtime infers the rest).
func (g *GraphFile) valueInfoBytes(name string) []byte {
	var fallback []byte
	for _, fl := range g.graph {
		if fl.name != name || fl.raw == nil {
			continue
		}
		if fl.num == 12 {
			return fl.raw
		}
		if fl.num == 13 || fl.num == 11 {
			fallback = fl.raw
		}
	}
	if fallback != nil {
		return fallback
	}
	return appendString(nil, 1, name)
}

// relocated re-encodes an initializer field (tag included) with its
// external data location replaced, every other field as it was.
func relocated(fieldBytes []byte, location string) ([]byte, error) {
	_, _, n := protowire.ConsumeTag(fieldBytes)
	msg, m := protowire.ConsumeBytes(fieldBytes[n:])
	if n < 0 || m < 0 {
		return nil, errors.New("malformed tensor")
	}
	var out []byte
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		l := protowire.ConsumeFieldValue(num, typ, msg[n:])
		if l < 0 {
			return nil, protowire.ParseError(l)
		}
		whole := msg[:n+l]
		msg = msg[n+l:]
		if num == 13 && typ == protowire.BytesType {
			entry, _ := protowire.ConsumeBytes(whole[n:])
			if k, _ := parseEntry(entry); k == "location" {
				var e []byte
				e = appendString(e, 1, "location")
				e = appendString(e, 2, location)
				out = appendMessage(out, 13, e)
				continue
			}
		}
		out = append(out, whole...)
	}
	return appendMessage(nil, 5, out), nil
}

func names(vis []ValueInfo) string {
	s := ""
	for i, v := range vis {
		if i > 0 {
			s += ", "
		}
		s += v.Name
	}
	return s
}
