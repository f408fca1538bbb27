package convert

import (
	"encoding/json"
	"fmt"
	"os"
)

// Tower is the size of one transformer tower.
type Tower struct {
	Hidden, Layers, Heads, MLP int
	LayerNormEps               float64
	// Act is the MLP's activation: "gelu_pytorch_tanh" (SigLIP's; also
	// spelled "gelu_new") or "gelu" (erf).
	Act string
}

// Config is the shape of a SigLIP model: what the graphs are built for.
type Config struct {
	ImageHeight, ImageWidth int
	PatchSize               int
	Vision, Text            Tower
	VocabSize               int
	MaxPositions            int
	// ProjectionSize is the text head's output size, which must be the
	// vision tower's width (the embeddings are compared by cosine).
	ProjectionSize int
}

// Patches is the number of image patches, the vision tower's sequence.
func (c Config) Patches() int {
	return (c.ImageHeight / c.PatchSize) * (c.ImageWidth / c.PatchSize)
}

// towerJSON is one tower's part of config.json. Pointers tell a key Google
// left out (transformers then uses its default) from a zero.
type towerJSON struct {
	HiddenSize        *int            `json:"hidden_size"`
	IntermediateSize  *int            `json:"intermediate_size"`
	NumAttentionHeads *int            `json:"num_attention_heads"`
	NumHiddenLayers   *int            `json:"num_hidden_layers"`
	LayerNormEps      *float64        `json:"layer_norm_eps"`
	HiddenAct         *string         `json:"hidden_act"`
	ImageSize         json.RawMessage `json:"image_size"`
	PatchSize         *int            `json:"patch_size"`
	NumChannels       *int            `json:"num_channels"`
	VisionUseHead     *bool           `json:"vision_use_head"`
	VocabSize         *int            `json:"vocab_size"`
	MaxPositions      *int            `json:"max_position_embeddings"`
	ProjectionSize    *int            `json:"projection_size"`
}

// ReadConfig reads a checkpoint's config.json with transformers'
// SiglipConfig defaults for every key it leaves out (Google's configs set
// only what differs from siglip-base-patch16-224), and rejects what siglipd
// cannot build with one sentence naming the key.
func ReadConfig(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("model config %s: %w", path, err)
	}
	var doc struct {
		ModelType string    `json:"model_type"`
		Text      towerJSON `json:"text_config"`
		Vision    towerJSON `json:"vision_config"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return Config{}, fmt.Errorf("model config %s: not valid JSON: %w", path, err)
	}
	fail := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("model config %s: "+format, append([]any{path}, args...)...)
	}
	switch doc.ModelType {
	case "siglip":
	case "siglip2":
		return fail("model_type is \"siglip2\", a NaFlex SigLIP 2 model, which siglipd does not build (its vision tower " +
			"takes variable patch sequences); use a fixed-resolution SigLIP 2 checkpoint such as google/siglip2-base-patch16-224, or SigLIP")
	default:
		return fail("model_type is %q, not a SigLIP model; siglipd builds SigLIP and fixed-resolution SigLIP 2 "+
			"checkpoints (model_type \"siglip\", transformers' SiglipModel)", doc.ModelType)
	}
	// SiglipTextConfig's and SiglipVisionConfig's defaults (transformers
	// configuration_siglip.py): the base model's shape.
	c := Config{
		ImageHeight: 224, ImageWidth: 224, PatchSize: 16,
		Vision:    Tower{Hidden: 768, Layers: 12, Heads: 12, MLP: 3072, LayerNormEps: 1e-6, Act: "gelu_pytorch_tanh"},
		Text:      Tower{Hidden: 768, Layers: 12, Heads: 12, MLP: 3072, LayerNormEps: 1e-6, Act: "gelu_pytorch_tanh"},
		VocabSize: 32000, MaxPositions: 64,
	}
	for _, side := range []struct {
		key string
		j   towerJSON
		t   *Tower
	}{{"vision_config", doc.Vision, &c.Vision}, {"text_config", doc.Text, &c.Text}} {
		setInt(&side.t.Hidden, side.j.HiddenSize)
		setInt(&side.t.MLP, side.j.IntermediateSize)
		setInt(&side.t.Heads, side.j.NumAttentionHeads)
		setInt(&side.t.Layers, side.j.NumHiddenLayers)
		if side.j.LayerNormEps != nil {
			side.t.LayerNormEps = *side.j.LayerNormEps
		}
		if side.j.HiddenAct != nil {
			side.t.Act = *side.j.HiddenAct
		}
		switch side.t.Act {
		case "gelu_pytorch_tanh", "gelu_new", "gelu":
		default:
			return fail("%s.hidden_act is %q; siglipd builds gelu_pytorch_tanh (SigLIP's), gelu_new and gelu", side.key, side.t.Act)
		}
		for name, v := range map[string]int{"hidden_size": side.t.Hidden, "intermediate_size": side.t.MLP,
			"num_attention_heads": side.t.Heads, "num_hidden_layers": side.t.Layers} {
			if v < 1 {
				return fail("%s.%s is %d, want a positive size", side.key, name, v)
			}
		}
		if side.t.Hidden%side.t.Heads != 0 {
			return fail("%s.hidden_size %d is not a multiple of num_attention_heads %d", side.key, side.t.Hidden, side.t.Heads)
		}
	}
	setInt(&c.PatchSize, doc.Vision.PatchSize)
	if len(doc.Vision.ImageSize) > 0 {
		var one int
		var two []int
		switch {
		case json.Unmarshal(doc.Vision.ImageSize, &one) == nil:
			c.ImageHeight, c.ImageWidth = one, one
		case json.Unmarshal(doc.Vision.ImageSize, &two) == nil && len(two) == 2:
			c.ImageHeight, c.ImageWidth = two[0], two[1]
		default:
			return fail("vision_config.image_size is %s; want a size or [height, width]", doc.Vision.ImageSize)
		}
	}
	if c.PatchSize < 1 || c.ImageHeight < c.PatchSize || c.ImageWidth < c.PatchSize {
		return fail("vision_config: image_size %dx%d and patch_size %d do not make patches", c.ImageWidth, c.ImageHeight, c.PatchSize)
	}
	if doc.Vision.NumChannels != nil && *doc.Vision.NumChannels != 3 {
		return fail("vision_config.num_channels is %d; SigLIP takes RGB images (3)", *doc.Vision.NumChannels)
	}
	if doc.Vision.VisionUseHead != nil && !*doc.Vision.VisionUseHead {
		return fail("vision_config.vision_use_head is false: the model has no attention-pooling head, so it gives no image " +
			"embedding to score; siglipd needs SigLIP's pooled embedding")
	}
	setInt(&c.VocabSize, doc.Text.VocabSize)
	setInt(&c.MaxPositions, doc.Text.MaxPositions)
	c.ProjectionSize = c.Text.Hidden
	setInt(&c.ProjectionSize, doc.Text.ProjectionSize)
	if c.VocabSize < 1 || c.MaxPositions < 1 {
		return fail("text_config: vocab_size %d and max_position_embeddings %d must be positive", c.VocabSize, c.MaxPositions)
	}
	if c.ProjectionSize != c.Vision.Hidden {
		return fail("text_config.projection_size %d differs from vision_config.hidden_size %d, so text and image "+
			"embeddings cannot be compared", c.ProjectionSize, c.Vision.Hidden)
	}
	return c, nil
}

func setInt(dst *int, src *int) {
	if src != nil {
		*dst = *src
	}
}
