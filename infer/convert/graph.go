package convert

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/siglipd/siglipd/infer/onnxpb"
)

// GraphOptions choose how the graphs are written.
type GraphOptions struct {
	// Fused writes each transformer layer with ONNX Runtime's contrib
	// operators (com.microsoft Attention, SkipLayerNormalization, FastGelu
	// or BiasGelu), which ONNX Runtime runs faster on the CPU than the
	// same arithmetic spelled out (siglipd bench --compare measures it).
	// Without it the graphs use standard ONNX operators only (opset 17),
	// op for op as transformers' SiglipModel, for any ONNX server.
	Fused bool
}

// msDomain is ONNX Runtime's contrib-operator domain.
const msDomain = "com.microsoft"

// Builder assembles one ONNX graph from a checkpoint's weights. Every
// weight is checked against the shape the config implies when the graph is
// built and read only when the model is written (onnxpb.Tensor.Load), so a
// multi-gigabyte checkpoint is never in memory whole. The first error
// (a missing or mis-shaped tensor) is kept and returned by Model.
type Builder struct {
	g    onnxpb.Graph
	w    Weights
	opts GraphOptions
	used map[string]bool
	// Prefix starts node and constant names, so two towers can share a
	// graph (the test models' combined model.onnx).
	Prefix string
	n      int
	err    error
	ms     bool // a com.microsoft node was added
}

// NewBuilder starts an empty graph named name over the weights w.
func NewBuilder(name string, w Weights, opts GraphOptions) *Builder {
	return &Builder{g: onnxpb.Graph{Name: name}, w: w, opts: opts, used: map[string]bool{}}
}

// Graph is the graph being built, for setting its inputs and outputs.
func (b *Builder) Graph() *onnxpb.Graph { return &b.g }

// Err is the first error building the graph met.
func (b *Builder) Err() error { return b.err }

func (b *Builder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// Model returns the finished model, or the first error building it met.
func (b *Builder) Model(producer string) (*onnxpb.Model, error) {
	if b.err != nil {
		return nil, b.err
	}
	m := &onnxpb.Model{Opset: 17, Producer: producer, Graph: b.g}
	if b.ms {
		m.Imports = []onnxpb.OpsetID{{Domain: msDomain, Version: 1}}
	}
	return m, nil
}

// Op adds a node with one output and returns the output's name.
func (b *Builder) Op(op string, inputs []string, attrs ...onnxpb.Attr) string {
	return b.node("", op, inputs, 1, attrs...)[0]
}

// msOp adds an ONNX Runtime contrib node with the given number of outputs.
func (b *Builder) msOp(op string, inputs []string, outputs int, attrs ...onnxpb.Attr) []string {
	b.ms = true
	return b.node(msDomain, op, inputs, outputs, attrs...)
}

func (b *Builder) node(domain, op string, inputs []string, outputs int, attrs ...onnxpb.Attr) []string {
	b.n++
	outs := make([]string, outputs)
	for i := range outs {
		outs[i] = fmt.Sprintf("%s%s_%d", b.Prefix, op, b.n)
		if i > 0 {
			outs[i] += fmt.Sprintf("_%d", i)
		}
	}
	b.g.Nodes = append(b.g.Nodes, onnxpb.Node{Op: op, Domain: domain, Name: outs[0], Inputs: inputs, Outputs: outs, Attrs: attrs})
	return outs
}

// Named renames the first output of the last node (graph outputs need
// fixed names).
func (b *Builder) Named(name string) string {
	last := &b.g.Nodes[len(b.g.Nodes)-1]
	last.Outputs[0] = name
	return name
}

// shape checks that the checkpoint has the tensor with the dims the config
// implies (none: any) and returns its dims.
func (b *Builder) shape(name string, want ...int64) []int64 {
	dims, ok := b.w.Shape(name)
	where := ""
	if f, isFile := b.w.(interface{ File(string) string }); isFile && ok {
		where = f.File(name) + ": "
	}
	if c, isChecker := b.w.(interface{ Check(string) error }); isChecker && ok {
		if err := c.Check(name); err != nil {
			b.fail(err)
			return want
		}
	}
	switch {
	case !ok:
		b.fail(fmt.Errorf("tensor %q is missing from the checkpoint (config.json implies shape %v); is it a transformers SiglipModel checkpoint?", name, want))
	case want != nil && !slices.Equal(dims, want):
		b.fail(fmt.Errorf("%stensor %q has shape %v, but config.json implies %v", where, name, dims, want))
	default:
		return dims
	}
	return want
}

// lazy adds a float32 initializer whose values load computes at write time.
func (b *Builder) lazy(name string, dims []int64, load func() ([]float32, error)) {
	b.g.Initializers = append(b.g.Initializers, onnxpb.Tensor{Name: name, DataType: onnxpb.Float, Dims: dims,
		Load: func() ([]byte, error) {
			v, err := load()
			if err != nil {
				return nil, err
			}
			return floatBytes(v), nil
		}})
}

func floatBytes(v []float32) []byte {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return raw
}

// Weight adds the checkpoint's tensor as an initializer (once), checking
// its shape against want (none: any), and returns its name.
func (b *Builder) Weight(name string, want ...int64) string {
	if !b.used[name] {
		b.used[name] = true
		dims := b.shape(name, want...)
		b.lazy(name, dims, func() ([]float32, error) { return b.w.Float32(name) })
	}
	return name
}

// linearT adds rows [lo, hi) of a Linear layer's weight [out, in],
// transposed to [in, hi-lo] as ONNX MatMul wants it; HF stores [out, in].
// Several row ranges concatenate side by side (the packed q, k, v of a
// fused Attention). want is the whole weight's shape.
func (b *Builder) linearT(as string, want []int64, parts ...rowRange) string {
	if b.used[as] {
		return as
	}
	b.used[as] = true
	in, cols := want[1], int64(0)
	for _, p := range parts {
		b.shape(p.name, want...)
		cols += p.hi - p.lo
	}
	w := b.w
	b.lazy(as, []int64{in, cols}, func() ([]float32, error) {
		t := make([]float32, in*cols)
		col := int64(0)
		for _, p := range parts {
			data, err := w.Float32(p.name)
			if err != nil {
				return nil, err
			}
			for o := p.lo; o < p.hi; o++ {
				for i := int64(0); i < in; i++ {
					t[i*cols+col+o-p.lo] = data[o*in+i]
				}
			}
			col += p.hi - p.lo
		}
		return t, nil
	})
	return as
}

type rowRange struct {
	name   string
	lo, hi int64
}

// biasParts concatenates ranges of bias vectors (the packed q, k, v bias).
func (b *Builder) biasParts(as string, parts ...rowRange) string {
	if b.used[as] {
		return as
	}
	b.used[as] = true
	var n int64
	for _, p := range parts {
		n += p.hi - p.lo
	}
	w := b.w
	b.lazy(as, []int64{n}, func() ([]float32, error) {
		out := make([]float32, 0, n)
		for _, p := range parts {
			data, err := w.Float32(p.name)
			if err != nil {
				return nil, err
			}
			out = append(out, data[p.lo:p.hi]...)
		}
		return out, nil
	})
	return as
}

// ConstInt64 adds a 1-D int64 constant.
func (b *Builder) ConstInt64(vals ...int64) string {
	b.n++
	name := fmt.Sprintf("%sconst_%d", b.Prefix, b.n)
	b.g.Initializers = append(b.g.Initializers, onnxpb.Int64Tensor(name, []int64{int64(len(vals))}, vals))
	return name
}

// ScalarInt64 adds an int64 scalar constant.
func (b *Builder) ScalarInt64(v int64) string {
	b.n++
	name := fmt.Sprintf("%sscalar_%d", b.Prefix, b.n)
	b.g.Initializers = append(b.g.Initializers, onnxpb.Int64Tensor(name, nil, []int64{v}))
	return name
}

// ConstFloat adds a float32 scalar constant.
func (b *Builder) ConstFloat(v float32) string {
	b.n++
	name := fmt.Sprintf("%sconst_%d", b.Prefix, b.n)
	b.g.Initializers = append(b.g.Initializers, onnxpb.FloatTensor(name, nil, []float32{v}))
	return name
}

// linear is x·Wᵀ + b (torch.nn.Linear) with weight [out, in].
func (b *Builder) linear(x, name string, in, out int) string {
	y := b.matmulT(x, name, in, out)
	return b.Op("Add", []string{y, b.Weight(name+".bias", int64(out))})
}

// matmulT is x·Wᵀ without the bias.
func (b *Builder) matmulT(x, name string, in, out int) string {
	w := name + ".weight"
	return b.Op("MatMul", []string{x, b.linearT(w+".T", []int64{int64(out), int64(in)}, rowRange{w, 0, int64(out)})})
}

// layerNorm is torch.nn.LayerNorm over the last axis.
func (b *Builder) layerNorm(x, name string, dim int, eps float64) string {
	return b.Op("LayerNormalization", []string{x, b.Weight(name+".weight", int64(dim)), b.Weight(name+".bias", int64(dim))},
		onnxpb.AttrInt("axis", -1), onnxpb.AttrFloat("epsilon", float32(eps)))
}

// gelu is the MLP's activation, spelled in standard operators the way
// ONNX Runtime's level-"all" optimizer recognises it.
func (b *Builder) gelu(x, act string) string {
	if act == "gelu" { // 0.5·x·(1 + erf(x/√2))
		e := b.Op("Erf", []string{b.Op("Div", []string{x, b.ConstFloat(float32(math.Sqrt2))})})
		return b.Op("Mul", []string{b.Op("Mul", []string{x, b.Op("Add", []string{e, b.ConstFloat(1)})}), b.ConstFloat(0.5)})
	}
	// gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
	x3 := b.Op("Mul", []string{b.Op("Mul", []string{x, x}), x})
	inner := b.Op("Add", []string{x, b.Op("Mul", []string{x3, b.ConstFloat(0.044715)})})
	t := b.Op("Tanh", []string{b.Op("Mul", []string{inner, b.ConstFloat(float32(math.Sqrt(2 / math.Pi)))})})
	onePlus := b.Op("Add", []string{t, b.ConstFloat(1)})
	return b.Op("Mul", []string{b.Op("Mul", []string{x, onePlus}), b.ConstFloat(0.5)})
}

func (b *Builder) mlp(x, name string, t Tower) string {
	return b.linear(b.gelu(b.linear(x, name+".fc1", t.Hidden, t.MLP), t.Act), name+".fc2", t.MLP, t.Hidden)
}

// projection names one of attention's q/k/v/out projections: a Linear
// layer, or rows of a packed in_proj weight (torch.nn.MultiheadAttention).
type projection struct {
	weight, bias string
	lo, hi       int64 // rows of weight (and bias)
}

func linearProj(name string, dim int) projection {
	return projection{name + ".weight", name + ".bias", 0, int64(dim)}
}

func (b *Builder) project(x string, p projection, rows int64, dim int) string {
	as := p.weight + ".T"
	if rows != int64(dim) {
		as = fmt.Sprintf("%s.%d.T", p.weight, p.lo/int64(dim))
	}
	w := b.linearT(as, []int64{rows, int64(dim)}, rowRange{p.weight, p.lo, p.hi})
	bias := p.bias
	if rows != int64(dim) {
		b.shape(p.bias, rows)
		bias = b.biasParts(fmt.Sprintf("%s.%d", p.bias, p.lo/int64(dim)), rowRange{p.bias, p.lo, p.hi})
	} else {
		b.Weight(bias, rows)
	}
	return b.Op("Add", []string{b.Op("MatMul", []string{x, w}), bias})
}

// attention is multi-head attention of query rows q over key/value rows kv,
// both [B, N, D]; q may also be [1, N, D] (the pooling head's probe), which
// MatMul broadcasts over the batch. rows is the first dimension of the
// projections' weight tensors: dim, or 3·dim for a packed in_proj.
func (b *Builder) attention(q, kv string, proj [4]projection, rows int64, heads, dim int) string {
	hd := int64(dim / heads)
	split := b.ConstInt64(0, 0, int64(heads), hd)
	heads4 := func(x string, perm ...int64) string {
		return b.Op("Transpose", []string{b.Op("Reshape", []string{x, split})}, onnxpb.AttrInts("perm", perm...))
	}
	qh := heads4(b.project(q, proj[0], rows, dim), 0, 2, 1, 3)
	kh := heads4(b.project(kv, proj[1], rows, dim), 0, 2, 3, 1)
	vh := heads4(b.project(kv, proj[2], rows, dim), 0, 2, 1, 3)
	scores := b.Op("Mul", []string{b.Op("MatMul", []string{qh, kh}), b.ConstFloat(float32(1 / math.Sqrt(float64(hd))))})
	probs := b.Op("Softmax", []string{scores}, onnxpb.AttrInt("axis", -1))
	ctx := b.Op("Transpose", []string{b.Op("MatMul", []string{probs, vh})}, onnxpb.AttrInts("perm", 0, 2, 1, 3))
	merged := b.Op("Reshape", []string{ctx, b.ConstInt64(0, 0, int64(dim))})
	return b.project(merged, proj[3], int64(dim), dim)
}

// encoder is SiglipEncoder (pre-LayerNorm transformer layers) followed by
// the tower's final LayerNorm finalNorm; it returns the normalised states.
func (b *Builder) encoder(h, prefix string, t Tower, finalNorm string) string {
	if b.opts.Fused {
		return b.encoderFused(h, prefix, t, finalNorm)
	}
	for i := 0; i < t.Layers; i++ {
		l := fmt.Sprintf("%s.encoder.layers.%d", prefix, i)
		x := b.layerNorm(h, l+".layer_norm1", t.Hidden, t.LayerNormEps)
		sa := l + ".self_attn."
		proj := [4]projection{linearProj(sa+"q_proj", t.Hidden), linearProj(sa+"k_proj", t.Hidden),
			linearProj(sa+"v_proj", t.Hidden), linearProj(sa+"out_proj", t.Hidden)}
		h = b.Op("Add", []string{h, b.attention(x, x, proj, int64(t.Hidden), t.Heads, t.Hidden)})
		x = b.layerNorm(h, l+".layer_norm2", t.Hidden, t.LayerNormEps)
		h = b.Op("Add", []string{h, b.mlp(x, l+".mlp", t)})
	}
	return b.layerNorm(h, finalNorm, t.Hidden, t.LayerNormEps)
}

// encoderFused is encoder with ONNX Runtime's contrib operators where
// they are faster on its CPU provider: q, k and v packed into one
// Attention (one GEMM for the three projections, the scores and softmax in
// one kernel), and the first MLP layer's bias and GELU in one FastGelu
// (tanh) or BiasGelu (erf). Residual sums and LayerNorms stay standard
// Add and LayerNormalization: ONNX Runtime's SkipLayerNormalization was
// slower on the CPU than the two (measured with ONNX Runtime's profiler on
// the base shape; docs/measurements.md).
func (b *Builder) encoderFused(h, prefix string, t Tower, finalNorm string) string {
	d := int64(t.Hidden)
	for i := 0; i < t.Layers; i++ {
		l := fmt.Sprintf("%s.encoder.layers.%d", prefix, i)
		x := b.layerNorm(h, l+".layer_norm1", t.Hidden, t.LayerNormEps)
		sa := l + ".self_attn."
		want := []int64{d, d}
		qkv := b.linearT(sa+"qkv.T", want, rowRange{sa + "q_proj.weight", 0, d}, rowRange{sa + "k_proj.weight", 0, d}, rowRange{sa + "v_proj.weight", 0, d})
		for _, p := range []string{"q_proj", "k_proj", "v_proj"} {
			b.shape(sa+p+".bias", d)
		}
		qkvBias := b.biasParts(sa+"qkv.bias", rowRange{sa + "q_proj.bias", 0, d}, rowRange{sa + "k_proj.bias", 0, d}, rowRange{sa + "v_proj.bias", 0, d})
		a := b.msOp("Attention", []string{x, qkv, qkvBias}, 1, onnxpb.AttrInt("num_heads", int64(t.Heads)))[0]
		h = b.Op("Add", []string{h, b.Op("Add", []string{b.matmulT(a, sa+"out_proj", t.Hidden, t.Hidden), b.Weight(sa+"out_proj.bias", d)})})
		x = b.layerNorm(h, l+".layer_norm2", t.Hidden, t.LayerNormEps)
		act := "FastGelu"
		if t.Act == "gelu" {
			act = "BiasGelu"
		}
		m := b.msOp(act, []string{b.matmulT(x, l+".mlp.fc1", t.Hidden, t.MLP), b.Weight(l+".mlp.fc1.bias", int64(t.MLP))}, 1)[0]
		h = b.Op("Add", []string{h, b.Op("Add", []string{b.matmulT(m, l+".mlp.fc2", t.MLP, t.Hidden), b.Weight(l+".mlp.fc2.bias", d)})})
	}
	return b.layerNorm(h, finalNorm, t.Hidden, t.LayerNormEps)
}

// VisionTower adds SiglipVisionTransformer: patch embedding, encoder,
// post-LayerNorm and the multihead attention pooling head. It returns the
// names of last_hidden_state and pooler_output.
func (b *Builder) VisionTower(pixels string, c Config) (last, pooled string) {
	const p = "vision_model"
	v := c.Vision
	d, ps := int64(v.Hidden), int64(c.PatchSize)
	conv := b.Op("Conv", []string{pixels, b.Weight(p+".embeddings.patch_embedding.weight", d, 3, ps, ps), b.Weight(p+".embeddings.patch_embedding.bias", d)},
		onnxpb.AttrInts("kernel_shape", ps, ps), onnxpb.AttrInts("strides", ps, ps))
	flat := b.Op("Reshape", []string{conv, b.ConstInt64(0, 0, -1)})
	emb := b.Op("Transpose", []string{flat}, onnxpb.AttrInts("perm", 0, 2, 1))
	h := b.Op("Add", []string{emb, b.Weight(p+".embeddings.position_embedding.weight", int64(c.Patches()), d)})
	last = b.encoder(h, p, v, p+".post_layernorm")

	// SiglipMultiheadAttentionPoolingHead: a learned probe attends over all
	// patches through torch.nn.MultiheadAttention, whose q, k and v are
	// rows of one in_proj weight; the MLP's residual is the attention
	// output, not the probe.
	probe := b.Weight(p+".head.probe", 1, 1, d)
	in := p + ".head.attention.in_proj_"
	proj := [4]projection{{in + "weight", in + "bias", 0, d}, {in + "weight", in + "bias", d, 2 * d},
		{in + "weight", in + "bias", 2 * d, 3 * d}, linearProj(p+".head.attention.out_proj", v.Hidden)}
	a := b.attention(probe, last, proj, 3*d, v.Heads, v.Hidden)
	h = b.Op("Add", []string{a, b.mlp(b.layerNorm(a, p+".head.layernorm", v.Hidden, v.LayerNormEps), p+".head.mlp", v)})
	pooled = b.Op("Gather", []string{h, b.ScalarInt64(0)}, onnxpb.AttrInt("axis", 1))
	return last, pooled
}

// TextTower adds SiglipTextTransformer: token + position embeddings,
// encoder, final LayerNorm, the last position's state through the head.
func (b *Builder) TextTower(ids string, c Config) (last, pooled string) {
	const p = "text_model"
	t := c.Text
	d := int64(t.Hidden)
	tok := b.Op("Gather", []string{b.Weight(p+".embeddings.token_embedding.weight", int64(c.VocabSize), d), ids})
	seqLen := b.Op("Gather", []string{b.Op("Shape", []string{ids}), b.ConstInt64(1)})
	pos := b.Op("Slice", []string{b.Weight(p+".embeddings.position_embedding.weight", int64(c.MaxPositions), d), b.ConstInt64(0), seqLen, b.ConstInt64(0)})
	h := b.Op("Add", []string{tok, pos})
	last = b.encoder(h, p, t, p+".final_layer_norm")
	lastPos := b.Op("Gather", []string{last, b.ScalarInt64(-1)}, onnxpb.AttrInt("axis", 1))
	pooled = b.linear(lastPos, p+".head", t.Hidden, c.ProjectionSize)
	return last, pooled
}

// l2normalize divides rows by their Euclidean norm.
func (b *Builder) l2normalize(x string) string {
	return b.Op("Div", []string{x, b.Op("ReduceL2", []string{x}, onnxpb.AttrInts("axes", -1), onnxpb.AttrInt("keepdims", 1))})
}

// Logits adds SiglipModel's head over pooled embeddings:
// logits_per_text = exp(logit_scale)·text_n·image_nᵀ + logit_bias,
// logits_per_image its transpose, and the normalised text_embeds and
// image_embeds.
func (b *Builder) Logits(textEmb, imageEmb string) {
	tn := b.l2normalize(textEmb)
	in := b.l2normalize(imageEmb)
	b.Op("Identity", []string{tn})
	b.Named("text_embeds")
	b.Op("Identity", []string{in})
	b.Named("image_embeds")
	sim := b.Op("MatMul", []string{tn, b.Op("Transpose", []string{in}, onnxpb.AttrInts("perm", 1, 0))})
	scaled := b.Op("Mul", []string{sim, b.Op("Exp", []string{b.Weight("logit_scale", 1)})})
	b.Op("Add", []string{scaled, b.Weight("logit_bias", 1)})
	lpt := b.Named("logits_per_text")
	b.Op("Transpose", []string{lpt}, onnxpb.AttrInts("perm", 1, 0))
	b.Named("logits_per_image")
}

// Value infos of the Xenova exports' inputs and outputs. batch names the
// batch dimension: "batch_size" in a tower; the full model takes any
// number of texts and images, so there they differ.

// PixelInput is pixel_values, [batch, 3, height, width] float32.
func PixelInput(height, width int, batch string) onnxpb.ValueInfo {
	return onnxpb.ValueInfo{Name: "pixel_values", ElemType: onnxpb.Float,
		Shape: []onnxpb.Dim{{Param: batch}, {Value: 3}, {Value: int64(height)}, {Value: int64(width)}}}
}

// IDsInput is input_ids, [batch, sequence_length] int64.
func IDsInput(batch string) onnxpb.ValueInfo {
	return onnxpb.ValueInfo{Name: "input_ids", ElemType: onnxpb.Int64,
		Shape: []onnxpb.Dim{{Param: batch}, {Param: "sequence_length"}}}
}

// Output is a float32 graph output.
func Output(name string, dims ...onnxpb.Dim) onnxpb.ValueInfo {
	return onnxpb.ValueInfo{Name: name, ElemType: onnxpb.Float, Shape: dims}
}

// Symbolic dimensions of the towers' inputs and outputs.
var (
	BatchDim = onnxpb.Dim{Param: "batch_size"}
	SeqDim   = onnxpb.Dim{Param: "sequence_length"}
)

// TowerOutputs names a tower's outputs as the Xenova exports do.
func (b *Builder) TowerOutputs(last, pooled string, dim int, tokens onnxpb.Dim) {
	b.Op("Identity", []string{last})
	b.Named("last_hidden_state")
	b.Op("Identity", []string{pooled})
	b.Named("pooler_output")
	b.g.Outputs = []onnxpb.ValueInfo{
		Output("last_hidden_state", BatchDim, tokens, onnxpb.Dim{Param: "hidden"}),
		Output("pooler_output", BatchDim, onnxpb.Dim{Value: int64(dim)}),
	}
}
