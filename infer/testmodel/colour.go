package testmodel

import (
	"fmt"

	"github.com/siglipd/siglipd/infer/onnxpb"
)

// The colour model's embedding space: one axis per colour word, one that
// every image has and no text has, one that every text has and no image
// has. So a mid-grey image is orthogonal to every text (cosine 0:
// probability sigmoid(bias) ≈ 6e-6) and a saturated red image points along
// "red".
//
// Hues are differences between channels, blind to the overall level; white
// and black read the level itself, so a normalization bug (a missing 1/255
// rescale, a wrong mean) turns a grey frame "white" or "black" and the
// tests notice.
const (
	colourDim       = 10
	imageNeutralDim = 8
	textNeutralDim  = 9
	// imageNeutral is the constant image component: it keeps grey images
	// from having a zero vector, and is small next to a saturated hue's 2.
	imageNeutral = 0.25
	// textNeutral is what each non-colour token adds on the text-only axis,
	// so a label without colour words still has a direction.
	textNeutral = 0.02
)

// hues are the colour words the model knows, in embedding-axis order.
var hues = []string{"red", "green", "blue", "yellow", "cyan", "magenta", "white", "black"}

// colourModels builds the colour preset's graphs. Vision: mean of each
// channel over the image (values are in [-1, 1] after SigLIP's
// normalization), then features such as red = relu(r − max(g, b)),
// white = relu(min(r, g, b)).
// Text: the sum of token embeddings, where a colour word's token is its
// hue's axis, </s> and <pad> are zero and every other token is textNeutral.
func colourModels(s Spec, tok tokenizerInfo) (vision, text, full *onnxpb.Model, err error) {
	for _, hue := range hues[:3] {
		if _, ok := tok.pieces["▁"+hue]; !ok {
			return nil, nil, nil, fmt.Errorf("the tokenizer has no single piece for %q: the colour model needs red, green and blue as whole words", "▁"+hue)
		}
	}
	table := make([]float32, tok.vocabSize*colourDim)
	for i := 0; i < tok.vocabSize; i++ {
		table[i*colourDim+textNeutralDim] = textNeutral
	}
	for _, special := range []string{"</s>", "<pad>", "<eos>", "<bos>"} {
		if id, ok := tok.pieces[special]; ok {
			clear(table[id*colourDim : (id+1)*colourDim])
		}
	}
	for axis, hue := range hues {
		id, ok := tok.pieces["▁"+hue]
		if !ok {
			continue // the tokenizer splits this word; the model does not know it
		}
		row := table[id*colourDim : (id+1)*colourDim]
		clear(row)
		row[axis] = 1
	}
	w := &params{m: map[string]*param{}}
	w.set("colour.token_embedding", table, int64(tok.vocabSize), colourDim)
	w.set("logit_scale", []float32{float32(s.LogitScale)}, 1)
	w.set("logit_bias", []float32{float32(s.LogitBias)}, 1)

	vb := newBuilder("colour_vision", w)
	imgEmb := vb.colourVision("pixel_values")
	vb.op("Unsqueeze", []string{imgEmb, vb.constInt64(1)})
	vb.named("last_hidden_state")
	vb.op("Identity", []string{imgEmb})
	vb.named("pooler_output")
	vb.Graph().Inputs = []onnxpb.ValueInfo{pixelInput(s.ImageSize, "batch_size")}
	vb.Graph().Outputs = []onnxpb.ValueInfo{
		output("last_hidden_state", batchDim, onnxpb.Dim{Value: 1}, onnxpb.Dim{Value: colourDim}),
		output("pooler_output", batchDim, onnxpb.Dim{Value: colourDim}),
	}

	tb := newBuilder("colour_text", w)
	tokens, txtEmb := tb.colourText("input_ids")
	tb.op("Identity", []string{tokens})
	tb.named("last_hidden_state")
	tb.op("Identity", []string{txtEmb})
	tb.named("pooler_output")
	tb.Graph().Inputs = []onnxpb.ValueInfo{idsInput("batch_size")}
	tb.Graph().Outputs = []onnxpb.ValueInfo{
		output("last_hidden_state", batchDim, seqDim, onnxpb.Dim{Value: colourDim}),
		output("pooler_output", batchDim, onnxpb.Dim{Value: colourDim}),
	}

	fb := newBuilder("colour", w)
	_, t := fb.colourText("input_ids")
	i := fb.colourVision("pixel_values")
	fb.logits(t, i)
	fb.Graph().Inputs = []onnxpb.ValueInfo{idsInput("text_batch_size"), pixelInput(s.ImageSize, "image_batch_size")}
	fb.Graph().Outputs = fullOutputs(colourDim)
	return vb.model(), tb.model(), fb.model(), nil
}

func (b *builder) colourVision(pixels string) string {
	mean := b.op("ReduceMean", []string{pixels}, onnxpb.AttrInts("axes", 2, 3), onnxpb.AttrInt("keepdims", 0)) // [B, 3]
	ch := func(c int64) string {
		return b.op("Slice", []string{mean, b.constInt64(c), b.constInt64(c + 1), b.constInt64(1)}) // [B, 1]
	}
	r, g, bl := ch(0), ch(1), ch(2)
	relu := func(x string) string { return b.op("Relu", []string{x}) }
	sub := func(x, y string) string { return b.op("Sub", []string{x, y}) }
	maxOf := func(x, y string) string { return b.op("Max", []string{x, y}) }
	minOf := func(x, y string) string { return b.op("Min", []string{x, y}) }
	zero := b.op("Mul", []string{r, b.constFloat(0)})
	features := []string{
		relu(sub(r, maxOf(g, bl))),                                   // red
		relu(sub(g, maxOf(r, bl))),                                   // green
		relu(sub(bl, maxOf(r, g))),                                   // blue
		relu(sub(minOf(r, g), bl)),                                   // yellow
		relu(sub(minOf(g, bl), r)),                                   // cyan
		relu(sub(minOf(r, bl), g)),                                   // magenta
		relu(b.op("Min", []string{r, g, bl})),                        // white: every channel bright
		relu(b.op("Neg", []string{b.op("Max", []string{r, g, bl})})), // black: every channel dark
		b.op("Add", []string{zero, b.constFloat(imageNeutral)}),
		zero,
	}
	if len(features) != colourDim {
		panic(fmt.Sprintf("colour features: %d, want %d", len(features), colourDim))
	}
	return b.op("Concat", features, onnxpb.AttrInt("axis", 1))
}

func (b *builder) colourText(ids string) (tokens, pooled string) {
	tokens = b.op("Gather", []string{b.weight("colour.token_embedding"), ids})
	pooled = b.op("ReduceSum", []string{tokens, b.constInt64(1)}, onnxpb.AttrInt("keepdims", 0))
	return tokens, pooled
}
