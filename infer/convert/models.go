package convert

import (
	"github.com/siglipd/siglipd/infer/onnxpb"
)

// Producer is the producer_name of the ONNX files Build writes.
const Producer = "siglipd-convert"

// Towers builds vision_model.onnx and text_model.onnx, each with the
// inputs and outputs of the Xenova exports (pixel_values → pooler_output;
// input_ids → pooler_output), from one checkpoint's weights.
func Towers(c Config, w Weights, opts GraphOptions, producer string) (vision, text *onnxpb.Model, err error) {
	vb := NewBuilder("siglip_vision", w, opts)
	last, pooled := vb.VisionTower("pixel_values", c)
	vb.Graph().Inputs = []onnxpb.ValueInfo{PixelInput(c.ImageHeight, c.ImageWidth, "batch_size")}
	vb.TowerOutputs(last, pooled, c.Vision.Hidden, onnxpb.Dim{Param: "num_patches"})
	if vision, err = vb.Model(producer); err != nil {
		return nil, nil, err
	}
	tb := NewBuilder("siglip_text", w, opts)
	last, pooled = tb.TextTower("input_ids", c)
	tb.Graph().Inputs = []onnxpb.ValueInfo{IDsInput("batch_size")}
	tb.TowerOutputs(last, pooled, c.ProjectionSize, SeqDim)
	if text, err = tb.Model(producer); err != nil {
		return nil, nil, err
	}
	return vision, text, nil
}

// LogitsModel is a small onnx/model.onnx: SigLIP's logits head over pooled
// embeddings (inputs text_pooler_output and image_pooler_output), which
// carries logit_scale and logit_bias as initializers, where siglipd (and
// the Xenova layout) keep them. It does not repeat the towers' weights.
func LogitsModel(c Config, w Weights, producer string) (*onnxpb.Model, error) {
	b := NewBuilder("siglip_logits", w, GraphOptions{})
	b.Logits("text_pooler_output", "image_pooler_output")
	texts, images, dim := onnxpb.Dim{Param: "text_batch_size"}, onnxpb.Dim{Param: "image_batch_size"}, onnxpb.Dim{Value: int64(c.Vision.Hidden)}
	b.Graph().Inputs = []onnxpb.ValueInfo{Output("text_pooler_output", texts, dim), Output("image_pooler_output", images, dim)}
	b.Graph().Outputs = []onnxpb.ValueInfo{
		Output("logits_per_image", images, texts),
		Output("logits_per_text", texts, images),
		Output("text_embeds", texts, dim),
		Output("image_embeds", images, dim),
	}
	return b.Model(producer)
}
