package testmodel

import (
	"fmt"
	"math"

	"github.com/siglipd/siglipd/infer/onnxpb"
)

// builder assembles one ONNX graph. Weights come from a shared params set,
// so the tower files and the full model.onnx carry identical values.
type builder struct {
	g      onnxpb.Graph
	params *params
	used   map[string]bool
	prefix string // node-name prefix, so two towers can share one graph
	n      int
}

func newBuilder(name string, p *params) *builder {
	return &builder{g: onnxpb.Graph{Name: name}, params: p, used: map[string]bool{}}
}

// op adds a node with one output and returns the output's name.
func (b *builder) op(op string, inputs []string, attrs ...onnxpb.Attr) string {
	b.n++
	out := fmt.Sprintf("%s%s_%d", b.prefix, op, b.n)
	b.g.Nodes = append(b.g.Nodes, onnxpb.Node{Op: op, Name: out, Inputs: inputs, Outputs: []string{out}, Attrs: attrs})
	return out
}

// named renames the output of the last node (graph outputs need fixed names).
func (b *builder) named(name string) string {
	last := &b.g.Nodes[len(b.g.Nodes)-1]
	last.Outputs[0] = name
	return name
}

// weight adds the parameter as an initializer (once) and returns its name.
func (b *builder) weight(name string) string {
	if !b.used[name] {
		b.used[name] = true
		p := b.params.get(name)
		b.g.Initializers = append(b.g.Initializers, onnxpb.FloatTensor(name, p.dims, p.data))
	}
	return name
}

// linearT adds a Linear layer's weight transposed to [in, out], as ONNX
// MatMul wants it; HF stores [out, in].
func (b *builder) linearT(name string) string {
	tname := name + ".T"
	if !b.used[tname] {
		b.used[tname] = true
		p := b.params.get(name)
		out, in := p.dims[0], p.dims[1]
		t := make([]float32, len(p.data))
		for o := int64(0); o < out; o++ {
			for i := int64(0); i < in; i++ {
				t[i*out+o] = p.data[o*in+i]
			}
		}
		b.g.Initializers = append(b.g.Initializers, onnxpb.FloatTensor(tname, []int64{in, out}, t))
	}
	return tname
}

func (b *builder) constInt64(vals ...int64) string {
	b.n++
	name := fmt.Sprintf("%sconst_%d", b.prefix, b.n)
	b.g.Initializers = append(b.g.Initializers, onnxpb.Int64Tensor(name, []int64{int64(len(vals))}, vals))
	return name
}

func (b *builder) scalarInt64(v int64) string {
	b.n++
	name := fmt.Sprintf("%sscalar_%d", b.prefix, b.n)
	b.g.Initializers = append(b.g.Initializers, onnxpb.Int64Tensor(name, nil, []int64{v}))
	return name
}

func (b *builder) constFloat(v float32) string {
	b.n++
	name := fmt.Sprintf("%sconst_%d", b.prefix, b.n)
	b.g.Initializers = append(b.g.Initializers, onnxpb.FloatTensor(name, nil, []float32{v}))
	return name
}

// linear is x·Wᵀ + b (torch.nn.Linear).
func (b *builder) linear(x, name string) string {
	y := b.op("MatMul", []string{x, b.linearT(name + ".weight")})
	return b.op("Add", []string{y, b.weight(name + ".bias")})
}

// layerNorm is torch.nn.LayerNorm over the last axis; SigLIP uses eps 1e-6.
func (b *builder) layerNorm(x, name string) string {
	return b.op("LayerNormalization", []string{x, b.weight(name + ".weight"), b.weight(name + ".bias")},
		onnxpb.AttrInt("axis", -1), onnxpb.AttrFloat("epsilon", layerNormEps))
}

// geluTanh is gelu_pytorch_tanh, SigLIP's activation:
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func (b *builder) geluTanh(x string) string {
	x3 := b.op("Mul", []string{b.op("Mul", []string{x, x}), x})
	inner := b.op("Add", []string{x, b.op("Mul", []string{x3, b.constFloat(0.044715)})})
	t := b.op("Tanh", []string{b.op("Mul", []string{inner, b.constFloat(float32(math.Sqrt(2 / math.Pi)))})})
	onePlus := b.op("Add", []string{t, b.constFloat(1)})
	return b.op("Mul", []string{b.op("Mul", []string{x, onePlus}), b.constFloat(0.5)})
}

func (b *builder) mlp(x, name string) string {
	return b.linear(b.geluTanh(b.linear(x, name+".fc1")), name+".fc2")
}

// attention is multi-head attention of query rows q over key/value rows kv,
// both [B, N, D]; q may also be [1, N, D] (the pooling head's probe), which
// MatMul broadcasts over the batch. qkv names the q/k/v/out projections.
func (b *builder) attention(q, kv string, qkv [4]string, heads, dim int64) string {
	hd := dim / heads
	split := b.constInt64(0, 0, heads, hd)
	qh := b.op("Transpose", []string{b.op("Reshape", []string{b.linear(q, qkv[0]), split})}, onnxpb.AttrInts("perm", 0, 2, 1, 3))
	kh := b.op("Transpose", []string{b.op("Reshape", []string{b.linear(kv, qkv[1]), split})}, onnxpb.AttrInts("perm", 0, 2, 3, 1))
	vh := b.op("Transpose", []string{b.op("Reshape", []string{b.linear(kv, qkv[2]), split})}, onnxpb.AttrInts("perm", 0, 2, 1, 3))
	scores := b.op("Mul", []string{b.op("MatMul", []string{qh, kh}), b.constFloat(float32(1 / math.Sqrt(float64(hd))))})
	probs := b.op("Softmax", []string{scores}, onnxpb.AttrInt("axis", -1))
	ctx := b.op("Transpose", []string{b.op("MatMul", []string{probs, vh})}, onnxpb.AttrInts("perm", 0, 2, 1, 3))
	merged := b.op("Reshape", []string{ctx, b.constInt64(0, 0, dim)})
	return b.linear(merged, qkv[3])
}

// encoder is SiglipEncoder: pre-LayerNorm transformer layers.
func (b *builder) encoder(h, prefix string, t tower) string {
	for i := 0; i < t.Layers; i++ {
		l := fmt.Sprintf("%s.encoder.layers.%d", prefix, i)
		x := b.layerNorm(h, l+".layer_norm1")
		proj := [4]string{l + ".self_attn.q_proj", l + ".self_attn.k_proj", l + ".self_attn.v_proj", l + ".self_attn.out_proj"}
		h = b.op("Add", []string{h, b.attention(x, x, proj, int64(t.Heads), int64(t.Hidden))})
		x = b.layerNorm(h, l+".layer_norm2")
		h = b.op("Add", []string{h, b.mlp(x, l+".mlp")})
	}
	return h
}

// visionTower adds SiglipVisionTransformer: patch embedding, encoder,
// post-LayerNorm and the multihead attention pooling head. It returns the
// names of last_hidden_state and pooler_output.
func (b *builder) visionTower(pixels string, v tower, patch int) (last, pooled string) {
	const p = "vision_model"
	conv := b.op("Conv", []string{pixels, b.weight(p + ".embeddings.patch_embedding.weight"), b.weight(p + ".embeddings.patch_embedding.bias")},
		onnxpb.AttrInts("kernel_shape", int64(patch), int64(patch)), onnxpb.AttrInts("strides", int64(patch), int64(patch)))
	flat := b.op("Reshape", []string{conv, b.constInt64(0, 0, -1)})
	emb := b.op("Transpose", []string{flat}, onnxpb.AttrInts("perm", 0, 2, 1))
	h := b.op("Add", []string{emb, b.weight(p + ".embeddings.position_embedding.weight")})
	h = b.encoder(h, p, v)
	last = b.layerNorm(h, p+".post_layernorm")

	// SiglipMultiheadAttentionPoolingHead: a learned probe attends over all
	// patches; the MLP's residual is the attention output, not the probe.
	probe := b.weight(p + ".head.probe")
	proj := [4]string{p + ".head.attention.q", p + ".head.attention.k", p + ".head.attention.v", p + ".head.attention.out_proj"}
	a := b.attention(probe, last, proj, int64(v.Heads), int64(v.Hidden))
	h = b.op("Add", []string{a, b.mlp(b.layerNorm(a, p+".head.layernorm"), p+".head.mlp")})
	pooled = b.op("Gather", []string{h, b.scalarInt64(0)}, onnxpb.AttrInt("axis", 1))
	return last, pooled
}

// textTower adds SiglipTextTransformer: token + position embeddings,
// encoder, final LayerNorm, the last position's state through the head.
func (b *builder) textTower(ids string, t tower) (last, pooled string) {
	const p = "text_model"
	tok := b.op("Gather", []string{b.weight(p + ".embeddings.token_embedding.weight"), ids})
	seqLen := b.op("Gather", []string{b.op("Shape", []string{ids}), b.constInt64(1)})
	pos := b.op("Slice", []string{b.weight(p + ".embeddings.position_embedding.weight"), b.constInt64(0), seqLen, b.constInt64(0)})
	h := b.op("Add", []string{tok, pos})
	h = b.encoder(h, p, t)
	last = b.layerNorm(h, p+".final_layer_norm")
	lastPos := b.op("Gather", []string{last, b.scalarInt64(-1)}, onnxpb.AttrInt("axis", 1))
	pooled = b.linear(lastPos, p+".head")
	return last, pooled
}

// l2normalize divides rows by their Euclidean norm.
func (b *builder) l2normalize(x string) string {
	return b.op("Div", []string{x, b.op("ReduceL2", []string{x}, onnxpb.AttrInts("axes", -1), onnxpb.AttrInt("keepdims", 1))})
}

// logits adds SiglipModel's head: logits_per_text = exp(logit_scale)·
// text_n·image_nᵀ + logit_bias, logits_per_image its transpose.
func (b *builder) logits(textEmb, imageEmb string) {
	tn := b.l2normalize(textEmb)
	in := b.l2normalize(imageEmb)
	b.op("Identity", []string{tn})
	b.named("text_embeds")
	b.op("Identity", []string{in})
	b.named("image_embeds")
	sim := b.op("MatMul", []string{tn, b.op("Transpose", []string{in}, onnxpb.AttrInts("perm", 1, 0))})
	scaled := b.op("Mul", []string{sim, b.op("Exp", []string{b.weight("logit_scale")})})
	b.op("Add", []string{scaled, b.weight("logit_bias")})
	lpt := b.named("logits_per_text")
	b.op("Transpose", []string{lpt}, onnxpb.AttrInts("perm", 1, 0))
	b.named("logits_per_image")
}

func (b *builder) model() *onnxpb.Model {
	return &onnxpb.Model{Opset: 17, Producer: "siglipd-mkmodel", Graph: b.g}
}

// Value infos of the Xenova exports' inputs and outputs.
// batch names the batch dimension: "batch_size" in a tower, but the full
// model takes any number of texts and images, so there they differ.
func pixelInput(size int, batch string) onnxpb.ValueInfo {
	return onnxpb.ValueInfo{Name: "pixel_values", ElemType: onnxpb.Float,
		Shape: []onnxpb.Dim{{Param: batch}, {Value: 3}, {Value: int64(size)}, {Value: int64(size)}}}
}

func idsInput(batch string) onnxpb.ValueInfo {
	return onnxpb.ValueInfo{Name: "input_ids", ElemType: onnxpb.Int64,
		Shape: []onnxpb.Dim{{Param: batch}, {Param: "sequence_length"}}}
}

func output(name string, dims ...onnxpb.Dim) onnxpb.ValueInfo {
	return onnxpb.ValueInfo{Name: name, ElemType: onnxpb.Float, Shape: dims}
}

var (
	batchDim = onnxpb.Dim{Param: "batch_size"}
	seqDim   = onnxpb.Dim{Param: "sequence_length"}
)
