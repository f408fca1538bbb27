package onnxpb

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// twoBranchModel is a model of two independent branches and what a
// splitter can get wrong: values both share (an initializer, a Constant
// node), an If node whose subgraphs read an initializer of the outer
// graph, weights in an external data file, value infos, a doc string and
// fields this package does not know, in the model and in the graph.
//
//	outA = (a·w + k)·wa                    wa external, in m.data
//	outB = b·w + k + If(cond){cap}         the If's branches read cap
//	outC = b·wb
func twoBranchModel() (model []byte, parts map[string][]byte) {
	parts = map[string][]byte{}
	vec := func(name string, v ...float32) []byte {
		ft := FloatTensor(name, []int64{int64(len(v))}, v)
		parts["init "+name] = appendMessage(nil, 5, ft.marshal())
		return parts["init "+name]
	}
	node := func(n Node) []byte { return appendMessage(nil, 1, n.marshal()) }
	branch := func(name string) []byte {
		var g []byte
		g = append(g, node(Node{Op: "Identity", Name: name + "_id", Inputs: []string{"cap"}, Outputs: []string{name + "_x"}})...)
		g = appendString(g, 2, name)
		out := ValueInfo{Name: name + "_x", ElemType: Float, Shape: []Dim{{Value: 4}}}
		return appendMessage(g, 12, out.marshal())
	}
	ifNode := func() []byte {
		var n []byte
		n = appendString(n, 1, "cond")
		n = appendString(n, 2, "ifout")
		n = appendString(n, 3, "if")
		n = appendString(n, 4, "If")
		for _, b := range []string{"then_branch", "else_branch"} {
			var a []byte
			a = appendString(a, 1, b)
			a = appendMessage(a, 6, branch(b))
			a = protowire.AppendTag(a, 20, protowire.VarintType)
			a = protowire.AppendVarint(a, 5) // GRAPH
			n = appendMessage(n, 5, a)
		}
		return appendMessage(nil, 1, n)
	}
	boolTensor := Tensor{Name: "cond_value", DataType: 9, Raw: []byte{1}}
	var g []byte
	g = append(g, node(Node{Op: "Constant", Name: "k", Outputs: []string{"k"}, Attrs: []Attr{AttrTensor("value", FloatTensor("kv", nil, []float32{0.5}))}})...)
	g = append(g, node(Node{Op: "Constant", Name: "cond", Outputs: []string{"cond"}, Attrs: []Attr{AttrTensor("value", boolTensor)}})...)
	g = append(g, node(Node{Op: "Mul", Name: "a1", Inputs: []string{"a", "w"}, Outputs: []string{"a1"}})...)
	g = append(g, node(Node{Op: "Add", Name: "a2", Inputs: []string{"a1", "k"}, Outputs: []string{"a2"}})...)
	g = append(g, node(Node{Op: "Mul", Name: "outA", Inputs: []string{"a2", "wa"}, Outputs: []string{"outA"}})...)
	g = append(g, node(Node{Op: "Mul", Name: "b1", Inputs: []string{"b", "w"}, Outputs: []string{"b1"}})...)
	g = append(g, node(Node{Op: "Add", Name: "b2", Inputs: []string{"b1", "k"}, Outputs: []string{"b2"}})...)
	g = append(g, ifNode()...)
	g = append(g, node(Node{Op: "Add", Name: "outB", Inputs: []string{"b2", "ifout"}, Outputs: []string{"outB"}})...)
	g = append(g, node(Node{Op: "Mul", Name: "outC", Inputs: []string{"b", "wb"}, Outputs: []string{"outC"}})...)
	g = appendString(g, 2, "two_branches")
	g = append(g, vec("w", 1, 2, 3, 4)...)
	g = append(g, vec("wb", 5, 6, 7, 8)...)
	g = append(g, vec("cap", 9, 9, 9, 9)...)
	g = append(g, vec("unused", 0, 0, 0, 0)...)
	parts["init wa"] = appendMessage(nil, 5, tensorBytes("wa", Float, 0, nil, map[string]string{"location": "m.data", "offset": "0", "length": "16"}))
	g = append(g, parts["init wa"]...)
	g = appendString(g, 10, "a doc string")
	io := func(field protowire.Number, name string) []byte {
		vi := ValueInfo{Name: name, ElemType: Float, Shape: []Dim{{Param: "batch"}, {Value: 4}}}
		parts[name] = appendMessage(nil, field, vi.marshal())
		return parts[name]
	}
	for _, in := range []string{"a", "b"} {
		g = append(g, io(11, in)...)
	}
	for _, out := range []string{"outA", "outB", "outC"} {
		g = append(g, io(12, out)...)
	}
	for _, vi := range []string{"a1", "b1", "ifout"} {
		g = append(g, io(13, vi)...)
	}
	parts["graph unknown"] = protowire.AppendVarint(protowire.AppendTag(nil, 98, protowire.VarintType), 7)
	g = append(g, parts["graph unknown"]...)

	model = protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), IRVersion)
	model = appendString(model, 2, "test")
	model = appendMessage(model, 8, appendString(protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 17), 1, ""))
	model = appendMessage(model, 7, g)
	parts["model unknown"] = appendString(nil, 99, "a field from a newer onnx.proto")
	model = append(model, parts["model unknown"]...)
	return model, parts
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// initializerNames are a read graph's initializers, sorted.
func initializerNames(g *GraphFile) []string {
	var out []string
	for name := range g.inits {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func valueNames(vis []ValueInfo) []string {
	var out []string
	for _, v := range vis {
		out = append(out, v.Name)
	}
	return out
}

// TestExtract: the part that computes some outputs keeps exactly the
// nodes, initializers, inputs and value infos they need — following what
// an If node's branches read from the outer graph, and values both parts
// share — and copies everything else byte for byte; an external data
// location is rewritten only where asked.
func TestExtract(t *testing.T) {
	model, parts := twoBranchModel()
	path := writeTemp(t, "model.onnx", model)
	g, err := ReadGraph(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := valueNames(g.Inputs); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("inputs %v", got)
	}
	if got := g.ExternalFiles(); !slices.Equal(got, []string{"m.data"}) {
		t.Errorf("external files %v, want [m.data]", got)
	}
	if got := g.ExternalFiles("w"); len(got) != 0 {
		t.Errorf("external files of w: %v, want none", got)
	}
	for _, tt := range []struct {
		name        string
		outputs     []string
		relocate    map[string]string
		nodes, init []string
		inputs      []string
		valueInfos  []string
		external    []string
		verbatim    []string // parts that must appear byte for byte
	}{
		{"branch A, relocated", []string{"outA"}, map[string]string{"m.data": "blobs-sha256"},
			[]string{"k", "a1", "a2", "outA"}, []string{"w", "wa"}, []string{"a"}, []string{"a1"},
			[]string{"blobs-sha256"}, []string{"init w", "a", "outA", "a1", "graph unknown", "model unknown"}},
		{"branch B: the If's captured initializer", []string{"outB"}, nil,
			[]string{"k", "cond", "b1", "b2", "if", "outB"}, []string{"cap", "w"}, []string{"b"}, []string{"b1", "ifout"},
			nil, []string{"init w", "init cap", "b", "outB", "b1", "ifout", "graph unknown", "model unknown"}},
		{"both, in another order", []string{"outB", "outA"}, nil,
			[]string{"k", "cond", "a1", "a2", "outA", "b1", "b2", "if", "outB"}, []string{"cap", "w", "wa"}, []string{"a", "b"},
			[]string{"a1", "b1", "ifout"}, []string{"m.data"}, []string{"init wa", "init w"}},
		{"an input as output", []string{"a"}, nil, nil, nil, []string{"a"}, nil, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := g.Extract(tt.outputs, tt.relocate)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadGraph(writeTemp(t, "sub.onnx", sub.Model))
			if err != nil {
				t.Fatalf("the extracted model does not read back: %v", err)
			}
			var nodes []string
			for _, n := range got.Nodes {
				nodes = append(nodes, n.Name)
			}
			check := func(what string, got, want []string) {
				if !slices.Equal(got, want) {
					t.Errorf("%s %q, want %q", what, got, want)
				}
			}
			check("nodes", nodes, tt.nodes)
			check("initializers", initializerNames(got), tt.init)
			check("inputs", valueNames(got.Inputs), tt.inputs)
			check("inputs reported", valueNames(sub.Inputs), tt.inputs)
			check("outputs", valueNames(got.Outputs), tt.outputs)
			check("outputs reported", valueNames(sub.Outputs), tt.outputs)
			var vis []string
			for _, f := range got.graph {
				if f.num == 13 {
					vis = append(vis, f.name)
				}
			}
			check("value infos", vis, tt.valueInfos)
			check("external files", got.ExternalFiles(), tt.external)
			for _, p := range tt.verbatim {
				if !bytes.Contains(sub.Model, parts[p]) {
					t.Errorf("%s is not copied byte for byte", p)
				}
			}
			if len(tt.nodes) > 0 && !bytes.Contains(sub.Model, []byte("a doc string")) {
				t.Error("the graph's doc string is lost")
			}
			if tt.relocate != nil {
				wa := got.graph[got.inits["wa"]].tensor.external
				if wa["offset"] != "0" || wa["length"] != "16" {
					t.Errorf("relocated wa's other external data entries changed: %v", wa)
				}
			}
		})
	}

	for _, tt := range []struct {
		name    string
		outputs []string
		want    string
	}{
		{"unknown output", []string{"nope"}, `computes no "nope" (outputs: outA, outB, outC)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := g.Extract(tt.outputs, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestReadGraphErrors: a graph that reads a value nothing provides cannot
// be extracted, and an external data location outside the model's folder
// is refused when the graph is read, naming the initializer.
func TestReadGraphErrors(t *testing.T) {
	graph := func(parts ...[]byte) []byte { return appendMessage(nil, 7, bytes.Join(parts, nil)) }
	node := func(n Node) []byte { return appendMessage(nil, 1, n.marshal()) }
	out := func(name string) []byte {
		v := ValueInfo{Name: name, ElemType: Float}
		return appendMessage(nil, 12, v.marshal())
	}
	for _, tt := range []struct {
		name     string
		model    []byte
		outputs  []string
		wantRead string
		want     string
	}{
		{"dangling input", graph(node(Node{Op: "Relu", Name: "r", Inputs: []string{"ghost"}, Outputs: []string{"y"}}), out("y")),
			[]string{"y"}, "", `node "r" (Relu) reads "ghost", which no node, initializer or input of the graph provides`},
		{"location outside the folder", graph(appendMessage(nil, 5, tensorBytes("w", Float, 0, nil, map[string]string{"location": "../../etc/passwd", "length": "4"}))),
			nil, `initializer "w": external data location "../../etc/passwd" is not a file inside the model's folder`, ""},
		{"absolute location", graph(appendMessage(nil, 5, tensorBytes("w", Float, 0, nil, map[string]string{"location": "/etc/passwd", "length": "4"}))),
			nil, `external data location "/etc/passwd" is not a file inside`, ""},
		{"no graph", appendString(nil, 2, "producer"), nil, "no graph", ""},
		{"truncated", graph(node(Node{Op: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}))[:9], nil, "truncated", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ReadGraph(writeTemp(t, "model.onnx", tt.model))
			if tt.wantRead != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantRead) {
					t.Errorf("ReadGraph: %v, want %q", err, tt.wantRead)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.Extract(tt.outputs, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Extract: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestConstant: constants are found as initializers and as Constant nodes
// (value, value_float, value_int), external data included; anything else
// is not a constant.
func TestConstant(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.data"), append(make([]byte, 8), f32(-0.25)...), 0o644)
	node := func(n Node) []byte { return appendMessage(nil, 1, n.marshal()) }
	g := bytes.Join([][]byte{
		node(Node{Op: "Constant", Outputs: []string{"c_tensor"}, Attrs: []Attr{AttrTensor("value", FloatTensor("v", nil, []float32{2.5}))}}),
		node(Node{Op: "Constant", Outputs: []string{"c_float"}, Attrs: []Attr{AttrFloat("value_float", -1.5)}}),
		node(Node{Op: "Constant", Outputs: []string{"c_int"}, Attrs: []Attr{AttrInt("value_int", 7)}}),
		node(Node{Op: "Relu", Inputs: []string{"c_int"}, Outputs: []string{"relu"}}),
		appendMessage(nil, 5, tensorBytes("init", Float, 9, f32(4), nil)),
		appendMessage(nil, 5, tensorBytes("ext", Float, 0, nil, map[string]string{"location": "x.data", "offset": "8", "length": "4"})),
	}, nil)
	path := filepath.Join(dir, "model.onnx")
	os.WriteFile(path, appendMessage(nil, 7, g), 0o644)
	gf, err := ReadGraph(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		want []float64 // nil: not a constant
	}{
		{"c_tensor", []float64{2.5}}, {"c_float", []float64{-1.5}}, {"c_int", []float64{7}},
		{"init", []float64{4}}, {"ext", []float64{-0.25}}, {"relu", nil}, {"absent", nil},
	} {
		got, ok, err := gf.Constant(tt.name)
		if err != nil || ok != (tt.want != nil) || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, %v, %v; want %v", tt.name, got, ok, err, tt.want)
		}
	}
}
