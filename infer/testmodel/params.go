package testmodel

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
)

// layerNormEps is SigLIP's layer_norm_eps.
const layerNormEps = 1e-6

// attentionGain scales random q/k projections. With 1 the tiny model gave
// nearly the same probability to every label (0.692–0.704 for four prompts
// on one image); with 3 its scores spread out (see TestTinyIsDiscriminative).
const attentionGain = 3

// tower is the size of one transformer tower.
type tower struct {
	Hidden, Layers, Heads, MLP int
}

type param struct {
	dims []int64
	data []float32
}

// params is a model's weights by their Hugging Face state-dict names
// (vision_model.encoder.layers.0.self_attn.q_proj.weight, ...). Each is
// drawn from a generator seeded by the model seed and the name, so a weight's
// values do not depend on the order parameters are created in.
type params struct {
	seed uint64
	m    map[string]*param
}

// Shape and Float32 make params the weights infer/convert builds from.
func (p *params) Shape(name string) ([]int64, bool) {
	w, ok := p.m[name]
	if !ok {
		return nil, false
	}
	return w.dims, true
}

func (p *params) Float32(name string) ([]float32, error) {
	w, ok := p.m[name]
	if !ok {
		return nil, fmt.Errorf("no parameter %q", name)
	}
	return w.data, nil
}

func (p *params) get(name string) *param {
	w, ok := p.m[name]
	if !ok {
		panic(fmt.Sprintf("testmodel: no parameter %q", name))
	}
	return w
}

func (p *params) names() []string {
	out := make([]string, 0, len(p.m))
	for n := range p.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (p *params) rng(name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(p.seed, h.Sum64()))
}

// normal adds a parameter drawn from N(mean, std²).
func (p *params) normal(name string, mean, std float64, dims ...int64) {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	r := p.rng(name)
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(mean + std*r.NormFloat64())
	}
	p.m[name] = &param{dims: dims, data: data}
}

func (p *params) set(name string, data []float32, dims ...int64) {
	p.m[name] = &param{dims: dims, data: data}
}

// linear adds a torch.nn.Linear: weight [out, in] with std 1/√in so
// activations stay near unit scale through the layers, and a small bias.
func (p *params) linear(name string, in, out int) {
	p.normal(name+".weight", 0, 1/math.Sqrt(float64(in)), int64(out), int64(in))
	p.normal(name+".bias", 0, 0.02, int64(out))
}

func (p *params) layerNorm(name string, dim int) {
	p.normal(name+".weight", 1, 0.1, int64(dim))
	p.normal(name+".bias", 0, 0.02, int64(dim))
}

func (p *params) encoder(prefix string, t tower) {
	for i := 0; i < t.Layers; i++ {
		l := fmt.Sprintf("%s.encoder.layers.%d", prefix, i)
		p.layerNorm(l+".layer_norm1", t.Hidden)
		for _, proj := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			p.linear(l+".self_attn."+proj, t.Hidden, t.Hidden)
		}
		// Sharper random attention: with unit-scale q and k every position
		// attends almost uniformly, and the text tower's pooled last token
		// (padding) would barely depend on the prompt. attentionGain makes
		// the random model's outputs, and so the parity tests, sensitive.
		for _, proj := range []string{"q_proj", "k_proj"} {
			w := p.get(l + ".self_attn." + proj + ".weight")
			for i := range w.data {
				w.data[i] *= attentionGain
			}
		}
		p.layerNorm(l+".layer_norm2", t.Hidden)
		p.linear(l+".mlp.fc1", t.Hidden, t.MLP)
		p.linear(l+".mlp.fc2", t.MLP, t.Hidden)
	}
}

// siglipParams draws random weights for a SigLIP model of the given shape.
func siglipParams(s Spec, vocab int) *params {
	p := &params{seed: s.Seed, m: map[string]*param{}}
	v, t := s.Vision, s.Text
	patches := (s.ImageSize / s.PatchSize) * (s.ImageSize / s.PatchSize)

	// Vision: the patch embedding's std keeps each patch's projection near
	// unit scale, so different images give clearly different embeddings.
	p.normal("vision_model.embeddings.patch_embedding.weight", 0, 1/math.Sqrt(float64(3*s.PatchSize*s.PatchSize)),
		int64(v.Hidden), 3, int64(s.PatchSize), int64(s.PatchSize))
	p.normal("vision_model.embeddings.patch_embedding.bias", 0, 0.02, int64(v.Hidden))
	p.normal("vision_model.embeddings.position_embedding.weight", 0, 0.5, int64(patches), int64(v.Hidden))
	p.encoder("vision_model", v)
	p.layerNorm("vision_model.post_layernorm", v.Hidden)
	p.normal("vision_model.head.probe", 0, 1, 1, 1, int64(v.Hidden))
	for _, proj := range []string{"q", "k", "v", "out_proj"} {
		p.linear("vision_model.head.attention."+proj, v.Hidden, v.Hidden)
	}
	// torch.nn.MultiheadAttention keeps q, k and v as the rows of one
	// in_proj matrix, as transformers saves them; each is drawn under its
	// own name first, so the values do not depend on the packing.
	const head = "vision_model.head.attention."
	for _, kind := range []string{"weight", "bias"} {
		q, k, vv := p.get(head+"q."+kind), p.get(head+"k."+kind), p.get(head+"v."+kind)
		dims := append([]int64{q.dims[0] * 3}, q.dims[1:]...)
		p.set(head+"in_proj_"+kind, append(append(append([]float32{}, q.data...), k.data...), vv.data...), dims...)
		for _, x := range []string{"q.", "k.", "v."} {
			delete(p.m, head+x+kind)
		}
	}
	p.layerNorm("vision_model.head.layernorm", v.Hidden)
	p.linear("vision_model.head.mlp.fc1", v.Hidden, v.MLP)
	p.linear("vision_model.head.mlp.fc2", v.MLP, v.Hidden)

	// Text.
	p.normal("text_model.embeddings.token_embedding.weight", 0, 1, int64(vocab), int64(t.Hidden))
	p.normal("text_model.embeddings.position_embedding.weight", 0, 0.5, int64(s.MaxTextLength), int64(t.Hidden))
	p.encoder("text_model", t)
	p.layerNorm("text_model.final_layer_norm", t.Hidden)
	p.linear("text_model.head", t.Hidden, v.Hidden)

	p.set("logit_scale", []float32{float32(s.LogitScale)}, 1)
	p.set("logit_bias", []float32{float32(s.LogitBias)}, 1)
	return p
}
