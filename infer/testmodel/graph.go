package testmodel

import (
	"fmt"

	"github.com/siglipd/siglipd/infer/convert"
	"github.com/siglipd/siglipd/infer/onnxpb"
)

// producer is the producer_name of the generated ONNX files.
const producer = "siglipd-mkmodel"

// builder is infer/convert's graph builder — the one siglipd builds
// Google's checkpoints with — over a generated params set, with the short
// names the colour model's hand-built graphs use.
type builder struct{ *convert.Builder }

func newBuilder(name string, p *params) *builder {
	return &builder{convert.NewBuilder(name, p, convert.GraphOptions{})}
}

func (b *builder) op(op string, inputs []string, attrs ...onnxpb.Attr) string {
	return b.Op(op, inputs, attrs...)
}
func (b *builder) named(name string) string        { return b.Named(name) }
func (b *builder) weight(name string) string       { return b.Weight(name) }
func (b *builder) constInt64(vals ...int64) string { return b.ConstInt64(vals...) }
func (b *builder) constFloat(v float32) string     { return b.ConstFloat(v) }
func (b *builder) logits(text, image string)       { b.Logits(text, image) }

// model is the finished graph; generated weights always have the shapes
// the graph asks for, so an error is a bug in this package.
func (b *builder) model() *onnxpb.Model {
	m, err := b.Model(producer)
	if err != nil {
		panic(fmt.Sprintf("testmodel: %v", err))
	}
	return m
}

// config is the spec as infer/convert's model shape.
func (s Spec) config(vocab int) convert.Config {
	tw := func(t tower) convert.Tower {
		return convert.Tower{Hidden: t.Hidden, Layers: t.Layers, Heads: t.Heads, MLP: t.MLP, LayerNormEps: layerNormEps, Act: "gelu_pytorch_tanh"}
	}
	return convert.Config{ImageHeight: s.ImageSize, ImageWidth: s.ImageSize, PatchSize: s.PatchSize,
		Vision: tw(s.Vision), Text: tw(s.Text), VocabSize: vocab, MaxPositions: s.MaxTextLength, ProjectionSize: s.Vision.Hidden}
}

// Value infos of the Xenova exports' inputs and outputs.
func pixelInput(size int, batch string) onnxpb.ValueInfo {
	return convert.PixelInput(size, size, batch)
}
func idsInput(batch string) onnxpb.ValueInfo { return convert.IDsInput(batch) }
func output(name string, dims ...onnxpb.Dim) onnxpb.ValueInfo {
	return convert.Output(name, dims...)
}

var (
	batchDim = convert.BatchDim
	seqDim   = convert.SeqDim
)
