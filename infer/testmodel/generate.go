// Package testmodel writes complete SigLIP model folders in the Hugging Face
// / Xenova ONNX layout, with deterministic weights, so siglipd can be tested
// and benchmarked where real weights cannot be downloaded:
//
//   - tiny: a real SigLIP architecture (the graphs follow transformers'
//     SiglipModel op for op), 2 layers of width 64 at 64×64 pixels: builds in
//     well under a second, for unit and parity tests;
//   - base: the dimensions of siglip-base-patch16-224 (224 px, patch 16,
//     12 layers, width 768) with random weights: its speed is the real
//     model's speed, for benchmarks;
//   - colour: hand-set weights, not a transformer: the vision tower measures
//     the image's mean colour, the text tower knows colour words, so a red
//     frame scores "red" high and a grey frame scores every colour low. It is
//     the semantic end-to-end fixture: swapping BGR and RGB or breaking the
//     normalization makes it give wrong answers.
//
// None of these is a trained model; their scores mean nothing about real
// photos. The folders load in transformers.js and (tiny, base, with
// Options.Safetensors) in Python transformers.
package testmodel

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/siglipd/siglipd/infer/convert"
	"github.com/siglipd/siglipd/infer/onnxpb"
)

// Spec is the shape of a generated model.
type Spec struct {
	Preset        string
	ImageSize     int
	PatchSize     int
	Vision, Text  tower
	MaxTextLength int
	// LogitScale and LogitBias go into model.onnx; the probability is
	// sigmoid(exp(LogitScale)·cos + LogitBias).
	LogitScale, LogitBias float64
	Resample              int // preprocessor_config.json resample: 3 bicubic, 2 bilinear
	Seed                  uint64
}

// Presets are the models mkmodel can write.
var Presets = map[string]Spec{
	// exp(3) ≈ 20 and bias -1 put random cosines (±0.2) across the whole
	// sigmoid, so parity tests are sensitive everywhere, not near 0 or 1.
	"tiny": {Preset: "tiny", ImageSize: 64, PatchSize: 16, Vision: tower{64, 2, 4, 128}, Text: tower{64, 2, 4, 128},
		MaxTextLength: 64, LogitScale: 3, LogitBias: -1, Resample: 3, Seed: 1},
	// The dimensions of google/siglip-base-patch16-224; logit values are the
	// trained model's (exp(4.76) ≈ 117, bias ≈ -12.9).
	"base": {Preset: "base", ImageSize: 224, PatchSize: 16, Vision: tower{768, 12, 12, 3072}, Text: tower{768, 12, 12, 3072},
		MaxTextLength: 64, LogitScale: 4.7654, LogitBias: -12.93, Resample: 3, Seed: 2},
	// exp(3.4) ≈ 30 and bias -12: a matching colour (cosine ≈ 0.99) gives
	// logit ≈ 17.6 (p ≈ 1), an unrelated label (cosine 0) gives p ≈ 6e-6.
	"colour": {Preset: "colour", ImageSize: 64, PatchSize: 16, MaxTextLength: 64,
		LogitScale: math.Log(30), LogitBias: -12, Resample: 3, Seed: 3},
}

// Options select what Generate writes.
type Options struct {
	Preset string
	OutDir string
	// Tokenizer is a tokenizer.json to build the model around (the text
	// embedding table gets its vocabulary size); empty generates a small one.
	Tokenizer string
	// Safetensors also writes model.safetensors with the Hugging Face
	// parameter names, so Python transformers can load the same weights
	// (tiny and base only).
	Safetensors bool
	// FP16 also writes onnx/vision_model_fp16.onnx and text_model_fp16.onnx
	// with float16 pixel_values and pooler_output, as fp16 exports have
	// (the weights stay float32; tiny and base only). The full model is not
	// duplicated: logit_scale and logit_bias come from model.onnx.
	FP16 bool
}

// Generate writes a complete model folder to opts.OutDir.
func Generate(opts Options) error {
	spec, ok := Presets[opts.Preset]
	if !ok {
		return fmt.Errorf("unknown preset %q (want tiny, base or colour)", opts.Preset)
	}
	if err := os.MkdirAll(filepath.Join(opts.OutDir, "onnx"), 0o755); err != nil {
		return err
	}
	tok, err := writeTokenizer(opts)
	if err != nil {
		return err
	}
	var vision, text, full *onnxpb.Model
	var weights *params
	if spec.Preset == "colour" {
		if vision, text, full, err = colourModels(spec, tok); err != nil {
			return err
		}
	} else {
		weights = siglipParams(spec, tok.vocabSize)
		vision, text, full = siglipModels(spec, weights, tok.vocabSize)
	}
	for name, m := range map[string]*onnxpb.Model{"vision_model.onnx": vision, "text_model.onnx": text, "model.onnx": full} {
		if err := writeModel(filepath.Join(opts.OutDir, "onnx", name), m); err != nil {
			return err
		}
	}
	if opts.FP16 {
		if weights == nil {
			return fmt.Errorf("preset %s has no float16 variant", spec.Preset)
		}
		v16, t16 := fp16Towers(spec, weights, tok.vocabSize)
		for name, m := range map[string]*onnxpb.Model{"vision_model_fp16.onnx": v16, "text_model_fp16.onnx": t16} {
			if err := writeModel(filepath.Join(opts.OutDir, "onnx", name), m); err != nil {
				return err
			}
		}
	}
	if err := writeConfigs(opts.OutDir, spec, tok); err != nil {
		return err
	}
	if opts.Safetensors {
		if weights == nil {
			return fmt.Errorf("preset %s has no Hugging Face weights to write as safetensors", spec.Preset)
		}
		if err := writeSafetensors(filepath.Join(opts.OutDir, "model.safetensors"), weights); err != nil {
			return err
		}
	}
	return nil
}

// siglipModels builds the three graphs of the Xenova export from one set of
// weights: each tower alone (infer/convert's plain graphs, as siglipd
// builds them from a checkpoint), and both with the logits head
// (model.onnx, the combined graph transformers.js runs).
func siglipModels(s Spec, w *params, vocab int) (vision, text, full *onnxpb.Model) {
	cfg := s.config(vocab)
	vision, text, err := convert.Towers(cfg, w, convert.GraphOptions{}, producer)
	if err != nil {
		panic(fmt.Sprintf("testmodel: %v", err))
	}
	fb := newBuilder("siglip", w)
	fb.Prefix = "text/"
	_, textPooled := fb.TextTower("input_ids", cfg)
	fb.Prefix = "vision/"
	_, imagePooled := fb.VisionTower("pixel_values", cfg)
	fb.Prefix = ""
	fb.logits(textPooled, imagePooled)
	fb.Graph().Inputs = []onnxpb.ValueInfo{idsInput("text_batch_size"), pixelInput(s.ImageSize, "image_batch_size")}
	fb.Graph().Outputs = fullOutputs(s.Vision.Hidden)
	return vision, text, fb.model()
}

// fp16Towers are the towers with float16 inputs and outputs: a Cast after
// pixel_values and before each output around the float32 graph.
func fp16Towers(s Spec, w *params, vocab int) (vision, text *onnxpb.Model) {
	cfg := s.config(vocab)
	f16 := func(name string, dims ...onnxpb.Dim) onnxpb.ValueInfo {
		return onnxpb.ValueInfo{Name: name, ElemType: onnxpb.Float16, Shape: dims}
	}
	cast := func(b *builder, x string, to int64, name string) {
		b.op("Cast", []string{x}, onnxpb.AttrInt("to", to))
		b.named(name)
	}
	vb := newBuilder("siglip_vision_fp16", w)
	cast(vb, "pixel_values", onnxpb.Float, "pixel_values_f32")
	last, pooled := vb.VisionTower("pixel_values_f32", cfg)
	cast(vb, last, onnxpb.Float16, "last_hidden_state")
	cast(vb, pooled, onnxpb.Float16, "pooler_output")
	in := pixelInput(s.ImageSize, "batch_size")
	in.ElemType = onnxpb.Float16
	vb.Graph().Inputs = []onnxpb.ValueInfo{in}
	vb.Graph().Outputs = []onnxpb.ValueInfo{
		f16("last_hidden_state", batchDim, onnxpb.Dim{Param: "num_patches"}, onnxpb.Dim{Value: int64(s.Vision.Hidden)}),
		f16("pooler_output", batchDim, onnxpb.Dim{Value: int64(s.Vision.Hidden)}),
	}

	tb := newBuilder("siglip_text_fp16", w)
	last, pooled = tb.TextTower("input_ids", cfg)
	cast(tb, last, onnxpb.Float16, "last_hidden_state")
	cast(tb, pooled, onnxpb.Float16, "pooler_output")
	tb.Graph().Inputs = []onnxpb.ValueInfo{idsInput("batch_size")}
	tb.Graph().Outputs = []onnxpb.ValueInfo{
		f16("last_hidden_state", batchDim, seqDim, onnxpb.Dim{Value: int64(s.Text.Hidden)}),
		f16("pooler_output", batchDim, onnxpb.Dim{Value: int64(s.Vision.Hidden)}),
	}
	return vb.model(), tb.model()
}

func fullOutputs(dim int) []onnxpb.ValueInfo {
	images, texts := onnxpb.Dim{Param: "image_batch_size"}, onnxpb.Dim{Param: "text_batch_size"}
	return []onnxpb.ValueInfo{
		output("logits_per_image", images, texts),
		output("logits_per_text", texts, images),
		output("text_embeds", texts, onnxpb.Dim{Value: int64(dim)}),
		output("image_embeds", images, onnxpb.Dim{Value: int64(dim)}),
	}
}

func writeModel(path string, m *onnxpb.Model) error {
	_, err := m.WriteFile(path, -1)
	return err
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeConfigs writes config.json and preprocessor_config.json in the
// transformers format, with every size spelled out (the real base config
// relies on SiglipConfig's defaults; ours cannot).
func writeConfigs(dir string, s Spec, tok tokenizerInfo) error {
	textHidden, visionHidden := s.Text, s.Vision
	if s.Preset == "colour" {
		textHidden, visionHidden = tower{colourDim, 0, 1, colourDim}, tower{colourDim, 0, 1, colourDim}
	}
	towerConfig := func(t tower, kind string) map[string]any {
		return map[string]any{
			"model_type":          kind,
			"hidden_size":         t.Hidden,
			"intermediate_size":   t.MLP,
			"num_attention_heads": t.Heads,
			"num_hidden_layers":   t.Layers,
			"layer_norm_eps":      layerNormEps,
			"hidden_act":          "gelu_pytorch_tanh",
			"attention_dropout":   json.Number("0.0"),
		}
	}
	text := towerConfig(textHidden, "siglip_text_model")
	text["vocab_size"] = tok.vocabSize
	text["max_position_embeddings"] = s.MaxTextLength
	text["projection_size"] = visionHidden.Hidden
	text["pad_token_id"] = tok.padID
	text["eos_token_id"] = tok.eosID
	vision := towerConfig(visionHidden, "siglip_vision_model")
	vision["image_size"] = s.ImageSize
	vision["patch_size"] = s.PatchSize
	vision["num_channels"] = 3
	config := map[string]any{
		"architectures":      []string{"SiglipModel"},
		"model_type":         "siglip",
		"initializer_factor": json.Number("1.0"), // a float: transformers 5 rejects 1
		"torch_dtype":        "float32",
		"text_config":        text,
		"vision_config":      vision,
		"_siglipd_preset":    s.Preset,
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), config); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, "preprocessor_config.json"), map[string]any{
		"do_normalize":         true,
		"do_rescale":           true,
		"do_resize":            true,
		"image_mean":           []float64{0.5, 0.5, 0.5},
		"image_std":            []float64{0.5, 0.5, 0.5},
		"image_processor_type": "SiglipImageProcessor",
		"processor_class":      "SiglipProcessor",
		"resample":             s.Resample,
		"rescale_factor":       1.0 / 255,
		"size":                 map[string]int{"height": s.ImageSize, "width": s.ImageSize},
	})
}
